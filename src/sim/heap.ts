/**
 * A binary min-heap of (time, id) pairs in typed arrays: the simulator's event
 * queue. Ties on time are broken by insertion order so that runs are
 * deterministic whatever the heap's internal layout.
 */
export class EventHeap {
  private times: Float64Array;
  private seqs: Float64Array;
  private ids: Int32Array;
  private n = 0;
  private seq = 0;

  constructor(initialCapacity = 1024) {
    this.times = new Float64Array(initialCapacity);
    this.seqs = new Float64Array(initialCapacity);
    this.ids = new Int32Array(initialCapacity);
  }

  get size(): number {
    return this.n;
  }

  push(time: number, id: number): void {
    if (this.n === this.times.length) this.grow();
    let i = this.n++;
    const s = this.seq++;
    // sift up
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.less(time, s, this.times[p], this.seqs[p])) {
        this.times[i] = this.times[p];
        this.seqs[i] = this.seqs[p];
        this.ids[i] = this.ids[p];
        i = p;
      } else break;
    }
    this.times[i] = time;
    this.seqs[i] = s;
    this.ids[i] = id;
  }

  /** Time of the earliest event; Infinity when empty. */
  peekTime(): number {
    return this.n === 0 ? Infinity : this.times[0];
  }

  /** Removes the earliest event and returns its id; -1 when empty. */
  pop(): number {
    if (this.n === 0) return -1;
    const top = this.ids[0];
    const last = --this.n;
    if (last > 0) {
      const t = this.times[last];
      const s = this.seqs[last];
      const id = this.ids[last];
      let i = 0;
      // sift down
      for (;;) {
        const l = 2 * i + 1;
        if (l >= last) break;
        const r = l + 1;
        let c = l;
        if (r < last && this.less(this.times[r], this.seqs[r], this.times[l], this.seqs[l])) c = r;
        if (this.less(this.times[c], this.seqs[c], t, s)) {
          this.times[i] = this.times[c];
          this.seqs[i] = this.seqs[c];
          this.ids[i] = this.ids[c];
          i = c;
        } else break;
      }
      this.times[i] = t;
      this.seqs[i] = s;
      this.ids[i] = id;
    }
    return top;
  }

  private less(t1: number, s1: number, t2: number, s2: number): boolean {
    return t1 < t2 || (t1 === t2 && s1 < s2);
  }

  private grow(): void {
    const cap = this.times.length * 2;
    const times = new Float64Array(cap);
    const seqs = new Float64Array(cap);
    const ids = new Int32Array(cap);
    times.set(this.times);
    seqs.set(this.seqs);
    ids.set(this.ids);
    this.times = times;
    this.seqs = seqs;
    this.ids = ids;
  }
}
