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
 * How a column is held past the newest HOT samples:
 * - `residual`: Float32 residual against the first value of its block of BLOCK slots (a Float64
 *   anchor): exact for integers (ms timestamps, sequences) while a block spans less than 2^24,
 *   so it keeps epoch milliseconds that a plain Float32 would round to minutes;
 * - `float`: Float32, relative error at most 2^-24 (NaN and ±Infinity kept);
 * - `fraction`: 16-bit fixed point over [0, 1] (values outside are clamped; NaN kept), absolute
 *   error at most 1 / (2 · FRACTION_STEPS).
 */
export type ColumnCodec = 'residual' | 'float' | 'fraction';

export const COLUMN_CODECS: Readonly<Record<SampleColumn, ColumnCodec>> = {
  timestamp: 'residual',
  receivedAt: 'residual',
  sequence: 'residual',
  // The forecast signals are Float32: 16-bit fixed point (absolute error 7.6e-6) moved the
  // forecasts of a real trace by up to 2e-4 where near-tied forecasters swapped places.
  cpu: 'float',
  memory: 'float',
  network: 'float',
  networkCapacity: 'float',
  responseTime: 'float',
  healthy: 'fraction',
  requestRate: 'float',
  processCpu: 'float',
  completed: 'float',
  latencySum: 'float',
  span: 'float',
};

/** The newest samples are also kept exactly (Float64): what the scorer reads at every tick. */
export const HOT = 4;
/** Slots per block of a residual column (one Float64 anchor each). */
export const BLOCK = 32;
/** Steps of a fraction column over [0, 1]; the code FRACTION_STEPS + 1 is NaN. */
export const FRACTION_STEPS = 65_534;
const FRACTION_NAN = FRACTION_STEPS + 1;
/** Largest error of a fraction column (half a step). */
export const FRACTION_PRECISION = 0.5 / FRACTION_STEPS;
/** Largest relative error of a float column (Float32 rounding). */
export const FLOAT_PRECISION = 2 ** -24;

const NCOL = SAMPLE_COLUMNS.length;
const COLUMN_INDEX = Object.fromEntries(SAMPLE_COLUMNS.map((c, i) => [c, i])) as Record<
  SampleColumn,
  number
>;
/** Per column: its row in the Float32 or the Uint16 table, and its row of anchors (residual). */
const LAYOUT = (() => {
  const f32: number[] = [];
  const u16: number[] = [];
  const anchor: number[] = [];
  let nf = 0;
  let nu = 0;
  let na = 0;
  for (const c of SAMPLE_COLUMNS) {
    const codec = COLUMN_CODECS[c];
    f32.push(codec === 'fraction' ? -1 : nf++);
    u16.push(codec === 'fraction' ? nu++ : -1);
    anchor.push(codec === 'residual' ? na++ : -1);
  }
  return { f32, u16, anchor, nf, nu, na };
})();

const toFraction = (v: number): number =>
  Number.isNaN(v) ? FRACTION_NAN : Math.round((v <= 0 ? 0 : v >= 1 ? 1 : v) * FRACTION_STEPS);
const fromFraction = (q: number): number => (q === FRACTION_NAN ? NaN : q / FRACTION_STEPS);

/**
 * A fixed-size ring of samples stored column by column in three typed arrays allocated once
 * (a Float32 table, a Uint16 table and a small Float64 table for the exact newest samples and
 * the anchors), so an endpoint costs the same memory from its first sample on, no sample is an
 * object, and the forecasters read a metric's history without building objects. 54 bytes a
 * sample instead of 112 (Float64 everywhere). The HOT newest samples read back exactly; older
 * ones within the precision of their column's codec (COLUMN_CODECS).
 */
