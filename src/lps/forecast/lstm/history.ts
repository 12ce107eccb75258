/**
 * The LSTM's per-series history, all series in one Float32Array: series `slot` holds its rows
 * (each `features` wide, oldest first) from `base(slot)`, at most `stride` of them. Every
 * series gets the same stride, its even share of the row budget (`share(count)`), and when the
 * share changes (series arrive or leave) the whole history is re-laid out once, in place where
 * it shrinks, each series keeping its newest rows.
 *
 * One buffer rather than one per series: a buffer per series cost a JS object, an ArrayBuffer
 * and a malloc'd block each, and as the share shrank while a fleet grew every block was
 * reallocated at a smaller size, leaving the old ones as fragments. Measured on the engine alone
 * (a script, not kept), 20,000 series arriving one at a time with 720 rows each: the process
 * held 146 MB for 29 MB of rows with a buffer per series, 46 MB with this one; at 5,000 series,
 * 90 against 42 MB.
 *
 * Each series also has a normaliser (per target: mean, then scale) in `norms` from
 * `normAt(slot)`, NaN until computed.
 */
export class SeriesHistory {
  readonly features: number;
  readonly targets: number;
  /** Rows one series keeps when there are `count` series. */
  private readonly share: (count: number) => number;
  /** Most rows all series together may hold (the buffer's bound), or undefined. */
  private readonly budget: number | undefined;
  private readonly slots = new Map<string, number>();
  /** Series' rows in slot order, `stride` rows a slot. */
  data = new Float32Array(0);
  /** Rows per slot. */
  stride = 0;
  /** Rows each slot holds. */
  rows = new Int32Array(0);
  /** Normalisers, 2 × targets a slot: means, then scales. NaN: not computed yet. */
  norms = new Float64Array(0);
  /** Slots in use or retired since the last re-layout: the next new series gets this one. */
  private used = 0;
  /** Slots the buffers have room for. */
  private capacity = 0;

  constructor(
    features: number,
    targets: number,
    share: (count: number) => number,
    budget: number | undefined,
  ) {
    this.features = features;
    this.targets = targets;
    this.share = share;
    this.budget = budget;
  }

  get count(): number {
    return this.slots.size;
  }

  /** Bytes the rows' buffer holds (rows and room for more series). */
  get bytes(): number {
    return this.data.byteLength;
  }

  slotOf(id: string): number | undefined {
    return this.slots.get(id);
  }

  base(slot: number): number {
    return slot * this.stride * this.features;
  }

  normAt(slot: number): number {
    return slot * 2 * this.targets;
  }

  hasNorm(slot: number): boolean {
    return !Number.isNaN(this.norms[this.normAt(slot)]!);
  }

  /** Series and slots, in slot order. */
  entries(): IterableIterator<[string, number]> {
    return this.slots.entries();
  }

  /** Registers the series of `ids` not held yet (empty, no normaliser): one re-layout at most. */
  add(ids: readonly string[]): void {
    let fresh: Set<string> | undefined;
    for (const id of ids) if (!this.slots.has(id)) (fresh ??= new Set()).add(id);
    if (!fresh) return;
    const count = this.slots.size + fresh.size;
    const stride = this.share(count);
    if (stride !== this.stride || this.used + fresh.size > this.capacity)
      this.relayout(count, stride);
    for (const id of fresh) {
      const slot = this.used++;
      this.slots.set(id, slot);
      this.rows[slot] = 0;
      this.norms.fill(NaN, this.normAt(slot), this.normAt(slot + 1));
    }
  }

  /** Drops the series of `ids` (absent ones are ignored): one re-layout at most. */
  remove(ids: readonly string[]): void {
    let removed = false;
    for (const id of ids) removed = this.slots.delete(id) || removed;
    if (removed) this.relayout(this.slots.size, this.share(this.slots.size));
  }

  /** Appends rows (n × features, oldest first) to `slot`, which keeps its newest `stride`. */
  append(slot: number, rows: Float32Array): void {
    const F = this.features;
    const max = this.stride;
    const base = slot * max * F;
    const n = Math.min(rows.length / F, max);
    const held = this.rows[slot]!;
    let at = held;
    if (held + n > max) {
      // Full: keep the newest rows that leave room for the new ones.
      const keep = max - n;
      this.data.copyWithin(base, base + (held - keep) * F, base + held * F);
      at = keep;
    }
    this.data.set(n * F === rows.length ? rows : rows.subarray(rows.length - n * F), base + at * F);
    this.rows[slot] = at + n;
  }

  /**
   * Lays the series held out again at `stride` rows a slot, in slot order and numbered from 0,
   * each keeping its newest rows, with room for `count` series: in place when the stride does
   * not grow and the buffer has room (each slot moves to a lower offset, so copying in slot
   * order overwrites only what was already moved), into new buffers otherwise.
   */
  private relayout(count: number, stride: number): void {
    const F = this.features;
    const P = 2 * this.targets;
    const capacity = this.capacityFor(count, stride);
    const order = Int32Array.from(this.slots.values()).sort();
    const needed = capacity * stride * F;
    const inPlace =
      stride <= this.stride &&
      needed <= this.data.length &&
      // A buffer more than twice what is needed, or over the budget, is given back.
      this.data.length <= 2 * needed &&
      this.data.length <= Math.max(needed, (this.budget ?? Infinity) * F);
    const room = inPlace
      ? Math.max(capacity, Math.floor(this.data.length / (stride * F)))
      : capacity;
    const data = inPlace ? this.data : new Float32Array(room * stride * F);
    const rows = room <= this.rows.length ? this.rows : new Int32Array(room);
    const norms = room * P <= this.norms.length ? this.norms : new Float64Array(room * P);
    const slotTo = new Int32Array(this.used);
    order.forEach((from, to) => {
      slotTo[from] = to;
      const held = this.rows[from]!;
      const keep = Math.min(held, stride);
      const src = from * this.stride * F + (held - keep) * F;
      if (inPlace) data.copyWithin(to * stride * F, src, src + keep * F);
      else data.set(this.data.subarray(src, src + keep * F), to * stride * F);
      // `to` is never above `from`: the rows and normalisers move down in order too.
      rows[to] = keep;
      if (norms === this.norms) norms.copyWithin(to * P, from * P, from * P + P);
      else norms.set(this.norms.subarray(from * P, from * P + P), to * P);
    });
    for (const [id, from] of this.slots) this.slots.set(id, slotTo[from]!);
    this.data = data;
    this.rows = rows;
    this.norms = norms;
    this.stride = stride;
    this.used = order.length;
    this.capacity = room;
  }

  /**
   * Slots to make room for when `count` series keep `stride` rows: half as many again (at least
   * 16), but no more than the row budget allows, so the buffer stays within it; an eighth more
   * where even `count` exceeds the budget (every series at the floor of its share).
   */
  private capacityFor(count: number, stride: number): number {
    const bound = this.budget === undefined ? Infinity : Math.floor(this.budget / stride);
    const grown = Math.min(Math.max(16, Math.ceil(count * 1.5)), bound);
    return grown >= count ? grown : Math.ceil(count * 1.125);
  }
}
