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
 * A sample with every column NaN, to read samples into (SampleRing.read). Built field by field,
 * not as an object literal: V8's sampling heap profiler shows `read`'s stores into a literal's
 * fields boxing every number (130 bytes a read), and into these none.
 */
export function emptySample(): StoredSample {
  const s = {} as StoredSample;
  for (const c of SAMPLE_COLUMNS) s[c] = NaN;
  return s;
}

/**
 * How a column is held past the newest HOT samples:
 * - `residual`: Float32 residual against the first value of its block of BLOCK slots (a Float64
 *   anchor): exact for integers (ms timestamps, sequences) while a block spans less than 2^24,
 *   so it keeps epoch milliseconds that a plain Float32 would round to minutes;
 * - `float`: Float32, relative error at most 2^-24 (NaN and ±Infinity kept);
 * - `fraction`: 16-bit fixed point over [0, 1] (values outside are clamped; NaN kept), absolute
 *   error at most 1 / (2 · FRACTION_STEPS).
 * - `offset16`: a 16-bit offset from the lowest value of its block of BLOCK slots (a Float64
 *   anchor), in a power-of-two step (a Float64 per block) chosen when the block begins from the
 *   values that will fill it (the history tier is fed from the detailed one, which already holds
 *   them): exact for whole numbers (ms timestamps) while a block spans at most OFFSET_STEPS
 *   (65.5 s: 32 samples at intervals up to 2 s), else within half a step, at most
 *   span / OFFSET_STEPS (0.15 s for 32 samples at 5 minutes). Not finite values read back NaN.
 *   History tier only (it needs the values to come).
 */
export type ColumnCodec = 'residual' | 'float' | 'fraction' | 'offset16';

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

/**
 * The columns the whole ring keeps, and how: the history the dashboard plots. The other
 * columns are kept for the newest `detail` samples only (what every other reader uses: the
 * forecasters' backfill, a snapshot, the swap judge).
 */
export const HISTORY_CODECS: Readonly<Partial<Record<SampleColumn, ColumnCodec>>> = {
  timestamp: 'offset16',
  cpu: 'fraction',
};

/**
 * The history's codecs when the detailed samples are fewer than a block (`offset16` needs a
 * block's values ahead): the timestamp as a Float32 residual, exact.
 */
export const SHORT_DETAIL_HISTORY_CODECS: Readonly<Partial<Record<SampleColumn, ColumnCodec>>> = {
  timestamp: 'residual',
  cpu: 'fraction',
};

/** Samples kept with every column by default (`lps.detailSamples`): what a snapshot keeps. */
export const DEFAULT_DETAIL = 128;

/** The newest samples are also kept exactly (Float64): what the scorer reads at every tick. */
export const HOT = 4;
/** Slots per block of a residual column (one Float64 anchor each). */
export const BLOCK = 32;
/** Steps of a fraction column over [0, 1]; the code FRACTION_STEPS + 1 is NaN. */
export const FRACTION_STEPS = 65_534;
const FRACTION_NAN = FRACTION_STEPS + 1;
/** Largest error of a fraction column (half a step). */
export const FRACTION_PRECISION = 0.5 / FRACTION_STEPS;
/** Steps of an offset16 column's block; the code OFFSET_STEPS + 1 is NaN. */
export const OFFSET_STEPS = 65_534;
const OFFSET_NAN = OFFSET_STEPS + 1;
/** Largest relative error of a float column (Float32 rounding). */
export const FLOAT_PRECISION = 2 ** -24;

const NCOL = SAMPLE_COLUMNS.length;
/**
 * One sample's columns as SampleRing's `read` gathers them and `push` stores them: one for every
 * ring, as both are synchronous.
 */
const ROW = new Float64Array(NCOL);
const COLUMN_INDEX = Object.fromEntries(SAMPLE_COLUMNS.map((c, i) => [c, i])) as Record<
  SampleColumn,
  number
>;

/** Where each column of a tier lives: its row in the Float32 or the Uint16 table, its anchors. */
interface Layout {
  /** Per sample column: -1 when the tier does not keep it. */
  f32: number[];
  u16: number[];
  /** A residual column's anchor row; an offset16 column's anchor row, its step row next. */
  anchor: number[];
  offset: boolean[];
  kept: boolean[];
  nf: number;
  nu: number;
  na: number;
}

