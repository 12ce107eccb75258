/** A point forecast with a cautious bound beside it, in the series' own units. */
export interface Forecast {
  /** The median (or the best point estimate). */
  median: number;
  /** An upper quantile (about the 90th percentile): what a cautious caller plans for. */
  upper: number;
}

/**
 * An online forecaster of one series sampled at a regular interval.
 *
 * Contract:
 * - `observe(value)` feeds the next value, one interval after the previous; values
 *   arrive in time order and each is seen once. A non-finite value is a missing
 *   sample: the forecaster skips it and its state does not change.
 * - `forecast(h)` forecasts the value `h` intervals after the last observed one,
 *   for `h` in 1..H (H is the forecaster's own limit, at least 5 for the baselines),
 *   from observed values only. It returns `undefined` until the forecaster has
 *   seen enough to say anything. It does not change the state, so calling it any
 *   number of times between two `observe` calls gives the same answer.
 * - `upper >= median` always.
 * - Everything is synchronous and local: no I/O, no timers, no shared state, so a
 *   forecaster can be used outside the LPS (simulators, the CLI).
 */
export interface Forecaster {
  /** Stable short name, used in metrics, the API and the CLI ("last", "ewma", "holt", "lstm"). */
  readonly name: string;
  observe(value: number): void;
  forecast(h: number): Forecast | undefined;
  /**
   * `forecast(h)?.median`, NaN where that is undefined, without building the forecast: what
   * the ensemble records at every observed value (optional; `forecast` is used without it).
   */
  median?(h: number): number;
}

/** Builds a fresh forecaster; one per series. */
export type ForecasterFactory = () => Forecaster;

/** z of the 90th percentile of a normal distribution. */
const Z90 = 1.2816;
/** Mean absolute deviation to standard deviation, for a normal distribution. */
const MAD_TO_SD = 1.2533;

/**
 * Tracks a forecaster's one-step absolute error (exponentially weighted) to give
 * baselines an upper bound: median + z90 * sd * sqrt(h). The sqrt(h) growth is the
 * random-walk assumption; it is crude but errs on the cautious side for the
 * mean-reverting load series we see.
 */
export class ResidualScale {
  private mad = NaN;
  private n = 0;
  constructor(private readonly alpha = 0.05) {}

  update(predicted: number | undefined, actual: number): void {
    if (predicted === undefined || !Number.isFinite(predicted)) return;
    const e = Math.abs(actual - predicted);
    this.n++;
    const a = Math.max(this.alpha, 1 / this.n);
    this.mad = Number.isNaN(this.mad) ? e : this.mad + a * (e - this.mad);
  }

  upper(median: number, h: number): number {
    if (Number.isNaN(this.mad)) return median;
    return median + Z90 * MAD_TO_SD * this.mad * Math.sqrt(h);
  }
}
