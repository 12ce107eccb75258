import fc from 'fast-check';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { BASELINES, SeasonalForecaster } from '../../src/lps/forecast/baselines.js';
import { BaselineBank } from '../../src/lps/forecast/bank.js';
import { ForecastEnsemble } from '../../src/lps/forecast/ensemble.js';
import type { Forecast } from '../../src/lps/forecast/forecaster.js';
import { defaultTraceDir, readTrace } from '../../src/sim/traces.js';

interface Setup {
  seasonal: boolean;
  lstm: boolean;
  maxHorizon: number;
  window: number;
  minCount: number;
}

/** The ensemble the scorer built per endpoint and metric before the bank. */
function ensembleOf(s: Setup, slot: number): ForecastEnsemble {
  return new ForecastEnsemble({
    forecasters: [
      ...Object.values(BASELINES).map((f) => f()),
      // The bank searches each slot's period at the slot's own phase.
      ...(s.seasonal ? [new SeasonalForecaster({ detectPhase: slot })] : []),
    ],
    external: s.lstm ? ['lstm'] : [],
    maxHorizon: s.maxHorizon,
    window: s.window,
    minCount: s.minCount,
    fallback: 'ewma',
  });
}

const same = (a: number, b: number) => Object.is(a, b);

/** Everything the scorer reads of an ensemble, compared bit for bit with the bank's slot. */
function expectSame(
  e: ForecastEnsemble,
  bank: BaselineBank,
  slot: number,
  H: number,
  selected = new Set<string>(),
  paths = true,
): void {
  expect(bank.names).toEqual(e.tracker.names);
  for (let h = 1; h <= H; h++) {
    const want = e.forecast(h);
    const has = bank.select(slot, h);
    expect(has).toBe(want !== undefined);
    if (want) {
      expect(bank.names[bank.forecaster]).toBe(want.forecaster);
      selected.add(want.forecaster);
      expect(same(bank.median, want.median)).toBe(true);
      expect(same(bank.upper, want.upper)).toBe(true);
    }
    for (let f = 0; f < bank.names.length; f++) {
      expect(bank.count(slot, f, h)).toBe(e.tracker.count(f, h));
      expect(same(bank.maeOf(slot, f, h), e.tracker.maeOf(f, h))).toBe(true);
      expect(same(bank.maseOf(slot, f, h), e.tracker.maseOf(f, h))).toBe(true);
    }
  }
  if (paths) for (let at = 1; at <= H; at++) expect(bank.path(slot, at)).toEqual(e.path(at));
}

/** Feeds `values` (and, where given, LSTM offers) to an ensemble and a bank slot in step. */
function compare(
  s: Setup,
  values: readonly number[],
  offers?: ReadonlyArray<Forecast[] | null>,
): Set<string> {
  const selected = new Set<string>();
  const e = ensembleOf(s, 1);
  const bank = new BaselineBank({ ...s, external: s.lstm ? ['lstm'] : [], fallback: 'ewma' });
  // Neighbours in the same bank must not disturb the slot under test.
  const [before, slot, after] = [0, 1, 2];
  for (const k of [before, slot, after]) bank.open(k);
  expectSame(e, bank, slot, s.maxHorizon);
  values.forEach((v, i) => {
    e.observe(v);
    bank.observe(slot, v);
    bank.observe(before, 1 - v);
    bank.observe(after, v * 3);
    const offer = offers?.[i];
    if (offer) {
      e.offer('lstm', offer);
      bank.offer(slot, 'lstm', offer);
      // The neighbours' offers, other numbers, before and after in the same chunk.
      const other = offer.map((f) => ({ median: f.upper, upper: f.upper + 1 }));
      bank.offer(before, 'lstm', other);
      bank.offer(after, 'lstm', other.slice(1));
    }
    // The paths (GetForecast) at every fifth step: they read what `select` reads.
    expectSame(e, bank, slot, s.maxHorizon, selected, i % 5 === 0);
  });
  return selected;
}

const setup = fc.record({
  seasonal: fc.boolean(),
  lstm: fc.boolean(),
  maxHorizon: fc.integer({ min: 1, max: 8 }),
  window: fc.integer({ min: 2, max: 120 }),
  minCount: fc.integer({ min: 1, max: 12 }),
});