function layoutOf(codecs: Readonly<Partial<Record<SampleColumn, ColumnCodec>>>): Layout {
  const l: Layout = {
    f32: [],
    u16: [],
    anchor: [],
    offset: [],
    kept: [],
    nf: 0,
    nu: 0,
    na: 0,
  };
  for (const c of SAMPLE_COLUMNS) {
    const codec = codecs[c];
    l.kept.push(codec !== undefined);
    l.offset.push(codec === 'offset16');
    l.f32.push(codec === 'residual' || codec === 'float' ? l.nf++ : -1);
    l.u16.push(codec === 'fraction' || codec === 'offset16' ? l.nu++ : -1);
    l.anchor.push(codec === 'residual' ? l.na++ : codec === 'offset16' ? (l.na += 2) - 2 : -1);
  }
  return l;
}

const DETAIL_LAYOUT = layoutOf(COLUMN_CODECS);
const HISTORY_LAYOUT = layoutOf(HISTORY_CODECS);
const SHORT_DETAIL_HISTORY_LAYOUT = layoutOf(SHORT_DETAIL_HISTORY_CODECS);

const toOffset = (v: number, anchor: number, step: number): number => {
  if (!Number.isFinite(v) || !Number.isFinite(anchor)) return OFFSET_NAN;
  const q = Math.round((v - anchor) / step);
  return q <= 0 ? 0 : q >= OFFSET_STEPS ? OFFSET_STEPS : q;
};

const toFraction = (v: number): number =>
  Number.isNaN(v) ? FRACTION_NAN : Math.round((v <= 0 ? 0 : v >= 1 ? 1 : v) * FRACTION_STEPS);
const fromFraction = (q: number): number => (q === FRACTION_NAN ? NaN : q / FRACTION_STEPS);

/** The typed arrays a ring's tiers share: one ArrayBuffer, one view per element type. */
interface Tables {
  floats: Float32Array;
  fractions: Uint16Array;
  exact: Float64Array;
}

/** Elements a tier takes in each table. */
function tierSize(capacity: number, layout: Layout, hot: number) {
  return {
    exact: hot * NCOL + layout.na * (Math.ceil(capacity / BLOCK) + 1),
    floats: layout.nf * capacity,
    fractions: layout.nu * capacity,
  };
}

/**
 * A fixed-size ring of some columns, column by column in its own part of the ring's typed arrays
 * (allocated once, shared by the tiers): a Float32 table, a Uint16 table and a small Float64
 * table for the `hot` exact newest samples and the anchors. Values are pushed and read by sample
 * column index.
 */
class Tier {
  readonly capacity: number;
  private readonly layout: Layout;
  private readonly hot: number;
  /** Float32 columns (residual and float), column-major: [f + row * capacity + slot]. */
  private readonly floats: Float32Array;
  private readonly f: number;
  /** Fraction columns, column-major, from `u`. */
  private readonly fractions: Uint16Array;
  private readonly u: number;
  /**
   * From `e`: [hot * NCOL exact newest values][anchors: na * blocks][the anchors of the block
   * being overwritten, for its slots still holding the previous lap: na].
   */
  private readonly exact: Float64Array;
  private readonly e: number;
  private readonly blocks: number;
  private head = 0; // next write position
  count = 0;
  private pushed = 0;

  clear(): void {
    this.head = 0;
    this.count = 0;
    this.pushed = 0;
  }

  /** `at`: where its part of each table begins. */
  constructor(
    capacity: number,
    layout: Layout,
    hot: number,
    tables: Tables,
    at: { exact: number; floats: number; fractions: number },
  ) {
    this.capacity = capacity;
    this.layout = layout;
    this.hot = hot;
    this.blocks = Math.ceil(capacity / BLOCK);
    this.exact = tables.exact;
    this.floats = tables.floats;
    this.fractions = tables.fractions;
    this.e = at.exact;
    this.f = at.floats;
    this.u = at.fractions;
  }

