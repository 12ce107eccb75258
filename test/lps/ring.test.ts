import fc from 'fast-check';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import { forecastConfigSchema } from '../../src/lps/forecast/config.js';
import { ForecastScorer } from '../../src/lps/forecast/scorer.js';
import {
  BLOCK,
  COLUMN_CODECS,
  FRACTION_PRECISION,
  HISTORY_CODECS,
  HOT,
  OFFSET_STEPS,
  SAMPLE_COLUMNS,
  SHORT_DETAIL_HISTORY_CODECS,
  SampleRing,
  type SampleColumn,
  type StoredSample,
} from '../../src/lps/ring.js';
import type { EndpointRecord } from '../../src/lps/types.js';
import { defaultTraceDir, readTrace } from '../../src/sim/traces.js';
import { ACTIVE, record } from '../forecast/scorer-support.js';

const unit = fc.oneof(
  { weight: 9, arbitrary: fc.double({ min: 0, max: 1, noNaN: true }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, NaN) },
);
const float = fc.oneof(
  { weight: 8, arbitrary: fc.double({ min: -1e12, max: 1e12, noNaN: true }) },
  { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, 0) },
);

/** Samples as the store writes them: ms clocks and sequences rising by whole steps. */
const samples = (max: number) =>
  fc
    .array(
      fc.record({
        step: fc.integer({ min: 1, max: 300_000 }),
        skew: fc.integer({ min: -30_000, max: 30_000 }),
        seqStep: fc.integer({ min: 1, max: 10_000 }),
        cpu: unit,
        memory: unit,
        healthy: fc.constantFrom(0, 1, NaN),
        processCpu: unit,
        network: float,
        networkCapacity: float,
        responseTime: float,
        requestRate: float,
        completed: fc.oneof(fc.integer({ min: 0, max: 1_000_000 }), fc.constant(NaN)),
        latencySum: float,
        span: float,
      }),
      { maxLength: max },
    )
    .map((rows) => {
      let t = 1_764_950_000_000;
      let seq = 0;
      return rows.map(({ step, skew, seqStep, ...rest }): StoredSample => {
        t += step;
        seq += seqStep;
        return { timestamp: t, receivedAt: t + skew, sequence: seq, ...rest };
      });
    });

/** What a column may read back as, `back` samples from the newest. */
function expectStored(column: SampleColumn, got: number, want: number, back: number): void {
  if (back < HOT || Number.isNaN(want)) {
    expect(got).toBe(want);
    return;
  }
  const codec = COLUMN_CODECS[column];
  if (codec === 'float') expect(got).toBe(Math.fround(want));
  else if (codec === 'residual') expect(got).toBe(want);
  else expect(Math.abs(got - want)).toBeLessThanOrEqual(FRACTION_PRECISION + 1e-15);
}

