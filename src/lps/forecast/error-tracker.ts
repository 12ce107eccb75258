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
  /**
   * One buffer: the pending forecasts, [(step % (H+1)) * size + f * H + (h-1)], then the rolling
   * MAE and the counts, [f * H + (h-1)] each (size = forecasters × H): one allocation per
   * tracker, which the LPS keeps per endpoint and metric.
   */
  private readonly buffer: Float64Array;
  private readonly size: number;
  private readonly maeAt: number;
  private readonly countAt: number;
  private naive = NaN;
  private naiveCount = 0;
  private last = NaN;
  private step = -1;

  constructor({ names, maxHorizon, window = 100 }: ErrorTrackerOptions) {
    this.names = names;
    this.maxHorizon = maxHorizon;
    this.alpha = 2 / (window + 1);
    const size = names.length * maxHorizon;
    this.size = size;
    this.maeAt = (maxHorizon + 1) * size;
    this.countAt = this.maeAt + size;
    this.buffer = new Float64Array(this.countAt + size);
    this.buffer.fill(NaN, 0, this.maeAt);
  }

  /** The index of a forecaster's slot, -1 if it is not tracked. */
  indexOf(name: string): number {
    return this.names.indexOf(name);
  }

  /** Advances one step: `actual` is the value of the new step; scores what was forecast for it. */
  observe(actual: number): void {
    this.step++;
    const H = this.maxHorizon;
    const b = this.buffer;
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
        const row = ((this.step - h) % (H + 1)) * this.size;
        for (let f = 0; f < this.names.length; f++) {
          const k = f * H + h - 1;
          const predicted = b[row + k]!;
          if (!Number.isFinite(predicted)) continue;
          const e = Math.abs(actual - predicted);
          const n = ++b[this.countAt + k]!;
          const a = Math.max(this.alpha, 1 / n);
          const m = this.maeAt + k;
          b[m] = b[m]! + a * (e - b[m]!);
        }
      }
    }
    const row = (this.step % (H + 1)) * this.size;
    b.fill(NaN, row, row + this.size);
  }

  /** Records forecaster `f`'s forecast, made now, of the value `h` steps ahead. */
  record(f: number, h: number, predicted: number): void {
    if (this.step < 0 || f < 0 || h < 1 || h > this.maxHorizon) return;
    this.buffer[(this.step % (this.maxHorizon + 1)) * this.size + f * this.maxHorizon + h - 1] =
      predicted;
  }

  count(f: number, h: number): number {
    if (f < 0 || f >= this.names.length || h < 1 || h > this.maxHorizon) return 0;
    return this.buffer[this.countAt + f * this.maxHorizon + h - 1]!;
  }

  /** Rolling MAE of forecaster `f` at horizon `h`; NaN before its first scored forecast. */
  maeOf(f: number, h: number): number {
    return this.count(f, h) > 0 ? this.buffer[this.maeAt + f * this.maxHorizon + h - 1]! : NaN;
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