  /** `source.value(c, back)` into `out[c]` for each column this tier keeps (the others as they were). */
  gather(source: Tier, back: number, out: Float64Array): void {
    const kept = this.layout.kept;
    for (let c = 0; c < NCOL; c++) if (kept[c]) out[c] = source.value(c, back);
  }

  /**
   * `values[c]` for every column the tier keeps; `ahead(c, j)` the value of the j-th sample to be
   * pushed after this one (offset16 columns read a block's values when it begins).
   */
  push(values: Float64Array, ahead?: (c: number, j: number) => number): void {
    const L = this.layout;
    const slot = this.head;
    const cap = this.capacity;
    const hot = this.hot > 0 ? this.e + (this.pushed % this.hot) * NCOL : -1;
    const anchors = this.e + this.hot * NCOL;
    const previous = anchors + L.na * this.blocks;
    const block = (slot / BLOCK) | 0;
    const startsBlock = slot % BLOCK === 0;
    for (let c = 0; c < NCOL; c++) {
      if (!L.kept[c]) continue;
      const v = values[c]!;
      if (hot >= 0) this.exact[hot + c] = v;
      const u = L.u16[c]!;
      if (u >= 0 && L.offset[c]) {
        const ai = anchors + L.anchor[c]! * this.blocks + block;
        const si = ai + this.blocks;
        if (startsBlock) {
          const pi = previous + L.anchor[c]!;
          this.exact[pi] = this.exact[ai]!;
          this.exact[pi + 1] = this.exact[si]!;
          let lo = Number.isFinite(v) ? v : Infinity;
          let hi = Number.isFinite(v) ? v : -Infinity;
          const n = Math.min(BLOCK, cap - slot);
          for (let j = 1; j < n && ahead; j++) {
            const x = ahead(c, j);
            if (!Number.isFinite(x)) continue;
            if (x < lo) lo = x;
            if (x > hi) hi = x;
          }
          let step = 1;
          while ((hi - lo) / step > OFFSET_STEPS) step *= 2;
          this.exact[ai] = lo;
          this.exact[si] = step;
        }
        this.fractions[this.u + u * cap + slot] = toOffset(v, this.exact[ai]!, this.exact[si]!);
        continue;
      }
      if (u >= 0) {
        this.fractions[this.u + u * cap + slot] = toFraction(v);
        continue;
      }
      const a = L.anchor[c]!;
      const at = this.f + L.f32[c]! * cap + slot;
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

  /** The value held in `slot` (not of the hot newest: those are read exactly). */
  private stored(c: number, slot: number): number {
    const L = this.layout;
    const cap = this.capacity;
    const u = L.u16[c]!;
    if (u >= 0 && !L.offset[c]) return fromFraction(this.fractions[this.u + u * cap + slot]!);
    const a = L.anchor[c]!;
    if (a < 0) return this.floats[this.f + L.f32[c]! * cap + slot]!;
    const block = (slot / BLOCK) | 0;
    const last = (this.head - 1 + cap) % cap;
    // Slots after the newest in the block being written still hold the previous lap.
    const previousLap = slot > last && block === ((last / BLOCK) | 0);
    const anchors = this.e + this.hot * NCOL;
    const ai = previousLap ? anchors + L.na * this.blocks + a : anchors + a * this.blocks + block;
    const anchor = this.exact[ai]!;
    if (u >= 0) {
      const q = this.fractions[this.u + u * cap + slot]!;
      const step = this.exact[previousLap ? ai + 1 : ai + this.blocks]!;
      return q === OFFSET_NAN ? NaN : anchor + q * step;
    }
    const r = this.floats[this.f + L.f32[c]! * cap + slot]!;
    return Number.isFinite(anchor) ? anchor + r : r;
  }

  /**
   * Every column of the `back`-th newest sample held (0 = newest; within `count`; a tier that
   * keeps every column) into `out`: written, not returned one by one, since a number returned from
   * a call that is not inlined is boxed on the heap (SampleRing.read, for every endpoint's tick).
   */
  readRow(back: number, out: Float64Array): void {
    if (back < this.hot) {
      const at = this.e + ((this.pushed - 1 - back) % this.hot) * NCOL;
      for (let c = 0; c < NCOL; c++) out[c] = this.exact[at + c]!;
      return;
    }
    const slot = (this.head - 1 - back + this.capacity) % this.capacity;
    for (let c = 0; c < NCOL; c++) out[c] = this.stored(c, slot);
  }

  /** Column `c` of the `back`-th newest sample held (0 = newest; within `count`; a kept column). */
  value(c: number, back: number): number {
    if (back < this.hot)
      return this.exact[this.e + ((this.pushed - 1 - back) % this.hot) * NCOL + c]!;
    return this.stored(c, (this.head - 1 - back + this.capacity) % this.capacity);
  }
}

/**
 * An endpoint's samples: every column of the newest `detail` samples (what the forecasters, a
 * snapshot and the swap judge read), and for the older ones, up to `capacity` samples in all,
 * the timestamp and the CPU (`HISTORY_CODECS`: the history the dashboard plots). Fixed size,
 * allocated once, so an endpoint costs the same memory from its first sample on, and no sample is
 * an object. The detail columns take 54 bytes a sample (Float64 everywhere: 112), the history 4.
 * The HOT newest samples read back exactly; older ones within the precision of their column's
 * codec (COLUMN_CODECS, HISTORY_CODECS).
 */
export class SampleRing {
  /** Samples held in all (`historySize` at most this). */
  readonly capacity: number;
  /** Samples held with every column (`size` at most this). */
  readonly detail: number;
  private readonly recent: Tier;
  private readonly history: Tier | undefined;
  /** Bytes of the one ArrayBuffer both tiers live in. */
  readonly bytes: number;

  constructor(capacity: number, detail = Math.min(capacity, DEFAULT_DETAIL)) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`ring capacity must be a positive integer, got ${capacity}`);
    if (!Number.isInteger(detail) || detail < 1 || detail > capacity)
      throw new RangeError(
        `ring detail must be an integer in [1, capacity ${capacity}], got ${detail}`,
      );
    this.capacity = capacity;
    this.detail = detail;
    // One ArrayBuffer for both tiers, with one view per element type (Float64 first, so every
    // view is aligned): an ArrayBuffer and its views are objects, and a backing store an
    // allocation, of every endpoint.
    const hot = Math.min(HOT, detail);
    const older = capacity - detail;
    const r = tierSize(detail, DETAIL_LAYOUT, hot);
    const historyLayout = detail >= BLOCK ? HISTORY_LAYOUT : SHORT_DETAIL_HISTORY_LAYOUT;
    const h = older > 0 ? tierSize(older, historyLayout, 0) : { exact: 0, floats: 0, fractions: 0 };
    const exact = r.exact + h.exact;
    const floats = r.floats + h.floats;
    const fractions = r.fractions + h.fractions;
    const buffer = new ArrayBuffer(exact * 8 + floats * 4 + fractions * 2);
    const tables: Tables = {
      exact: new Float64Array(buffer, 0, exact),
      floats: new Float32Array(buffer, exact * 8, floats),
      fractions: new Uint16Array(buffer, exact * 8 + floats * 4, fractions),
    };
    this.bytes = buffer.byteLength;
    this.recent = new Tier(detail, DETAIL_LAYOUT, hot, tables, {
      exact: 0,
      floats: 0,
      fractions: 0,
    });
    this.history =
      older > 0
        ? new Tier(older, historyLayout, 0, tables, {
            exact: r.exact,
            floats: r.floats,
            fractions: r.fractions,
          })
        : undefined;
  }