describe('SampleRing (compact columns)', () => {
  test('reads back every column within its stated precision, the HOT newest exactly', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 * BLOCK + 5 }), samples(300), (capacity, rows) => {
        const ring = new SampleRing(capacity);
        for (const s of rows) ring.push(s);
        expect(ring.size).toBe(Math.min(capacity, rows.length));
        for (let back = 0; back < ring.size; back++) {
          const want = rows[rows.length - 1 - back]!;
          const got = ring.get(back);
          for (const c of SAMPLE_COLUMNS) {
            expectStored(c, got[c], want[c], back);
            expect(Object.is(ring.at(c, back), got[c])).toBe(true);
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  test('keeps the newest `capacity` samples in order across wrap-arounds', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 * BLOCK + 3 }),
        fc.integer({ min: 0, max: 400 }),
        fc.integer({ min: 0, max: 500 }),
        (capacity, pushes, n) => {
          const ring = new SampleRing(capacity);
          for (let i = 1; i <= pushes; i++)
            ring.push({ ...zero, sequence: i, timestamp: 1_764_950_000_000 + 1000 * i });
          const kept = Math.min(capacity, pushes);
          const oldest = pushes - kept + 1;
          const expected = Array.from({ length: kept }, (_, i) => oldest + i);
          expect(Array.from(ring.column('sequence'))).toEqual(expected);
          expect(Array.from(ring.column('sequence', n))).toEqual(expected.slice(-n || kept));
          expect(ring.toArray().map((s) => s.timestamp)).toEqual(
            expected.map((i) => 1_764_950_000_000 + 1000 * i),
          );
          expect(ring.at('sequence', kept)).toBeNaN();
          expect(ring.at('sequence', -1)).toBeNaN();
          if (kept > 0) expect(ring.latest()!.sequence).toBe(pushes);
          else expect(ring.latest()).toBeUndefined();
        },
      ),
      { numRuns: 300 },
    );
  });

  test('median of the newest n is the median of what the ring reads back, NaN ignored', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        samples(200),
        fc.integer({ min: 0, max: 250 }),
        (capacity, rows, n) => {
          const ring = new SampleRing(capacity);
          for (const s of rows) ring.push(s);
          for (const c of ['cpu', 'network', 'completed'] as const) {
            const values = Array.from(ring.column(c, n))
              .filter(Number.isFinite)
              .sort((a, b) => a - b);
            const k = values.length;
            const want =
              k === 0
                ? NaN
                : k % 2
                  ? values[k >> 1]!
                  : (values[(k >> 1) - 1]! + values[k >> 1]!) / 2;
            const got = ring.median(c, n);
            expect(got === want || (Number.isNaN(got) && Number.isNaN(want))).toBe(true);
          }
        },
      ),
      { numRuns: 200 },
    );
    const ring = new SampleRing(16);
    for (const cpu of [0.5, 0.1, NaN, 0.9, 0.3]) ring.push({ ...zero, cpu });
    expect(ring.median('cpu')).toBeCloseTo(0.4, 4);
    expect(ring.median('cpu', 2)).toBeCloseTo(0.6, 4);
  });

  test('a block begun by a missing value keeps its clock in Float32, the next block exact again', () => {
    const ring = new SampleRing(2 * BLOCK);
    const t0 = 1_764_950_000_123;
    for (let i = 0; i < 2 * BLOCK; i++)
      ring.push({ ...zero, timestamp: i === 0 ? NaN : t0 + 1000 * i, sequence: i + 1 });
    const back = (i: number) => 2 * BLOCK - 1 - i;
    expect(ring.at('timestamp', back(0))).toBeNaN();
    expect(ring.at('timestamp', back(1))).toBe(Math.fround(t0 + 1000));
    expect(ring.at('timestamp', back(BLOCK))).toBe(t0 + 1000 * BLOCK);
    expect(ring.at('sequence', back(0))).toBe(1);
  });

  test('refuses a capacity that is not a positive integer', () => {
    expect(() => new SampleRing(0)).toThrow(/ring capacity must be a positive integer, got 0/);
    expect(() => new SampleRing(2.5)).toThrow(/got 2.5/);
  });

  test('holds 54 bytes a detailed sample (112 as Float64 columns) and 4 an older one', () => {
    const ring = new SampleRing(720);
    expect(ring.detail).toBe(128);
    expect(ring.bytes).toBeLessThanOrEqual(128 * 54 + 592 * 4 + 1024);
    expect(new SampleRing(720, 720).bytes).toBeLessThanOrEqual(720 * 54 + 1024);
  });

  test('past the detailed samples, keeps the timestamp (exact within a 65 s block) and the CPU in 16 bits, up to capacity', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 * BLOCK + 3 }),
        fc.integer({ min: 0, max: 3 * BLOCK }),
        samples(400),
        (detail, more, rows) => {
          const capacity = detail + more;
          const ring = new SampleRing(capacity, detail);
          for (const s of rows) ring.push(s);
          expect(ring.size).toBe(Math.min(detail, rows.length));
          expect(ring.historySize).toBe(Math.min(capacity, rows.length));
          for (let back = 0; back < ring.historySize; back++) {
            const want = rows[rows.length - 1 - back]!;
            for (const c of SAMPLE_COLUMNS) {
              const got = ring.at(c, back);
              if (back < ring.size) {
                expectStored(c, got, want[c], back);
                continue;
              }
              const codec = (detail >= BLOCK ? HISTORY_CODECS : SHORT_DETAIL_HISTORY_CODECS)[c];
              if (codec === undefined) expect(got).toBeNaN();
              else if (codec === 'residual') expect(got).toBe(want[c]);
              else if (codec === 'offset16') {
                // Exact while the block it is in spans at most OFFSET_STEPS, else within
                // span / OFFSET_STEPS; its block lies within BLOCK samples either side.
                const k = rows.length - 1 - back;
                const span =
                  rows[Math.min(k + BLOCK - 1, rows.length - 1)]![c] -
                  rows[Math.max(k - BLOCK + 1, 0)]![c];
                if (span <= OFFSET_STEPS) expect(got).toBe(want[c]);
                else expect(Math.abs(got - want[c])).toBeLessThanOrEqual(span / OFFSET_STEPS);
              }
              // Read once as a detailed Float32, then kept as a fraction.
              else if (Number.isNaN(want[c])) expect(got).toBeNaN();
              else expect(Math.abs(got - want[c])).toBeLessThanOrEqual(FRACTION_PRECISION + 1e-7);
            }
            // Whole samples (get, column, toArray) are the detailed ones only.
            if (back >= ring.size) expect(ring.get(back).timestamp).toBeNaN();
          }
          expect(ring.at('timestamp', ring.historySize)).toBeNaN();
          expect(ring.toArray().length).toBe(ring.size);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('the history keeps ms timestamps exactly at intervals up to 2 s, within span / 65534 past, across laps', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2_000, max: 300_000 }),
        fc.array(fc.integer({ min: 1, max: 300_000 }), {
          minLength: 40,
          maxLength: 900,
          size: 'max',
        }),
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: BLOCK, max: 3 * BLOCK }),
        (widest, raw, more, detail) => {
          const ring = new SampleRing(detail + more, detail);
          const times: number[] = [];
          let t = 1_764_950_000_123;
          for (const step of raw) {
            t += 1 + (step % widest);
            times.push(t);
            ring.push({ ...ring.get(-1), timestamp: t, cpu: 0.5 });
          }
          expect(ring.historySize).toBe(Math.min(ring.capacity, times.length));
          for (let back = ring.size; back < ring.historySize; back++) {
            const k = times.length - 1 - back;
            const span =
              times[Math.min(k + BLOCK - 1, times.length - 1)]! -
              times[Math.max(k - BLOCK + 1, 0)]!;
            const got = ring.at('timestamp', back);
            if (span <= OFFSET_STEPS) expect(got).toBe(times[k]);
            else expect(Math.abs(got - times[k]!)).toBeLessThanOrEqual(span / OFFSET_STEPS);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  test('refuses a detail outside 1..capacity', () => {
    expect(() => new SampleRing(16, 17)).toThrow(
      /ring detail must be an integer in \[1, capacity 16\], got 17/,
    );
    expect(() => new SampleRing(16, 0)).toThrow(/got 0/);
  });
});

