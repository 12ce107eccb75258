import { ResidualScale, type Forecast, type Forecaster } from './forecaster.js';

/** Tomorrow is today: the naive forecast every MASE is scaled by. */
export class LastValueForecaster implements Forecaster {
  readonly name = 'last';
  private last = NaN;
  private readonly residuals = new ResidualScale();

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    if (!Number.isNaN(this.last)) this.residuals.update(this.last, value);
    this.last = value;
  }

  forecast(h: number): Forecast | undefined {
    if (Number.isNaN(this.last)) return undefined;
    return { median: this.last, upper: this.residuals.upper(this.last, h) };
  }

  median(): number {
    return this.last;
  }
}

export interface EwmaOptions {
  /** Weight of the newest value, (0,1]. */
  alpha?: number;
}

/** Exponentially weighted mean: flat forecast at the smoothed level. */
export class EwmaForecaster implements Forecaster {
  readonly name = 'ewma';
  private readonly alpha: number;
  private level = NaN;
  private readonly residuals = new ResidualScale();

  constructor({ alpha = 0.4 }: EwmaOptions = {}) {
    this.alpha = alpha;
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    if (Number.isNaN(this.level)) {
      this.level = value;
      return;
    }
    this.residuals.update(this.level, value);
    this.level += this.alpha * (value - this.level);
  }

  forecast(h: number): Forecast | undefined {
    if (Number.isNaN(this.level)) return undefined;
    return { median: this.level, upper: this.residuals.upper(this.level, h) };
  }

  median(): number {
    return this.level;
  }
}

export interface HoltOptions {
  /** Level smoothing, (0,1]. */
  alpha?: number;
  /** Trend smoothing, (0,1]. */
  beta?: number;
  /** Trend damping per step, (0,1]; < 1 flattens long-horizon forecasts, which load series need. */
  phi?: number;
}

/** Holt's linear method with a damped trend (Gardner & McKenzie). */
export class HoltForecaster implements Forecaster {
  readonly name = 'holt';
  private readonly alpha: number;
  private readonly beta: number;
  private readonly phi: number;
  private level = NaN;
  private trend = 0;
  private seen = 0;
  private readonly residuals = new ResidualScale();
  private readonly dampSums: Float64Array;

  constructor({ alpha = 0.5, beta = 0.1, phi = 0.85 }: HoltOptions = {}) {
    this.alpha = alpha;
    this.beta = beta;
    this.phi = phi;
    this.dampSums = dampTable(phi);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    this.seen++;
    if (this.seen === 1) {
      this.level = value;
      return;
    }
    if (this.seen === 2) {
      this.residuals.update(this.level, value);
      this.trend = value - this.level;
      this.level = value;
      return;
    }
    this.residuals.update(this.point(1), value);
    const prev = this.level;
    this.level = this.alpha * value + (1 - this.alpha) * (prev + this.phi * this.trend);
    this.trend = this.beta * (this.level - prev) + (1 - this.beta) * this.phi * this.trend;
  }

  private point(h: number): number {
    return this.level + this.damp(h) * this.trend;
  }

  /** Sum of phi^1..phi^h (the same for every Holt forecaster with this phi: computed once). */
  private damp(h: number): number {
    const table = this.dampSums;
    if (h < table.length) return table[h]!;
    return this.phi === 1 ? h : (this.phi * (1 - this.phi ** h)) / (1 - this.phi);
  }

  forecast(h: number): Forecast | undefined {
    if (this.seen === 0) return undefined;
    const median = this.point(h);
    return { median, upper: this.residuals.upper(median, h) };
  }

  median(h: number): number {
    return this.seen === 0 ? NaN : this.point(h);
  }
}

const DAMP_TABLES = new Map<number, Float64Array>();
/** Holt's damping sums for h = 0..32 (the largest maxHorizon), by phi. */
export function dampTable(phi: number): Float64Array {
  let table = DAMP_TABLES.get(phi);
  if (!table) {
    table = new Float64Array(33);
    for (let h = 0; h < table.length; h++)
      table[h] = phi === 1 ? h : (phi * (1 - phi ** h)) / (1 - phi);
    DAMP_TABLES.set(phi, table);
  }
  return table;
}

/** The baselines every series is forecast with, by name. */
export const BASELINES: Readonly<Record<string, () => Forecaster>> = {
  last: () => new LastValueForecaster(),
  ewma: () => new EwmaForecaster(),
  holt: () => new HoltForecaster(),
};

export interface SeasonalOptions {
  /** Longest period looked for, in intervals. */
  maxPeriod?: number;
  /** Shortest period looked for, in intervals. */
  minPeriod?: number;
  /** Autocorrelation of the one-step changes at the period needed to use it, (0,1). */
  minCorrelation?: number;
  /** The period is looked for again every this many values. */
  detectEvery?: number;
  /**
   * Where in that cycle: at the values whose count plus detectPhase is a multiple of
   * detectEvery. Series given different phases (the bank gives each its slot) spread the search
   * over the ticks instead of all searching at the same tick.
   */
  detectPhase?: number;
}

/**
 * The lag in [minPeriod, maxPeriod] (and at most n / 2) with the highest autocorrelation of the
 * first n one-step changes `d`, or 0 where none reaches `minCorrelation`. Four lags share a pass
 * over `d`, their four right-hand values held in locals as i advances (one load per step, four
 * independent sums): a third of the time of one lag per pass (20 against 60 µs at n = 360 here),
 * which at two seasonal series per endpoint, every 30 ticks, was about 4 µs of a scoring tick's
 * CPU per endpoint. Shared by SeasonalForecaster and the BaselineBank, so the two stay bit for
 * bit the same.
 */
