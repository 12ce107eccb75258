/** The recent error of one forecaster at one horizon. */
export interface HorizonError {
  forecaster: string;
  horizon: number;
  /** Rolling (exponentially weighted) mean absolute error. */
  mae: number;
  /** `mae` over the rolling one-step last-value error; < 1 beats the naive forecast. */
  mase: number;
  /** Forecasts scored so far. */
  count: number;
}

export interface ErrorTrackerOptions {
  /** Forecasters tracked, by name; their index is their slot. */
  names: readonly string[];
  /** Largest horizon, in steps. */
  maxHorizon: number;
  /** Effective length of the rolling window, in scored forecasts (EW alpha = 2/(window+1)). */
  window?: number;
}

/**
 * Scores every forecast when its actual arrives. Forecasts made at step t for
 * t+h wait in a ring of the last H+1 steps; `observe(actual)` advances the step
 * and scores each horizon's pending forecast against it. Errors are exponentially
 * weighted (O(1) memory per forecaster and horizon, which matters at 10,000
 * endpoints) with a plain running mean until the window has filled, so early
 * values are not biased toward the first error.
 */
export class ErrorTracker {
  readonly names: readonly string[];
  readonly maxHorizon: number;
  private readonly alpha: number;
  /** pending[(step % (H+1))][f * H + (h-1)] */
  private readonly pending: Float64Array[];
  private readonly mae: Float64Array;
  private readonly counts: Float64Array;
  private naive = NaN;
  private naiveCount = 0;
  private last = NaN;
  private step = -1;

  constructor({ names, maxHorizon, window = 100 }: ErrorTrackerOptions) {
    this.names = names;
    this.maxHorizon = maxHorizon;
    this.alpha = 2 / (window + 1);
    const size = names.length * maxHorizon;
    this.pending = Array.from({ length: maxHorizon + 1 }, () => new Float64Array(size).fill(NaN));
    this.mae = new Float64Array(size);
    this.counts = new Float64Array(size);
  }

  /** The index of a forecaster's slot, -1 if it is not tracked. */
  indexOf(name: string): number {
    return this.names.indexOf(name);
  }

  /** Advances one step: `actual` is the value of the new step; scores what was forecast for it. */
  observe(actual: number): void {
    this.step++;
    const H = this.maxHorizon;
    if (Number.isFinite(actual)) {
      if (Number.isFinite(this.last)) {
        const e = Math.abs(actual - this.last);
        this.naiveCount++;
        const a = Math.max(this.alpha, 1 / this.naiveCount);
        this.naive = Number.isNaN(this.naive) ? e : this.naive + a * (e - this.naive);
      }
      this.last = actual;
      for (let h = 1; h <= H; h++) {
        if (this.step - h < 0) break;
        const row = this.pending[(this.step - h) % (H + 1)]!;
        for (let f = 0; f < this.names.length; f++) {
          const k = f * H + h - 1;
          const predicted = row[k]!;
          if (!Number.isFinite(predicted)) continue;
          const e = Math.abs(actual - predicted);
          const n = ++this.counts[k]!;
          const a = Math.max(this.alpha, 1 / n);
          this.mae[k] = this.mae[k]! + a * (e - this.mae[k]!);
        }
      }
    }
    this.pending[this.step % (H + 1)]!.fill(NaN);
  }

  /** Records forecaster `f`'s forecast, made now, of the value `h` steps ahead. */
  record(f: number, h: number, predicted: number): void {
    if (this.step < 0 || f < 0 || h < 1 || h > this.maxHorizon) return;
    this.pending[this.step % (this.maxHorizon + 1)]![f * this.maxHorizon + h - 1] = predicted;
  }

  count(f: number, h: number): number {
    return this.counts[f * this.maxHorizon + h - 1] ?? 0;
  }

  /** Rolling MAE of forecaster `f` at horizon `h`; NaN before its first scored forecast. */
  maeOf(f: number, h: number): number {
    return this.count(f, h) > 0 ? this.mae[f * this.maxHorizon + h - 1]! : NaN;
  }

  /** Rolling MAE over the rolling one-step last-value MAE; NaN while either is unknown. */
  maseOf(f: number, h: number): number {
    const mae = this.maeOf(f, h);
    if (Number.isNaN(mae) || Number.isNaN(this.naive)) return NaN;
    if (this.naive <= 1e-12) return mae <= 1e-12 ? 0 : Infinity;
    return mae / this.naive;
  }

  errors(): HorizonError[] {
    const out: HorizonError[] = [];
    for (let f = 0; f < this.names.length; f++)
      for (let h = 1; h <= this.maxHorizon; h++)
        out.push({
          forecaster: this.names[f]!,
          horizon: h,
          mae: this.maeOf(f, h),
          mase: this.maseOf(f, h),
          count: this.count(f, h),
        });
    return out;
  }
}
