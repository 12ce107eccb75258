import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  EwmaForecaster,
  HoltForecaster,
  LastValueForecaster,
  SeasonalForecaster,
  seasonalLag,
} from '../../src/lps/forecast/baselines.js';
import { ForecastEnsemble } from '../../src/lps/forecast/ensemble.js';
import { ErrorTracker } from '../../src/lps/forecast/error-tracker.js';
import type { Forecaster } from '../../src/lps/forecast/forecaster.js';

const step = (n: number, at: number) => Array.from({ length: n }, (_, i) => (i < at ? 0.2 : 0.8));
const ramp = (n: number) => Array.from({ length: n }, (_, i) => 0.1 + 0.01 * i);
/** A daily cycle sampled every 5 minutes (288 per day). */
const daily = (n: number) =>
  Array.from({ length: n }, (_, i) => 0.5 + 0.3 * Math.sin((2 * Math.PI * i) / 288));

function feed(f: Forecaster, values: number[]): Forecaster {
  for (const v of values) f.observe(v);
  return f;
}

describe('baselines on known series', () => {
  test('nothing observed: no forecast', () => {
    for (const f of [new LastValueForecaster(), new EwmaForecaster(), new HoltForecaster()])
      expect(f.forecast(1)).toBeUndefined();
  });

  test('step: last value jumps at once, EWMA converges to the new level, Holt settles on it', () => {
    const s = step(60, 30);
    expect(feed(new LastValueForecaster(), s.slice(0, 31)).forecast(3)!.median).toBe(0.8);
    const ewma = feed(new EwmaForecaster({ alpha: 0.4 }), s.slice(0, 31));
    expect(ewma.forecast(1)!.median).toBeCloseTo(0.2 + 0.6 * 0.4, 9);
    expect(feed(new EwmaForecaster(), s).forecast(5)!.median).toBeCloseTo(0.8, 6);
    expect(feed(new HoltForecaster(), s).forecast(5)!.median).toBeCloseTo(0.8, 3);
  });

  test('ramp: Holt follows the trend (damped), the flat forecasters lag', () => {
    const s = ramp(100);
    const next5 = 0.1 + 0.01 * 104;
    const holt = feed(new HoltForecaster({ phi: 1 }), s).forecast(5)!.median;
    expect(holt).toBeCloseTo(next5, 6);
    const damped = feed(new HoltForecaster(), s).forecast(5)!.median;
    expect(damped).toBeGreaterThan(s.at(-1)!);
    expect(damped).toBeLessThan(next5);
    expect(feed(new LastValueForecaster(), s).forecast(5)!.median).toBeCloseTo(s.at(-1)!, 12);
    expect(feed(new EwmaForecaster(), s).forecast(5)!.median).toBeLessThan(s.at(-1)!);
  });

  test('daily cycle: one-step errors are small for all, and the upper bound is above the median', () => {
    const s = daily(600);
    for (const f of [new LastValueForecaster(), new EwmaForecaster(), new HoltForecaster()]) {
      feed(f, s.slice(0, 500));
      const fc = f.forecast(1)!;
      expect(Math.abs(fc.median - s[500]!)).toBeLessThan(0.02);
      expect(fc.upper).toBeGreaterThan(fc.median);
      expect(f.forecast(5)!.upper - f.forecast(5)!.median).toBeGreaterThan(fc.upper - fc.median);
    }
  });

  test('missing values are skipped', () => {
    const f = feed(new EwmaForecaster(), [0.5, NaN, Infinity]);
    expect(f.forecast(1)!.median).toBe(0.5);
  });
});