export function seasonalLag(
  d: Float64Array,
  n: number,
  minPeriod: number,
  maxPeriod: number,
  minCorrelation: number,
): number {
  let energy = 0;
  for (let i = 0; i < n; i++) energy += d[i]! * d[i]!;
  if (energy <= 0) return 0;
  const scale = energy / n;
  const top = Math.min(maxPeriod, n >> 1);
  let best = 0;
  let bestR = minCorrelation;
  // Normalised by the overlap, so that long lags are not penalised for having fewer pairs.
  const consider = (lag: number, sum: number): void => {
    const r = sum / (n - lag) / scale;
    if (r > bestR) {
      bestR = r;
      best = lag;
    }
  };
  let lag = minPeriod;
  for (; lag + 3 <= top; lag += 4) {
    // Steps all four lags have; the shorter lags' last pairs are added after.
    const m = n - lag - 3;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let y0 = d[lag]!;
    let y1 = d[lag + 1]!;
    let y2 = d[lag + 2]!;
    for (let i = 0; i < m; i++) {
      const x = d[i]!;
      const y3 = d[i + lag + 3]!;
      s0 += x * y0;
      s1 += x * y1;
      s2 += x * y2;
      s3 += x * y3;
      y0 = y1;
      y1 = y2;
      y2 = y3;
    }
    for (let i = m; i < n - lag; i++) s0 += d[i]! * d[i + lag]!;
    for (let i = m; i < n - lag - 1; i++) s1 += d[i]! * d[i + lag + 1]!;
    for (let i = m; i < n - lag - 2; i++) s2 += d[i]! * d[i + lag + 2]!;
    consider(lag, s0);
    consider(lag + 1, s1);
    consider(lag + 2, s2);
    consider(lag + 3, s3);
  }
  for (; lag <= top; lag++) {
    let s = 0;
    for (let i = 0; i + lag < n; i++) s += d[i]! * d[i + lag]!;
    consider(lag, s);
  }
  return best;
}

/**
 * Seasonal changes: where the series' one-step changes repeat with a period P
 * (a cron job, a periodic batch: the load jumps at the same phase every cycle),
 * the forecast is the last value plus the change seen over the same steps in the
 * previous cycles, x̂(t+h) = x(t) + mean_k [x(t+h−kP) − x(t−kP)]. P is the lag in
 * [minPeriod, maxPeriod] where the autocorrelation of the one-step changes is
 * highest, if it reaches `minCorrelation` (changes, not levels: a slowly drifting
 * level correlates at every lag, a repeating jump only at its period); without
 * one it makes no forecast, so the selection never uses it. Keeps the last
 * 2·maxPeriod values (Float32).
 */
export class SeasonalForecaster implements Forecaster {
  readonly name = 'seasonal';
  private readonly maxPeriod: number;
  private readonly minPeriod: number;
  private readonly minCorrelation: number;
  private readonly detectEvery: number;
  private readonly detectPhase: number;
  private readonly history: Float32Array;
  private count = 0;
  private period = 0;
  private readonly residuals = new ResidualScale();

  constructor({
    maxPeriod = 180,
    minPeriod = 4,
    minCorrelation = 0.3,
    detectEvery = 30,
    detectPhase = 0,
  }: SeasonalOptions = {}) {
    this.maxPeriod = maxPeriod;
    this.minPeriod = minPeriod;
    this.minCorrelation = minCorrelation;
    this.detectEvery = detectEvery;
    this.detectPhase = detectPhase;
    this.history = new Float32Array(2 * maxPeriod + 1);
  }

  /** The i-th newest value (0 = newest). */
  private at(back: number): number {
    const n = this.history.length;
    return this.history[(((this.count - 1 - back) % n) + n) % n]!;
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    if (this.period > 0) this.residuals.update(this.median(1), value);
    this.history[this.count % this.history.length] = value;
    this.count++;
    if ((this.count + this.detectPhase) % this.detectEvery === 0) this.period = this.detect();
  }

  /** The lag with the highest autocorrelation of one-step changes, or 0 below `minCorrelation`. */
  private detect(): number {
    const n = Math.min(this.count, this.history.length) - 1; // changes available
    if (n < 2 * this.minPeriod) return 0;
    const d = new Float64Array(n);
    for (let i = 0; i < n; i++) d[i] = this.at(i) - this.at(i + 1);
    return seasonalLag(d, n, this.minPeriod, this.maxPeriod, this.minCorrelation);
  }

  forecast(h: number): Forecast | undefined {
    const median = this.median(h);
    if (Number.isNaN(median)) return undefined;
    return { median, upper: this.residuals.upper(median, h) };
  }

  median(h: number): number {
    const P = this.period;
    if (P === 0 || h > P) return NaN;
    const stored = Math.min(this.count, this.history.length);
    let change = 0;
    let cycles = 0;
    for (let k = 1; k * P < stored; k++) {
      const from = k * P; // x(t − kP), as "back" from the newest
      const to = k * P - h; // x(t + h − kP)
      change += this.at(to) - this.at(from);
      cycles++;
    }
    if (cycles === 0) return NaN;
    return this.at(0) + change / cycles;
  }
}