  /** Samples held with every column: what `get`, `latest`, `column` and `toArray` read. */
  get size(): number {
    return this.recent.count;
  }

  /** Samples held in all: `at` reads the history's columns (HISTORY_CODECS) this far back. */
  get historySize(): number {
    return this.recent.count + (this.history?.count ?? 0);
  }

  /**
   * Stores a sample. Its columns reach the tiers through a Float64Array, read from `sample` by
   * name: read by a computed name, each number was boxed on the heap (V8's sampling heap
   * profiler: about 170 bytes a push before, 50 after).
   */
  push(sample: StoredSample): void {
    const recent = this.recent;
    const v = ROW;
    // The oldest detailed sample is about to be overwritten: its history columns move on.
    if (this.history && recent.count === recent.capacity) {
      const oldest = recent.count - 1;
      const h = this.history;
      h.gather(recent, oldest, v);
      // The samples that will follow it into the history are the next oldest detailed ones.
      h.push(v, (c, j) => (j <= oldest ? recent.value(c, oldest - j) : NaN));
    }
    // One load per column, in SAMPLE_COLUMNS' order (checked as `read`'s stores are).
    v[0] = sample.timestamp;
    v[1] = sample.receivedAt;
    v[2] = sample.sequence;
    v[3] = sample.cpu;
    v[4] = sample.memory;
    v[5] = sample.network;
    v[6] = sample.networkCapacity;
    v[7] = sample.responseTime;
    v[8] = sample.healthy;
    v[9] = sample.requestRate;
    v[10] = sample.processCpu;
    v[11] = sample.completed;
    v[12] = sample.latencySum;
    v[13] = sample.span;
    recent.push(v);
  }

