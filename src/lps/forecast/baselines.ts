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

  constructor({ alpha = 0.5, beta = 0.1, phi = 0.85 }: HoltOptions = {}) {
    this.alpha = alpha;
    this.beta = beta;
    this.phi = phi;
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
    // Sum of phi^1..phi^h.
    const damp = this.phi === 1 ? h : (this.phi * (1 - this.phi ** h)) / (1 - this.phi);
    return this.level + damp * this.trend;
  }

  forecast(h: number): Forecast | undefined {
    if (this.seen === 0) return undefined;
    const median = this.point(h);
    return { median, upper: this.residuals.upper(median, h) };
  }
}

/** The baselines every series is forecast with, by name. */
export const BASELINES: Readonly<Record<string, () => Forecaster>> = {
  last: () => new LastValueForecaster(),
  ewma: () => new EwmaForecaster(),
  holt: () => new HoltForecaster(),
};