const zero: StoredSample = {
  timestamp: 0,
  receivedAt: 0,
  sequence: 0,
  cpu: 0,
  memory: 0,
  network: 0,
  networkCapacity: 0,
  responseTime: 0,
  healthy: 1,
  requestRate: 0,
  processCpu: NaN,
  completed: NaN,
  latencySum: NaN,
  span: NaN,
};

/** The ring as it was before (one Float64Array per column), verbatim: the reference. */
class Float64Ring {
  readonly capacity: number;
  private readonly cols: Record<SampleColumn, Float64Array>;
  private head = 0;
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
  at(column: SampleColumn, back = 0): number {
    if (back >= this.count) return NaN;
    return this.cols[column][(this.head - 1 - back + this.capacity) % this.capacity]!;
  }
  latest(): StoredSample | undefined {
    return this.count === 0 ? undefined : this.get(0);
  }
  get(back: number): StoredSample {
    const idx = (this.head - 1 - back + this.capacity) % this.capacity;
    return Object.fromEntries(SAMPLE_COLUMNS.map((c) => [c, this.cols[c][idx]])) as StoredSample;
  }
  read(back: number, out: StoredSample): StoredSample {
    return Object.assign(out, this.get(back));
  }
}

/**
 * A real agent's signals from the NAB traces vendored in the repository (5-minute steps):
 * host CPU of one EC2 instance, the CPU of an RDS instance standing in for the memory share,
 * and an EC2 instance's network-in bytes.
 */