export class SampleRing {
  readonly capacity: number;
  /** Float32 columns (residual and float), column-major: [column * capacity + slot]. */
  private readonly floats: Float32Array;
  /** Fraction columns, column-major. */
  private readonly fractions: Uint16Array;
  /**
   * [HOT * NCOL exact newest values][anchors: na * blocks][the anchors of the block being
   * overwritten, for its slots still holding the previous lap: na].
   */
  private readonly exact: Float64Array;
  private readonly blocks: number;
  private head = 0; // next write position
  private count = 0;
  private pushed = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`ring capacity must be a positive integer, got ${capacity}`);
    this.capacity = capacity;
    this.blocks = Math.ceil(capacity / BLOCK);
    this.floats = new Float32Array(LAYOUT.nf * capacity);
    this.fractions = new Uint16Array(LAYOUT.nu * capacity);
    this.exact = new Float64Array(HOT * NCOL + LAYOUT.na * (this.blocks + 1));
  }

  get size(): number {
    return this.count;
  }

  /** Bytes of sample storage (the typed arrays' contents). */
  get bytes(): number {
    return this.floats.byteLength + this.fractions.byteLength + this.exact.byteLength;
  }

  push(sample: StoredSample): void {
    const slot = this.head;
    const cap = this.capacity;
    const hot = (this.pushed % HOT) * NCOL;
    const anchors = HOT * NCOL;
    const previous = anchors + LAYOUT.na * this.blocks;
    const block = (slot / BLOCK) | 0;
    const startsBlock = slot % BLOCK === 0;
    for (let c = 0; c < NCOL; c++) {
      const v = sample[SAMPLE_COLUMNS[c]!];
      this.exact[hot + c] = v;
      const u = LAYOUT.u16[c]!;
      if (u >= 0) {
        this.fractions[u * cap + slot] = toFraction(v);
        continue;
      }
      const a = LAYOUT.anchor[c]!;
      const at = LAYOUT.f32[c]! * cap + slot;
      if (a < 0) {
        this.floats[at] = v;
        continue;
      }
      const ai = anchors + a * this.blocks + block;
      if (startsBlock) {
        this.exact[previous + a] = this.exact[ai]!;
        this.exact[ai] = v;
      }
      const anchor = this.exact[ai]!;
      // An anchor that is not finite (a block begun by a missing value) leaves its block in plain Float32.
      this.floats[at] = Number.isFinite(anchor) ? v - anchor : v;
    }
    this.head = (slot + 1) % cap;
    this.pushed++;
    if (this.count < cap) this.count++;
  }

  /** The value held in `slot` (not of the HOT newest: those are read exactly). */
  private stored(c: number, slot: number): number {
    const cap = this.capacity;
    const u = LAYOUT.u16[c]!;
    if (u >= 0) return fromFraction(this.fractions[u * cap + slot]!);
    const r = this.floats[LAYOUT.f32[c]! * cap + slot]!;
    const a = LAYOUT.anchor[c]!;
    if (a < 0) return r;
    const block = (slot / BLOCK) | 0;
    const last = (this.head - 1 + cap) % cap;
    // Slots after the newest in the block being written still hold the previous lap.
    const previousLap = slot > last && block === ((last / BLOCK) | 0);
    const anchor = previousLap
      ? this.exact[HOT * NCOL + LAYOUT.na * this.blocks + a]!
      : this.exact[HOT * NCOL + a * this.blocks + block]!;
    return Number.isFinite(anchor) ? anchor + r : r;
  }

  private value(c: number, back: number): number {
    if (back < HOT) return this.exact[((this.pushed - 1 - back) % HOT) * NCOL + c]!;
    return this.stored(c, (this.head - 1 - back + this.capacity) % this.capacity);
  }

  /** The i-th newest sample's column value (0 = newest); NaN past the oldest. */
  at(column: SampleColumn, back = 0): number {
    if (back < 0 || back >= this.count) return NaN;
    return this.value(COLUMN_INDEX[column], back);
  }

  latest(): StoredSample | undefined {
    if (this.count === 0) return undefined;
    return this.get(0);
  }

  /** The i-th newest sample (0 = newest), as a new object. */
  get(back: number): StoredSample {
    const out = {} as StoredSample;
    if (back < 0 || back >= this.count) {
      for (const c of SAMPLE_COLUMNS) out[c] = NaN;
      return out;
    }
    for (let c = 0; c < NCOL; c++) out[SAMPLE_COLUMNS[c]!] = this.value(c, back);
    return out;
  }

  /** The last `n` values of a column, oldest first (fewer if fewer are stored). */
  column(column: SampleColumn, n = this.count): Float64Array {
    const k = Math.max(0, Math.min(n, this.count));
    const c = COLUMN_INDEX[column];
    const out = new Float64Array(k);
    for (let i = 0; i < k; i++) out[i] = this.value(c, k - 1 - i);
    return out;
  }

  /**
   * The median of the finite values among a column's newest `n` (all stored by default); NaN
   * when there are none. The mean of the two middle values for an even count.
   */
  median(column: SampleColumn, n = this.count): number {
    const values = this.column(column, n).filter(Number.isFinite).sort();
    const k = values.length;
    if (k === 0) return NaN;
    const mid = k >> 1;
    return k % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
  }

  /** Every stored sample, oldest first. */
  toArray(): StoredSample[] {
    const out: StoredSample[] = [];
    for (let back = this.count - 1; back >= 0; back--) out.push(this.get(back));
    return out;
  }
}
