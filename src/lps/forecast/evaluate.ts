import { BASELINES } from './baselines.js';
import { ErrorTracker } from './error-tracker.js';
import type { ForecasterFactory } from './forecaster.js';

/** One series to evaluate. */
export interface SeriesInput {
  name: string;
  values: ArrayLike<number>;
  /** ms since epoch per value, when known (the LSTM uses time of day). */
  timestamps?: ArrayLike<number>;
}

/**
 * Forecasts made walk-forward, row-major: `m[t * H + h - 1]` is the forecast made
 * right after observing `values[t]` (from `values[0..t]` only) of `values[t + h]`;
 * NaN where the forecaster had none.
 */
export type ForecastMatrix = Float64Array;

/**
 * A forecaster that works on many series at once and is not a synchronous
 * `Forecaster` (the LSTM: trained and run in a worker). Its contract is the same
 * walk-forward one: the row for step t may only depend on values up to t.
 */
export interface BatchWalkForward {
  readonly name: string;
  run(series: readonly SeriesInput[], maxHorizon: number): Promise<ForecastMatrix[]>;
  /**
   * Why it makes no forecast for a series (too short for it, say), per series;
   * undefined where it does forecast. The report says it instead of a blank.
   */
  unforecastable?(series: readonly SeriesInput[], maxHorizon: number): Array<string | undefined>;
}

export interface EvaluateOptions {
  horizons?: readonly number[];
  /** Synchronous forecasters by name; the baselines by default. */
  forecasters?: Readonly<Record<string, ForecasterFactory>>;
  batch?: readonly BatchWalkForward[];
  /** Rolling error window of the selection, in scored forecasts. */
  window?: number;
  /** Scored forecasts before a forecaster may be selected. */
  minCount?: number;
  /** Used by the selection until others qualify. */
  fallback?: string;
  /** Score from this index on at the earliest (all forecasters are scored over one span). */
  scoreFrom?: number;
}

export interface ForecasterScore {
  forecaster: string;
  horizon: number;
  mae: number;
  /** MAE over the one-step last-value MAE of the same span. */
  mase: number;
  count: number;
}

export interface SeriesReport {
  name: string;
  length: number;
  /** First step whose forecasts are scored (every forecaster has one from here on). */
  scoredFrom: number;
  scores: ForecasterScore[];
  /** How often the selection picked each forecaster, per horizon. */
  picks: Record<number, Record<string, number>>;
  /** Forecasters with no forecast on this series, and why. */
  missing: Array<{ forecaster: string; reason: string }>;
}

export interface EvaluationReport {
  horizons: number[];
  /** Forecasters evaluated, then "selected". */
  forecasters: string[];
  series: SeriesReport[];
  /** Mean MASE (and MAE) over the series, per forecaster and horizon. */
  mean: ForecasterScore[];
}

export const SELECTED = 'selected';

/** Runs one forecaster over a series, online: observe value t, then forecast t+1..t+H. */
export function walkForward(
  values: ArrayLike<number>,
  factory: ForecasterFactory,
  maxHorizon: number,
): ForecastMatrix {
  const H = maxHorizon;
  const out = new Float64Array(values.length * H).fill(NaN);
  const f = factory();
  for (let t = 0; t < values.length; t++) {
    f.observe(values[t]!);
    for (let h = 1; h <= H; h++) {
      const fc = f.forecast(h);
      if (fc) out[t * H + h - 1] = fc.median;
    }
  }
  return out;
}

/**
 * Replays the selection the LPS makes: at each step, per horizon, the forecaster
 * with the lowest rolling MAE (scored on actuals already seen) is picked, and its
 * forecast is the selected one. Returns the selected matrix and the picks.
 */
export function selectWalkForward(
  values: ArrayLike<number>,
  matrices: ReadonlyMap<string, ForecastMatrix>,
  maxHorizon: number,
  {
    window = 100,
    minCount = 10,
    fallback,
  }: Pick<EvaluateOptions, 'window' | 'minCount' | 'fallback'> = {},
): { selected: ForecastMatrix; picks: string[][] } {
  const H = maxHorizon;
  const names = [...matrices.keys()];
  const ms = names.map((n) => matrices.get(n)!);
  const fb = Math.max(0, fallback ? names.indexOf(fallback) : 0);
  const tracker = new ErrorTracker({ names, maxHorizon: H, window });
  const selected = new Float64Array(values.length * H).fill(NaN);
  const picks: string[][] = Array.from({ length: H }, () => []);
  for (let t = 0; t < values.length; t++) {
    tracker.observe(values[t]!);
    for (let f = 0; f < names.length; f++)
      for (let h = 1; h <= H; h++) tracker.record(f, h, ms[f]![t * H + h - 1]!);
    for (let h = 1; h <= H; h++) {
      let best = -1;
      let bestMae = Infinity;
      for (let f = 0; f < names.length; f++) {
        if (tracker.count(f, h) < minCount || !Number.isFinite(ms[f]![t * H + h - 1]!)) continue;
        const mae = tracker.maeOf(f, h);
        if (mae < bestMae) {
          bestMae = mae;
          best = f;
        }
      }
      if (best < 0) best = fb;
      selected[t * H + h - 1] = ms[best]![t * H + h - 1]!;
      picks[h - 1]!.push(names[best]!);
    }
  }
  return { selected, picks };
}