/** Load-like values: a periodic part (so the seasonal forecaster finds periods), noise, gaps. */
const series = fc
  .record({
    period: fc.integer({ min: 4, max: 40 }),
    amplitude: fc.double({ min: 0, max: 0.5, noNaN: true }),
    noise: fc.array(fc.double({ min: -0.1, max: 0.1, noNaN: true }), {
      minLength: 1,
      maxLength: 140,
    }),
    gaps: fc.array(fc.constantFrom(NaN, Infinity, -Infinity), { maxLength: 3 }),
    gapAt: fc.array(fc.nat(), { maxLength: 3 }),
  })
  .map(({ period, amplitude, noise, gaps, gapAt }) => {
    const v = noise.map((n, i) => 0.4 + (i % period < period / 3 ? amplitude : 0) + n);
    gaps.forEach((g, k) => (v[(gapAt[k] ?? 0) % v.length] = g));
    return v;
  });

/** LSTM offers: Float32 numbers, as its worker answers (the bank holds external ones so). */
const offer = fc.option(
  fc.array(
    fc.record({
      median: fc.float({ min: 0, max: 1, noNaN: true }),
      upper: fc.float({ min: 0, max: Math.fround(1.2), noNaN: true }),
    }),
    { minLength: 1, maxLength: 9 },
  ),
  { freq: 3 },
);

describe('BaselineBank is the ensemble of the baselines, bit for bit', () => {
  test('on random load-like series with gaps, any horizon, window and LSTM offers', () => {
    fc.assert(
      fc.property(setup, series, fc.array(offer, { maxLength: 140 }), (s, values, offers) => {
        compare(s, values, s.lstm ? offers : undefined);
      }),
      { numRuns: 100 },
    );
  });

  test('on a real trace long enough for the seasonal forecaster to find and lose periods', () => {
    // A NAB CPU trace the repository carries (data/traces/nab), so a clone alone runs it.
    const file = join(defaultTraceDir(), 'ec2_cpu_utilization_5f5533.csv');
    const cpu = readTrace(file, 'value').values.slice(0, 900);
    // A periodic job on top (for the seasonal forecaster), then a steady ramp (for Holt).
    const values = [
      ...cpu.map((v, i) => v / 100 + (i % 24 < 3 ? 0.3 : 0)),
      ...Array.from({ length: 150 }, (_, i) => 0.1 + 0.004 * i),
    ];
    const withSeasonal = compare(
      { seasonal: true, lstm: false, maxHorizon: 5, window: 100, minCount: 10 },
      values,
    );
    // Every baseline was the selected one at some step, so each path was compared.
    expect([...withSeasonal].sort()).toEqual(['ewma', 'holt', 'last', 'seasonal']);
    compare({ seasonal: false, lstm: false, maxHorizon: 5, window: 100, minCount: 10 }, values);
  });

  test('with periods shorter than the horizon, found, changed and wrapped around the history', () => {
    // Period 4, then 7, then 5, with noise: the seasonal forecasts stop at h = P, and the history
    // (361 values) wraps several times.
    let x = 7;
    const noise = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.02;
    const values = Array.from({ length: 1400 }, (_, i) => {
      const P = i < 500 ? 4 : i < 1000 ? 7 : 5;
      return 0.4 + 0.25 * ((i % P) / P) + noise();
    });
    const selected = compare(
      { seasonal: true, lstm: false, maxHorizon: 12, window: 100, minCount: 10 },
      values,
    );
    expect(selected.has('seasonal')).toBe(true);
  });

  test('a slot opened again starts afresh; the bank grows and keeps the other slots', () => {
    const s: Setup = { seasonal: true, lstm: false, maxHorizon: 5, window: 100, minCount: 10 };
    const bank = new BaselineBank({ ...s, fallback: 'ewma' });
    const slots = Array.from({ length: 100 }, (_, i) => i);
    const kept = ensembleOf(s, 99);
    for (const slot of slots) bank.open(slot);
    for (let i = 0; i < 200; i++) {
      for (const slot of slots) bank.observe(slot, (i % 7) / 7);
      kept.observe((i % 7) / 7);
    }
    bank.open(500); // grows past the first 100
    expectSame(kept, bank, 99, 5);
    const reused = 42;
    bank.open(reused);
    expect(() => bank.open(-1)).toThrow(/bank slot must be a non-negative integer, got -1/);
    const e = ensembleOf(s, reused);
    for (let i = 0; i < 100; i++) {
      const v = 0.3 + 0.1 * Math.sin(i);
      e.observe(v);
      bank.observe(reused, v);
    }
    expectSame(e, bank, reused, 5);
  });
});

