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
   * each keeping its newest rows, with room for `count` series.
   *
   * With a budget the rows' buffer is the whole budget, allocated once and then laid out again
   * in place whatever the stride: a new buffer only where the series at the floor of their
   * share need more than the budget. An untouched page of it costs no memory (the allocation is
   * mmapped and zero-filled by the kernel on first touch), and one that is never freed keeps
   * glibc from raising its mmap threshold: freeing a block of tens of MiB raises the threshold,
   * and twice it the size of free memory each malloc arena keeps instead of giving it back.
   * This buffer, replaced at each re-layout, was the largest block that raised it (see
   * BENCHMARKS.md, "LSTM on, 5 runs").
   * Without a budget the buffer fits the series, half as many again, and is replaced as they grow.
   */
  private relayout(count: number, stride: number): void {
    const F = this.features;
    const P = 2 * this.targets;
    const capacity = this.capacityFor(count, stride);
    const order = Int32Array.from(this.slots.values()).sort();
    const needed = capacity * stride * F;
    const budget = this.budget === undefined ? undefined : this.budget * F;
    const length = this.data.length;
    // A buffer more than twice what is needed is given back, except the budget's own; one over
    // the budget, once the budget is enough again.
    const keepBuffer =
      needed <= length &&
      (length === budget || (length <= 2 * needed && (budget === undefined || needed > budget)));
    const data = keepBuffer ? this.data : new Float32Array(Math.max(budget ?? 0, needed));
    const room = Math.floor(data.length / (stride * F));
    // Rows and normalisers for every slot the buffer has room for at the floor of the share,
    // so that they too are allocated once.
    const slots = budget === undefined ? room : Math.max(room, this.floorRoom(data.length));
    const rows = room <= this.rows.length ? this.rows : new Int32Array(slots);
    const norms = room * P <= this.norms.length ? this.norms : new Float64Array(slots * P);
    const moves = Array.from(order, (from, to) => {
      const held = this.rows[from]!;
      const keep = Math.min(held, stride);
      return {
        from,
        to,
        keep,
        src: from * this.stride * F + (held - keep) * F,
        dst: to * stride * F,
      };
    });
    if (data !== this.data)
      for (const m of moves) data.set(this.data.subarray(m.src, m.src + m.keep * F), m.dst);
    else {
      // In place: each slot's kept rows move down (to a lower offset) or up. The downward moves
      // first, in slot order: a slot's new rows end below where its kept rows ended, so below
      // any later slot's; and an earlier slot that moves up keeps rows that end at least a new
      // stride below this slot's new offset (its own new offset is that far below, and it moves
      // up). Then the upward moves, in reverse slot order: an earlier slot's kept rows end
      // below this slot's new offset, for the same reason. New places never overlap. copyWithin
      // copies as if through a temporary buffer, so a slot overlapping its own old rows is safe.
      for (const m of moves) if (m.dst < m.src) data.copyWithin(m.dst, m.src, m.src + m.keep * F);
      for (let k = moves.length - 1; k >= 0; k--) {
        const m = moves[k]!;
        if (m.dst > m.src) data.copyWithin(m.dst, m.src, m.src + m.keep * F);
      }
    }
    const slotTo = new Int32Array(this.used);
    for (const { from, to, keep } of moves) {
      slotTo[from] = to;
      // `to` is never above `from`: the rows and normalisers move down in order.
      rows[to] = keep;
      if (norms === this.norms) norms.copyWithin(to * P, from * P, from * P + P);
      else norms.set(this.norms.subarray(from * P, from * P + P), to * P);
    }
    for (const [id, from] of this.slots) this.slots.set(id, slotTo[from]!);
    this.data = data;
    this.rows = rows;
    this.norms = norms;
    this.stride = stride;
    this.used = order.length;
    this.capacity = room;
  }

  /** Slots a buffer of `length` floats has room for when every series is at the floor of its share. */
  private floorRoom(length: number): number {
    return Math.floor(length / (this.share(Number.MAX_SAFE_INTEGER) * this.features));
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