function nabAgent(): StoredSample[] {
  const nab = (name: string) => readTrace(join(defaultTraceDir(), name)).values;
  const cpu = nab('ec2_cpu_utilization_5f5533.csv');
  const memoryShare = nab('rds_cpu_utilization_cc0c53.csv');
  const networkBytes = nab('ec2_network_in_257a54.csv');
  const mem = memoryShare.map((v) => v * 1000);
  const cap = memoryShare.map(() => 100 * 1000);
  const rx = networkBytes.map((v) => v / 1024 / 300);
  const n = 900;
  const t0 = 1_764_950_000_000;
  return Array.from({ length: n }, (_, i) => {
    const host = Math.min(1, cpu[i]! / 100);
    const completed = Math.round(rx[i]! * 10);
    return {
      timestamp: t0 + 1000 * i,
      receivedAt: t0 + 1000 * i + 3,
      sequence: i + 1,
      cpu: host,
      memory: Math.min(1, mem[i]! / cap[i]!),
      network: rx[i]! * 1024,
      networkCapacity: 125e6,
      responseTime: 0.005 + 0.05 * host * host,
      healthy: 1,
      requestRate: 0,
      processCpu: host * 0.7,
      completed,
      latencySum: completed * (0.005 + 0.05 * host * host),
      span: 1,
    };
  });
}

/** Every forecast and assessment of one endpoint fed `trace`, scored every `every` samples. */
async function forecastsOf(
  series: SampleRing,
  trace: readonly StoredSample[],
  every: number,
): Promise<number[]> {
  const config = forecastConfigSchema.parse({ lstm: { enabled: false } });
  const scorer = new ForecastScorer({ config, logger: pino({ level: 'silent' }) });
  const r: EndpointRecord = { ...record('ep'), series };
  const out: number[] = [];
  for (let i = 0; i < trace.length; i++) {
    const s = trace[i]!;
    r.series.push(s);
    r.lastSequence = s.sequence;
    r.samplesStored++;
    r.lastSeenMs = s.receivedAt;
    if ((i + 1) % every !== 0) continue;
    const a = (await scorer.assess([r], new Map([['ep', ACTIVE]]), s.receivedAt)).get('ep')!;
    out.push(a.score, a.weight, a.parts.predictedUtilization, a.parts.predictedResponseTime);
    for (const m of scorer.forecastFor('ep')!.metrics) out.push(...m.median, ...m.upper);
  }
  await scorer.close();
  return out;
}

describe('forecasts from the compact ring', () => {
  const trace = nabAgent();
  const reference = (every: number) =>
    forecastsOf(new Float64Ring(720) as unknown as SampleRing, trace, every);

  test('are those of the Float64 ring when scored at every sample (the HOT newest are exact)', async () => {
    const [want, got] = await Promise.all([
      reference(1),
      forecastsOf(new SampleRing(720), trace, 1),
    ]);
    expect(got.length).toBe(want.length);
    expect(got.length).toBeGreaterThan(900 * 4);
    for (let i = 0; i < want.length; i++) expect(Object.is(got[i], want[i])).toBe(true);
  });

  test('stay within the stored precision when ticks read past the exact newest', async () => {
    // Scored every 10 samples: 6 of every 10 are read from the compact columns.
    const [want, got] = await Promise.all([
      reference(10),
      forecastsOf(new SampleRing(720), trace, 10),
    ]);
    expect(got.length).toBe(want.length);
    let worst = 0;
    for (let i = 0; i < want.length; i++) {
      const scale = Math.max(1, Math.abs(want[i]!));
      const d = Math.abs(got[i]! - want[i]!) / scale;
      worst = Math.max(worst, d);
    }
    // Float32 rounding of what was read, through the forecasters: a few ulps of a Float32.
    expect(worst).toBeLessThan(1e-6);
  });
});
