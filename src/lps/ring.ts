/** The columns of a stored sample, each a number. */
export const SAMPLE_COLUMNS = [
  'timestamp', // ms since epoch, agent clock
  'receivedAt', // ms since epoch, LPS clock
  'sequence',
  'cpu',
  'memory',
  'network', // bytes/s
  'networkCapacity', // bytes/s
  'responseTime', // seconds
  'healthy', // 1 serving, 0 failing
  'requestRate', // req/s, 0 = unknown (legacy: `completed` supersedes it)
  'processCpu', // the endpoint's own CPU, fraction of the host's; NaN = unknown
  'completed', // requests completed over the sample's span; NaN = unknown, 0 = none
  'latencySum', // seconds, sum over those requests; NaN = unknown
  'span', // seconds the sample's rates and counts cover; NaN = the monitoring interval
] as const;

export type SampleColumn = (typeof SAMPLE_COLUMNS)[number];
export type StoredSample = Record<SampleColumn, number>;

/**
 * A fixed-size ring of samples stored column by column (one Float64Array per
 * column), so an endpoint costs the same memory from its first sample on and
 * the forecasters read a metric's history without building objects.
 */
export class SampleRing {
  readonly capacity: number;
  private readonly cols: Record<SampleColumn, Float64Array>;
  private head = 0; // next write position
  private count = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.cols = Object.fromEntries(
      SAMPLE_COLUMNS.map((c) => [c, new Float64Array(capacity)]),
    ) as Record<SampleColumn, Float64Array>;
  }

  get size(): number {
    return this.count;
  }

  push(sample: StoredSample): void {
    for (const c of SAMPLE_COLUMNS) this.cols[c][this.head] = sample[c];
    this.head = (this.head + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  /** The i-th newest sample's column value (0 = newest). */
  at(column: SampleColumn, back = 0): number {
    if (back >= this.count) return NaN;
    return this.cols[column][(this.head - 1 - back + this.capacity) % this.capacity]!;
  }

  latest(): StoredSample | undefined {
    if (this.count === 0) return undefined;
    return this.get(0);
  }

  get(back: number): StoredSample {
    const idx = (this.head - 1 - back + this.capacity) % this.capacity;
    return Object.fromEntries(SAMPLE_COLUMNS.map((c) => [c, this.cols[c][idx]])) as StoredSample;
  }

  /** The last `n` values of a column, oldest first (fewer if fewer are stored). */
  column(column: SampleColumn, n = this.count): Float64Array {
    const k = Math.min(n, this.count);
    const out = new Float64Array(k);
    for (let i = 0; i < k; i++) out[i] = this.at(column, k - 1 - i);
    return out;
  }

  /** Every stored sample, oldest first. */
  toArray(): StoredSample[] {
    const out: StoredSample[] = [];
    for (let back = this.count - 1; back >= 0; back--) out.push(this.get(back));
    return out;
  }
}