function score(
  values: ArrayLike<number>,
  m: ForecastMatrix,
  H: number,
  h: number,
  from: number,
): { mae: number; count: number } {
  let sum = 0;
  let count = 0;
  for (let t = from; t + h < values.length; t++) {
    const y = values[t + h]!;
    const f = m[t * H + h - 1]!;
    if (!Number.isFinite(y) || !Number.isFinite(f)) continue;
    sum += Math.abs(y - f);
    count++;
  }
  return { mae: count ? sum / count : NaN, count };
}

function naiveMae(values: ArrayLike<number>, from: number): number {
  let sum = 0;
  let count = 0;
  for (let t = from + 1; t < values.length; t++) {
    const d = values[t]! - values[t - 1]!;
    if (!Number.isFinite(d)) continue;
    sum += Math.abs(d);
    count++;
  }
  return count ? sum / count : NaN;
}

/**
 * Walk-forward evaluation of every forecaster (and of the selection among them)
 * on each series. No forecast sees the value it forecasts or any later one:
 * synchronous forecasters are fed one value at a time; batch forecasters promise
 * the same (and the test suite checks it by changing the future and comparing).
 * All forecasters of a series are scored over the same span, from the first step
 * at which every one of them has a forecast.
 */
export async function evaluate(
  series: readonly SeriesInput[],
  options: EvaluateOptions = {},
): Promise<EvaluationReport> {
  const horizons = [...(options.horizons ?? [1, 3, 5])].sort((a, b) => a - b);
  const H = horizons.at(-1)!;
  const factories = options.forecasters ?? BASELINES;
  const batchResults = await Promise.all((options.batch ?? []).map((b) => b.run(series, H)));
  const unforecastable = (options.batch ?? []).map((b) => b.unforecastable?.(series, H));
  const names = [...Object.keys(factories), ...(options.batch ?? []).map((b) => b.name)];
  const reports: SeriesReport[] = series.map((s, i) => {
    const matrices = new Map<string, ForecastMatrix>();
    for (const [name, factory] of Object.entries(factories))
      matrices.set(name, walkForward(s.values, factory, H));
    (options.batch ?? []).forEach((b, k) => matrices.set(b.name, batchResults[k]![i]!));
    const { selected, picks } = selectWalkForward(s.values, matrices, H, {
      window: options.window,
      minCount: options.minCount,
      fallback: options.fallback ?? (factories.ewma ? 'ewma' : undefined),
    });
    // Scored from the first step at which every forecaster that forecasts at all has a forecast:
    // one that never does (a series too short for the LSTM) is reported missing, not a blank span.
    let from = options.scoreFrom ?? 0;
    const missing: SeriesReport['missing'] = [];
    for (const [name, m] of matrices) {
      let t = 0;
      while (t < s.values.length && !Number.isFinite(m[t * H]!)) t++;
      if (t < s.values.length) from = Math.max(from, t);
      else {
        const batch = (options.batch ?? []).findIndex((b) => b.name === name);
        missing.push({
          forecaster: name,
          reason:
            (batch >= 0 ? unforecastable[batch]?.[i] : undefined) ??
            `no forecast over the ${s.values.length} values`,
        });
      }
    }
    matrices.set(SELECTED, selected);
    const naive = naiveMae(s.values, from);
    const scores: ForecasterScore[] = [];
    for (const [name, m] of matrices)
      for (const h of horizons) {
        const { mae, count } = score(s.values, m, H, h, from);
        scores.push({
          forecaster: name,
          horizon: h,
          mae,
          mase: naive > 0 ? mae / naive : NaN,
          count,
        });
      }
    const pickCounts: Record<number, Record<string, number>> = {};
    for (const h of horizons) {
      const c: Record<string, number> = {};
      for (const p of picks[h - 1]!.slice(from)) c[p] = (c[p] ?? 0) + 1;
      pickCounts[h] = c;
    }
    return {
      name: s.name,
      length: s.values.length,
      scoredFrom: from,
      scores,
      picks: pickCounts,
      missing,
    };
  });
  const all = [...names, SELECTED];
  const mean: ForecasterScore[] = [];
  for (const name of all)
    for (const h of horizons) {
      const rows = reports.map((r) =>
        r.scores.find((x) => x.forecaster === name && x.horizon === h)!,
      );
      const ok = rows.filter((r) => Number.isFinite(r.mase));
      mean.push({
        forecaster: name,
        horizon: h,
        mae: ok.reduce((a, r) => a + r.mae, 0) / ok.length,
        mase: ok.reduce((a, r) => a + r.mase, 0) / ok.length,
        count: ok.reduce((a, r) => a + r.count, 0),
      });
    }
  return { horizons, forecasters: all, series: reports, mean };
}