  private value(c: number, back: number): number {
    return this.recent.value(c, back);
  }

  /**
   * The i-th newest sample's column value (0 = newest); NaN past the oldest held with that
   * column (`size` for most, `historySize` for the history's).
   */
  at(column: SampleColumn, back = 0): number {
    if (back < 0) return NaN;
    const c = COLUMN_INDEX[column];
    if (back < this.recent.count) return this.recent.value(c, back);
    const h = this.history;
    const older = back - this.recent.count;
    if (!h || older >= h.count || !HISTORY_LAYOUT.kept[c]) return NaN;
    return h.value(c, older);
  }

  latest(): StoredSample | undefined {
    if (this.size === 0) return undefined;
    return this.get(0);
  }

  /** The i-th newest sample (0 = newest), as a new object; NaN in every column past `size`. */
  get(back: number): StoredSample {
    return this.read(back, emptySample());
  }

  /**
   * `get` into an object the caller keeps (a scoring tick reads thousands without allocating).
   * The columns go through a Float64Array and into `out` by name: a store by a computed name
   * boxes each number on the heap.
   */
  read(back: number, out: StoredSample): StoredSample {
    if (back < 0 || back >= this.size) {
      for (const c of SAMPLE_COLUMNS) out[c] = NaN;
      return out;
    }
    const v = ROW;
    this.recent.readRow(back, v);
    // One store per column, in SAMPLE_COLUMNS' order (test/lps/ring.test.ts compares every
    // column of `get` with `at`, which reads by the column's index).
    out.timestamp = v[0]!;
    out.receivedAt = v[1]!;
    out.sequence = v[2]!;
    out.cpu = v[3]!;
    out.memory = v[4]!;
    out.network = v[5]!;
    out.networkCapacity = v[6]!;
    out.responseTime = v[7]!;
    out.healthy = v[8]!;
    out.requestRate = v[9]!;
    out.processCpu = v[10]!;
    out.completed = v[11]!;
    out.latencySum = v[12]!;
    out.span = v[13]!;
    return out;
  }

  /** The last `n` values of a column, oldest first (fewer if fewer are held with every column). */
  column(column: SampleColumn, n = this.size): Float64Array {
    const k = Math.max(0, Math.min(n, this.size));
    const c = COLUMN_INDEX[column];
    const out = new Float64Array(k);
    for (let i = 0; i < k; i++) out[i] = this.value(c, k - 1 - i);
    return out;
  }

  /**
   * The median of the finite values among a column's newest `n` (all held with every column by
   * default); NaN when there are none. The mean of the two middle values for an even count.
   */
  median(column: SampleColumn, n = this.size): number {
    const values = this.column(column, n).filter(Number.isFinite).sort();
    const k = values.length;
    if (k === 0) return NaN;
    const mid = k >> 1;
    return k % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
  }

  /**
   * Forgets every sample (the storage is kept and overwritten by the next pushes): cluster mode
   * rebuilds a history in sequence order with it (EndpointStore.backfill).
   */
  clear(): void {
    this.recent.clear();
    this.history?.clear();
  }

  /** Every sample held with every column, oldest first. */
  toArray(): StoredSample[] {
    const out: StoredSample[] = [];
    for (let back = this.size - 1; back >= 0; back--) out.push(this.get(back));
    return out;
  }
}