describe('seasonalLag', () => {
  /** The definition, one lag at a time. */
  function reference(d: Float64Array, n: number, minP: number, maxP: number, minC: number): number {
    let energy = 0;
    for (let i = 0; i < n; i++) energy += d[i]! * d[i]!;
    if (energy <= 0) return 0;
    let best = 0;
    let bestR = minC;
    for (let lag = minP; lag <= Math.min(maxP, n >> 1); lag++) {
      let s = 0;
      for (let i = 0; i + lag < n; i++) s += d[i]! * d[i + lag]!;
      const r = s / (n - lag) / (energy / n);
      if (r > bestR) [bestR, best] = [r, lag];
    }
    return best;
  }

  test('finds the lag the definition finds, for every length and range of lags (four lags a pass)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 8, max: 360 }),
        fc.integer({ min: 2, max: 12 }),
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 2, max: 40 }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (n, minP, span, period, seed) => {
          let x = seed;
          const noise = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.3;
          const d = Float64Array.from(
            { length: n },
            (_, i) => Math.sin((2 * Math.PI * i) / period) + noise(),
          );
          const want = reference(d, n, minP, minP + span, 0.3);
          expect(seasonalLag(d, n, minP, minP + span, 0.3)).toBe(want);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('median(h), what the ensemble records', () => {
  test('is forecast(h)?.median (NaN where there is none), bit for bit, for every baseline', () => {
    const makers = [
      () => new LastValueForecaster(),
      () => new EwmaForecaster(),
      () => new HoltForecaster(),
      () => new HoltForecaster({ phi: 1 }),
      () => new SeasonalForecaster({ maxPeriod: 12, detectEvery: 5 }),
    ];
    const value = fc.oneof(
      { weight: 9, arbitrary: fc.double({ min: -10, max: 10, noNaN: true }) },
      { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity) },
    );
    const periodic = fc
      .array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 4, maxLength: 6 })
      .chain((cycle) =>
        fc
          .integer({ min: 10, max: 80 })
          .map((n) => Array.from({ length: n }, (_, i) => cycle[i % cycle.length]!)),
      );
    fc.assert(
      fc.property(fc.oneof(fc.array(value, { maxLength: 80 }), periodic), (values) => {
        for (const make of makers) {
          const f = make();
          for (const v of values) {
            f.observe(v);
            for (let h = 1; h <= 8; h++)
              expect(Object.is(f.median!(h), f.forecast(h)?.median ?? NaN)).toBe(true);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('error tracker and selection', () => {
  test('scores a forecast against the actual h steps later, and MASE against the naive one-step error', () => {
    const t = new ErrorTracker({ names: ['a'], maxHorizon: 2 });
    t.observe(1);
    t.record(0, 1, 1.5); // forecast of step 1
    t.record(0, 2, 3); // forecast of step 2
    t.observe(2); // |2 - 1.5| = 0.5
    expect(t.maeOf(0, 1)).toBeCloseTo(0.5, 12);
    expect(t.count(0, 2)).toBe(0);
    t.observe(3); // |3 - 3| = 0
    expect(t.maeOf(0, 2)).toBe(0);
    expect(t.count(0, 2)).toBe(1);
    // Naive one-step errors so far: |2-1|, |3-2| = 1.
    expect(t.maseOf(0, 1)).toBeCloseTo(0.5, 12);
  });

  test('selects Holt on a ramp and EWMA on noise around a level, per horizon', () => {
    const mk = () =>
      new ForecastEnsemble({
        forecasters: [new LastValueForecaster(), new EwmaForecaster(), new HoltForecaster()],
        maxHorizon: 5,
      });
    const onRamp = mk();
    for (const v of ramp(200)) onRamp.observe(v);
    expect(onRamp.forecast(3)!.forecaster).toBe('holt');
    const onNoise = mk();
    let seed = 7;
    const noise = () => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5) * 0.2;
    for (let i = 0; i < 400; i++) onNoise.observe(0.5 + noise());
    expect(onNoise.forecast(3)!.forecaster).toBe('ewma');
  });

  test('an external forecaster is scored like the others and selected when it is better', () => {
    const e = new ForecastEnsemble({
      forecasters: [new LastValueForecaster()],
      external: ['oracle'],
      maxHorizon: 2,
    });
    const s = daily(200).map((v, i) => v + (i % 2 ? 0.05 : -0.05));
    for (let i = 0; i < s.length - 2; i++) {
      e.observe(s[i]!);
      e.offer('oracle', [
        { median: s[i + 1]!, upper: s[i + 1]! },
        { median: s[i + 2]!, upper: s[i + 2]! },
      ]);
    }
    expect(e.forecast(2)!.forecaster).toBe('oracle');
    e.observe(0.5); // not offered this step: falls back to a forecaster that has a forecast
    expect(e.forecast(2)!.forecaster).toBe('last');
  });
});