describe('BaselineBank external forecasts', () => {
  test('are held at Float32 precision, a row of their own per slot', () => {
    const H = 3;
    const options = { seasonal: true, maxHorizon: H, window: 10, minCount: 1, fallback: 'ewma' };
    const without = new BaselineBank(options);
    const withLstm = new BaselineBank({ ...options, external: ['lstm'] });
    // The Float64 row gains the forecaster's error and count per horizon and the horizons it
    // offered; the H + 1 pending steps' medians and the step's offer (H medians, H uppers) are
    // Float32.
    const float64 = 2 * H + 1;
    const float32 = (H + 1) * H + 2 * H;
    expect(withLstm.bytesPerSeries - without.bytesPerSeries).toBe(8 * float64 + 4 * float32);
    withLstm.open(0);
    // Values alternate 0.2, 0.6 and the LSTM offers the next one exactly, as a Float64: neither
    // is a Float32, so its error is not 0 but the rounding's, and its forecast reads back rounded.
    const lstm = withLstm.names.indexOf('lstm');
    const at = (i: number) => (i % 2 === 0 ? 0.2 : 0.6);
    for (let i = 0; i < 6; i++) {
      withLstm.observe(0, at(i));
      withLstm.offer(0, 'lstm', [{ median: at(i + 1), upper: at(i + 1) + 0.1 }]);
    }
    expect(withLstm.count(0, lstm, 1)).toBe(5);
    expect(withLstm.maeOf(0, lstm, 1)).toBeGreaterThan(0);
    expect(withLstm.maeOf(0, lstm, 1)).toBeLessThan(1e-7);
    expect(withLstm.select(0, 1)).toBe(true);
    expect(withLstm.names[withLstm.forecaster]).toBe('lstm');
    expect(withLstm.median).toBe(Math.fround(at(6)));
    expect(withLstm.upper).toBe(Math.fround(at(6) + 0.1));
  });
});

describe('BaselineBank.offerPairs', () => {
  test('is offer from a packed buffer: the same state bit for bit, and nothing where a median is NaN', () => {
    fc.assert(
      fc.property(setup, series, fc.array(offer, { maxLength: 140 }), (s, values, offers) => {
        const options = { ...s, external: ['lstm'], fallback: 'ewma' };
        const byObjects = new BaselineBank(options);
        const byPairs = new BaselineBank(options);
        for (const bank of [byObjects, byPairs]) for (const k of [0, 1]) bank.open(k);
        values.forEach((v, i) => {
          for (const bank of [byObjects, byPairs]) {
            bank.observe(1, v);
            bank.observe(0, v / 2);
          }
          const o = offers[i];
          if (o) {
            // As the worker answers: Float32 (median, upper) pairs after another series' pairs.
            const packed = new Float32Array(4 + 2 * o.length).fill(7);
            o.forEach((f, h) => packed.set([f.median, f.upper], 4 + 2 * h));
            const gap = i % 7 === 3 ? 0 : -1; // now and then a NaN median: no offer at all
            if (gap >= 0) packed[4 + 2 * gap] = NaN;
            const offered = byPairs.offerPairs(1, 'lstm', packed, 4, o.length);
            expect(offered).toBe(gap < 0);
            if (gap < 0) {
              byObjects.offer(
                1,
                'lstm',
                o.map((_, h) => ({ median: packed[4 + 2 * h]!, upper: packed[5 + 2 * h]! })),
              );
            }
          }
          for (let h = 1; h <= s.maxHorizon; h++) {
            expect(byPairs.select(1, h)).toBe(byObjects.select(1, h));
            expect(Object.is(byPairs.median, byObjects.median)).toBe(true);
            expect(Object.is(byPairs.upper, byObjects.upper)).toBe(true);
            expect(byPairs.forecaster).toBe(byObjects.forecaster);
            for (let f = 0; f < byObjects.names.length; f++)
              expect(Object.is(byPairs.maseOf(1, f, h), byObjects.maseOf(1, f, h))).toBe(true);
          }
          expect(byPairs.path(1, 1)).toEqual(byObjects.path(1, 1));
        });
      }),
      { numRuns: 100 },
    );
  });
});
