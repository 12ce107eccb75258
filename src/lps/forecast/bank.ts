import { dampTable, seasonalLag } from './baselines.js';
import type { Forecast } from './forecaster.js';

/** z of the 90th percentile times the mean absolute deviation's ratio to σ (forecaster.ts). */
const Z90 = 1.2816;
const MAD_TO_SD = 1.2533;
/** ResidualScale's smoothing (forecaster.ts). */
const RESIDUAL_ALPHA = 0.05;
/** The baselines' parameters (baselines.ts defaults). */
const EWMA_ALPHA = 0.4;
const HOLT_ALPHA = 0.5;
const HOLT_BETA = 0.1;
const HOLT_PHI = 0.85;
const SEASONAL_MAX_PERIOD = 180;
const SEASONAL_MIN_PERIOD = 4;
const SEASONAL_MIN_CORRELATION = 0.3;
const SEASONAL_DETECT_EVERY = 30;
const SEASONAL_HISTORY = 2 * SEASONAL_MAX_PERIOD + 1;

/** Slots per chunk of rows (a power of 2). */
const CHUNK_BITS = 8;
const CHUNK = 1 << CHUNK_BITS;

/** The forecasters of a bank, in slot order (as the ensemble names them). */
const LAST = 0;
const EWMA = 1;
const HOLT = 2;
const SEASONAL = 3;

export interface BankOptions {
  /** With the seasonal forecaster (CPU and background) after last, ewma and holt. */
  seasonal: boolean;
  /** Forecasters whose forecasts are offered from elsewhere (the LSTM), by name. */
  external?: readonly string[];
  maxHorizon: number;
  /** Rolling error window, in scored forecasts. */
  window: number;
  /** Scored forecasts a forecaster needs before it can be selected. */
  minCount: number;
  /** Used until any forecaster qualifies. */
  fallback: string;
}

/**
 * What a `ForecastEnsemble` of the baselines (last, ewma, holt and, where asked, seasonal, with
 * their default parameters) and its `ErrorTracker` hold, for many series at once: one row of a
 * Float64Array per series (a slot), columns across the rows, no object per series. The numbers
 * are those of the ensemble, bit for bit (test/forecast/bank.test.ts): the same operations in
 * the same order. Smaller than the ensemble's state in two ways besides the objects: a forecast
 * waiting for its actual is kept as the state that makes it (a level, or a level and a trend)
 * rather than as one number per horizon, and the seasonal histories share one Float32Array.
 *
 * Row layout (H = maxHorizon, F = forecasters, E = external ones):
 * [step, last actual, naive MAE, naive count]
 * [rolling MAE: F·H][scored counts: F·H]
 * [pending, per step of the last H+1: last's value, ewma's level, holt's level and trend,
 *   seasonal's H medians]
 * [last: value, mad, n][ewma: level, mad, n][holt: level, trend, seen, mad, n]
 * [seasonal: count, period, mad, n]
 * [each external's offer of this step: horizons offered]
 *
 * The external forecasters' numbers are Float32, in a row of their own per slot (what the
 * LSTM's worker answers is Float32 already, so nothing is lost; an `offer` of other numbers is
 * held at Float32 precision):
 * [pending, per step of the last H+1: each external's H medians]
 * [each external's offer of this step: H medians, H uppers]
 */
export class BaselineBank {
  readonly names: readonly string[];
  readonly maxHorizon: number;
  private readonly seasonal: boolean;
  private readonly internal: number;
  private readonly external: number;
  private readonly alpha: number;
  private readonly minCount: number;
  private readonly fallback: number;
  private readonly damp: Float64Array;
  private readonly stride: number;
  private readonly maeAt: number;
  private readonly countAt: number;
  private readonly pendingAt: number;
  private readonly pendingStride: number;
  private readonly stateAt: number;
  private readonly offerAt: number;
  /** The external forecasters' Float32 row: its length, and where its offers begin. */
  private readonly extStride: number;
  private readonly extOfferAt: number;
  /** Rows in chunks of CHUNK slots, never moved: growing copies nothing and frees nothing. */
  private readonly chunks: Float64Array[] = [];
  private readonly historyChunks: Float32Array[] = [];
  private readonly extChunks: Float32Array[] = [];
  private readonly scratch = new Float64Array(SEASONAL_HISTORY);
  /** The slot being read or written: its chunk, its row's offset, its seasonal history's. */
  private r: Float64Array = new Float64Array(0);
  private o = 0;
  private hist: Float32Array = new Float32Array(0);
  private ho = 0;
  private e: Float32Array = new Float32Array(0);
  private eo = 0;

  /** Set by `select`: the forecaster chosen and its forecast. */
  forecaster = -1;
  median = NaN;
  upper = NaN;

  constructor(options: BankOptions) {
    const external = options.external ?? [];
    this.seasonal = options.seasonal;
    this.internal = options.seasonal ? 4 : 3;
    this.external = external.length;
    this.names = ['last', 'ewma', 'holt', ...(options.seasonal ? ['seasonal'] : []), ...external];
    const H = options.maxHorizon;
    this.maxHorizon = H;
    this.alpha = 2 / (options.window + 1);
    this.minCount = options.minCount;
    this.fallback = Math.max(0, this.names.indexOf(options.fallback));
    this.damp = dampTable(HOLT_PHI);
    const F = this.names.length;
    this.maeAt = 4;
    this.countAt = this.maeAt + F * H;
    this.pendingAt = this.countAt + F * H;
    this.pendingStride = 4 + (options.seasonal ? H : 0);
    this.stateAt = this.pendingAt + (H + 1) * this.pendingStride;
    this.offerAt = this.stateAt + 11 + (options.seasonal ? 4 : 0);
    this.stride = this.offerAt + this.external;
    this.extOfferAt = (H + 1) * this.external * H;
    this.extStride = this.extOfferAt + this.external * 2 * H;
  }

  /** Bytes held per series (its row, its external forecasters' row, its seasonal history). */
  get bytesPerSeries(): number {
    return this.stride * 8 + this.extStride * 4 + (this.seasonal ? SEASONAL_HISTORY * 4 : 0);
  }

  /**
   * Starts series `slot` afresh (a row per slot; slots are the caller's, small integers reused
   * when a series goes: the bank grows to the largest).
   */
  open(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0)
      throw new RangeError(`bank slot must be a non-negative integer, got ${slot}`);
    while (this.chunks.length <= slot >>> CHUNK_BITS) {
      this.chunks.push(new Float64Array(CHUNK * this.stride));
      if (this.seasonal) this.historyChunks.push(new Float32Array(CHUNK * SEASONAL_HISTORY));
      if (this.external > 0) this.extChunks.push(new Float32Array(CHUNK * this.extStride));
    }
    this.seek(slot);
    this.reset();
  }

  private seek(slot: number): void {
    const chunk = slot >>> CHUNK_BITS;
    this.r = this.chunks[chunk]!;
    this.o = (slot & (CHUNK - 1)) * this.stride;
    if (this.seasonal) {
      this.hist = this.historyChunks[chunk]!;
      this.ho = (slot & (CHUNK - 1)) * SEASONAL_HISTORY;
    }
    if (this.external > 0) {
      this.e = this.extChunks[chunk]!;
      this.eo = (slot & (CHUNK - 1)) * this.extStride;
    }
  }

  private reset(): void {
    const r = this.r;
    const o = this.o;
    r.fill(0, o, o + this.stride);
    r[o] = -1; // step
    r[o + 1] = NaN; // last actual
    r[o + 2] = NaN; // naive MAE
    r.fill(NaN, o + this.pendingAt, o + this.stateAt);
    const s = o + this.stateAt;
    r[s] = NaN; // last
    r[s + 1] = NaN; // its mad
    r[s + 3] = NaN; // ewma level
    r[s + 4] = NaN;
    r[s + 6] = NaN; // holt level
    r[s + 9] = NaN;
    if (this.seasonal) r[s + 13] = NaN;
    if (this.seasonal) this.hist.fill(0, this.ho, this.ho + SEASONAL_HISTORY);
    if (this.external > 0) this.e.fill(NaN, this.eo, this.eo + this.extStride);
  }

  /** ResidualScale.update of the scale at `at` (mad, then n). */
  private residual(at: number, predicted: number, actual: number): void {
    if (!Number.isFinite(predicted)) return;
    const r = this.r;
    const e = Math.abs(actual - predicted);
    const n = ++r[at + 1]!;
    const a = Math.max(RESIDUAL_ALPHA, 1 / n);
    r[at] = Number.isNaN(r[at]!) ? e : r[at]! + a * (e - r[at]!);
  }

  /** The `back`-th newest value of a slot's seasonal history. */
  private seasonalAt(count: number, back: number): number {
    const n = SEASONAL_HISTORY;
    return this.hist[this.ho + ((((count - 1 - back) % n) + n) % n)]!;
  }

  /**
   * SeasonalForecaster.median(h) for h = 1..H into r[at + h - 1], in one pass over the cycles:
   * each cycle's anchor read once, the positions stepped rather than each taken modulo the
   * history. Each horizon's sum adds the same terms in the same order as SeasonalForecaster, so
   * bit for bit the same; the step's forecasts are read back from here (seasonalMedianAt).
   */
  private seasonalRow(at: number): void {
    const r = this.r;
    const H = this.maxHorizon;
    const s = this.o + this.stateAt + 11;
    const P = r[s + 1]!;
    const count = r[s]!;
    const stored = Math.min(count, SEASONAL_HISTORY);
    const top = P === 0 || P >= stored ? 0 : Math.min(H, P);
    r.fill(NaN, at + top, at + H);
    if (top === 0) return;
    const n = SEASONAL_HISTORY;
    const hist = this.hist;
    const ho = this.ho;
    const sums = this.scratch;
    sums.fill(0, 0, top);
    let cycles = 0;
    for (let k = 1; k * P < stored; k++) {
      // Position of x(t − kP); x(t − kP + h) follows it, wrapping at the history's end.
      let p = (((count - 1 - k * P) % n) + n) % n;
      const anchor = hist[ho + p]!;
      for (let h = 0; h < top; h++) {
        p = p + 1 === n ? 0 : p + 1;
        sums[h] = sums[h]! + (hist[ho + p]! - anchor);
      }
      cycles++;
    }
    const newest = this.seasonalAt(count, 0);
    for (let h = 0; h < top; h++) r[at + h] = newest + sums[h]! / cycles;
  }

  /**
   * Where SeasonalForecaster.median(h) as it stood at the end of `step` is (what seasonalRow
   * wrote into that step's pending row, NaN where it had none): at the offset returned + h;
   * -1 before the first step. An offset, not the number (see forecastOf).
   */
  private seasonalMedianAt(step: number): number {
    if (step < 0) return -1;
    return this.o + this.pendingAt + (step % (this.maxHorizon + 1)) * this.pendingStride + 3;
  }

  /** SeasonalForecaster.detect. */
  private detect(count: number): number {
    const n = Math.min(count, SEASONAL_HISTORY) - 1;
    if (n < 2 * SEASONAL_MIN_PERIOD) return 0;
    const d = this.scratch;
    for (let i = 0; i < n; i++) d[i] = this.seasonalAt(count, i) - this.seasonalAt(count, i + 1);
    return seasonalLag(d, n, SEASONAL_MIN_PERIOD, SEASONAL_MAX_PERIOD, SEASONAL_MIN_CORRELATION);
  }

  /** ForecastEnsemble.observe: scores what was forecast for this step, then feeds every baseline. */
  observe(slot: number, value: number): void {
    this.seek(slot);
    const r = this.r;
    const o = this.o;
    const H = this.maxHorizon;
    const F = this.names.length;
    const P = this.pendingStride;
    const pending = o + this.pendingAt;
    // ErrorTracker.observe.
    const step = ++r[o]!;
    if (Number.isFinite(value)) {
      const last = r[o + 1]!;
      if (Number.isFinite(last)) {
        const e = Math.abs(value - last);
        const n = ++r[o + 3]!;
        const a = Math.max(this.alpha, 1 / n);
        r[o + 2] = Number.isNaN(r[o + 2]!) ? e : r[o + 2]! + a * (e - r[o + 2]!);
      }
      r[o + 1] = value;
      for (let h = 1; h <= H; h++) {
        if (step - h < 0) break;
        const at = (step - h) % (H + 1);
        const row = pending + at * P;
        for (let f = 0; f < F; f++) {
          const predicted = this.pendingOf(row, at, f, h);
          if (!Number.isFinite(predicted)) continue;
          const e = Math.abs(value - predicted);
          const k = f * H + h - 1;
          const n = ++r[o + this.countAt + k]!;
          const a = Math.max(this.alpha, 1 / n);
          const m = o + this.maeAt + k;
          r[m] = r[m]! + a * (e - r[m]!);
        }
      }
    }
    const row = pending + (step % (H + 1)) * P;
    r.fill(NaN, row, row + P);
    if (this.external > 0) {
      const ext = this.eo + (step % (H + 1)) * this.external * H;
      this.e.fill(NaN, ext, ext + this.external * H);
    }

    // The baselines, then what each forecasts from here (its pending state).
    const s = o + this.stateAt;
    if (Number.isFinite(value)) {
      // last
      if (!Number.isNaN(r[s]!)) this.residual(s + 1, r[s]!, value);
      r[s] = value;
      // ewma
      if (Number.isNaN(r[s + 3]!)) r[s + 3] = value;
      else {
        this.residual(s + 4, r[s + 3]!, value);
        r[s + 3] = r[s + 3]! + EWMA_ALPHA * (value - r[s + 3]!);
      }
      // holt
      const seen = ++r[s + 8]!;
      if (seen === 1) r[s + 6] = value;
      else if (seen === 2) {
        this.residual(s + 9, r[s + 6]!, value);
        r[s + 7] = value - r[s + 6]!;
        r[s + 6] = value;
      } else {
        this.residual(s + 9, r[s + 6]! + this.damp[1]! * r[s + 7]!, value);
        const prev = r[s + 6]!;
        const level = HOLT_ALPHA * value + (1 - HOLT_ALPHA) * (prev + HOLT_PHI * r[s + 7]!);
        r[s + 6] = level;
        r[s + 7] = HOLT_BETA * (level - prev) + (1 - HOLT_BETA) * HOLT_PHI * r[s + 7]!;
      }
      // seasonal
      if (this.seasonal) {
        const q = s + 11;
        // The one-step median from before this value: the last step's row (nothing has changed
        // the period or the history since it was written).
        const at = this.seasonalMedianAt(step - 1);
        if (r[q + 1]! > 0) this.residual(q + 2, at < 0 ? NaN : r[at + 1]!, value);
        const count = r[q]!;
        this.hist[this.ho + (count % SEASONAL_HISTORY)] = value;
        r[q] = count + 1;
        // Each slot at its own phase (SeasonalForecaster's detectPhase = the slot): 1/30 of the
        // series search at each tick, not all of them at every 30th.
        if ((count + 1 + slot) % SEASONAL_DETECT_EVERY === 0) r[q + 1] = this.detect(count + 1);
      }
    }
    r[row] = r[s]!;
    r[row + 1] = r[s + 3]!;
    r[row + 2] = r[s + 8]! === 0 ? NaN : r[s + 6]!;
    r[row + 3] = r[s + 7]!;
    if (this.seasonal) this.seasonalRow(row + 4);
    // External forecasts are offered anew for each step.
    r.fill(0, o + this.offerAt, o + this.offerAt + this.external);
  }

  /**
   * What forecaster `f` forecast `h` steps ahead at the step of pending row `row` (the
   * `at`-th of the H + 1 kept).
   */
  private pendingOf(row: number, at: number, f: number, h: number): number {
    const r = this.r;
    if (f === LAST) return r[row]!;
    if (f === EWMA) return r[row + 1]!;
    if (f === HOLT) return r[row + 2]! + this.damp[h]! * r[row + 3]!;
    const x = f - this.internal; // an external one
    if (x < 0) return r[row + 3 + h]!; // seasonal
    const H = this.maxHorizon;
    return this.e[this.eo + (at * this.external + x) * H + h - 1]!;
  }

  /** ForecastEnsemble.offer: an external forecaster's forecasts for 1..H from this step. */
  offer(slot: number, name: string, forecasts: readonly Forecast[]): void {
    const x = this.offerSlot(slot, name);
    if (x < 0) return;
    const e = this.e;
    const H = this.maxHorizon;
    const k = Math.min(forecasts.length, H);
    const at = this.eo + this.extOfferAt + x * 2 * H;
    this.r[this.o + this.offerAt + x] = k;
    for (let i = 0; i < k; i++) {
      e[at + i] = forecasts[i]!.median;
      e[at + H + i] = forecasts[i]!.upper;
    }
    this.pendOffer(x, k);
  }

  /**
   * `offer` from a packed buffer, as the LSTM's worker answers (no object per forecast): the
   * forecasts for 1..count are (median, upper) pairs from `data[from]` on. Offers nothing and
   * returns false when a median is not finite (the forecaster had nothing to say).
   */
  offerPairs(slot: number, name: string, data: Float32Array, from: number, count: number): boolean {
    const k = Math.min(count, this.maxHorizon);
    for (let i = 0; i < k; i++) if (!Number.isFinite(data[from + 2 * i]!)) return false;
    const x = this.offerSlot(slot, name);
    if (x < 0) return false;
    const e = this.e;
    const H = this.maxHorizon;
    const at = this.eo + this.extOfferAt + x * 2 * H;
    this.r[this.o + this.offerAt + x] = k;
    for (let i = 0; i < k; i++) {
      e[at + i] = data[from + 2 * i]!;
      e[at + H + i] = data[from + 2 * i + 1]!;
    }
    this.pendOffer(x, k);
    return true;
  }

  /** Which external forecaster `name` is, seeking `slot` (-1: `name` is not external). */
  private offerSlot(slot: number, name: string): number {
    this.seek(slot);
    const f = this.names.indexOf(name);
    return f < this.internal ? -1 : f - this.internal;
  }

  /** Queues the `k` medians external `x` just offered to be scored when their actuals arrive. */
  private pendOffer(x: number, k: number): void {
    const step = this.r[this.o]!;
    // Scored when their actuals arrive; before the first value there is no step to score from.
    if (step < 0) return;
    const e = this.e;
    const H = this.maxHorizon;
    const offered = this.eo + this.extOfferAt + x * 2 * H;
    const row = this.eo + ((step % (H + 1)) * this.external + x) * H;
    // A loop, not copyWithin: for H = 5 an offer took 55 against 62 ns.
    for (let i = 0; i < k; i++) e[row + i] = e[offered + i]!;
  }

  /**
   * Forecaster `f`'s forecast `h` ahead into `median` and `upper` (the forecaster's own upper,
   * before the ensemble lifts it to the median); false where it has none.
   *
   * Written so that no number is boxed on the heap, which the scorer would otherwise pay for at
   * every endpoint's every read: no double returned from a helper that may not be inlined
   * (seasonalMedianAt returns an offset; the upper bound is computed here), and no `let` that
   * starts as undefined. Measured with V8's sampling heap profiler, a `select` allocated 128
   * bytes before and none after.
   */
  private forecastOf(f: number, h: number): boolean {
    const r = this.r;
    const o = this.o;
    const s = o + this.stateAt;
    let median = NaN;
    let madAt = 0;
    if (f === LAST || f === EWMA) {
      median = r[s + 3 * f]!;
      madAt = s + 3 * f + 1;
      if (Number.isNaN(median)) return false;
    } else if (f === HOLT) {
      if (r[s + 8] === 0) return false;
      median = r[s + 6]! + this.damp[h]! * r[s + 7]!;
      madAt = s + 9;
    } else if (f === SEASONAL && this.seasonal) {
      const at = this.seasonalMedianAt(r[o]!);
      median = at < 0 ? NaN : r[at + h]!;
      if (Number.isNaN(median)) return false;
      madAt = s + 13;
    } else {
      const x = f - this.internal;
      if (h > r[o + this.offerAt + x]!) return false;
      const H = this.maxHorizon;
      const at = this.eo + this.extOfferAt + x * 2 * H;
      this.median = this.e[at + h - 1]!;
      this.upper = this.e[at + H + h - 1]!;
      return true;
    }
    const mad = r[madAt]!;
    this.median = median;
    this.upper = Number.isNaN(mad) ? median : median + Z90 * MAD_TO_SD * mad * Math.sqrt(h);
    return true;
  }

  /** ForecastEnsemble.select: the forecaster with the lowest rolling MAE at `h` that forecasts now. */
  private selectAt(h: number): number {
    const r = this.r;
    const o = this.o;
    let best = -1;
    let bestMae = Infinity;
    for (let f = 0; f < this.names.length; f++) {
      const k = f * this.maxHorizon + h - 1;
      if (r[o + this.countAt + k]! < this.minCount) continue;
      const mae = r[o + this.maeAt + k]!;
      if (mae < bestMae && this.forecastOf(f, h)) {
        best = f;
        bestMae = mae;
      }
    }
    return best >= 0 ? best : this.fallback;
  }

  /**
   * ForecastEnsemble.forecast without the object: sets `forecaster` (its index in `names`),
   * `median` and `upper` (at least the median) to the selected forecast `h` steps ahead;
   * false (and `forecaster` -1) before any value.
   */
  select(slot: number, h: number): boolean {
    this.seek(slot);
    let f = this.selectAt(h);
    if (!this.forecastOf(f, h)) {
      f = this.fallback;
      if (!this.forecastOf(f, h)) {
        this.forecaster = -1;
        this.median = NaN;
        this.upper = NaN;
        return false;
      }
    }
    this.forecaster = f;
    this.upper = Math.max(this.upper, this.median);
    return true;
  }

  /** ForecastEnsemble.path: the forecasts for 1..H of the forecaster selected at `selectAt`. */
  path(
    slot: number,
    selectAt: number,
  ): { forecaster: string; median: number[]; upper: number[] } | undefined {
    this.seek(slot);
    const f = this.selectAt(selectAt);
    const median: number[] = [];
    const upper: number[] = [];
    for (let h = 1; h <= this.maxHorizon; h++) {
      if (!this.forecastOf(f, h) && !this.forecastOf(this.fallback, h)) return undefined;
      median.push(this.median);
      upper.push(Math.max(this.upper, this.median));
    }
    return { forecaster: this.names[f]!, median, upper };
  }

  /** ErrorTracker.count. */
  count(slot: number, f: number, h: number): number {
    this.seek(slot);
    if (f < 0 || f >= this.names.length || h < 1 || h > this.maxHorizon) return 0;
    return this.r[this.o + this.countAt + f * this.maxHorizon + h - 1]!;
  }

  /** ErrorTracker.maeOf. */
  maeOf(slot: number, f: number, h: number): number {
    return this.count(slot, f, h) > 0
      ? this.r[this.o + this.maeAt + f * this.maxHorizon + h - 1]!
      : NaN;
  }

  /** ErrorTracker.maseOf. */
  maseOf(slot: number, f: number, h: number): number {
    const mae = this.maeOf(slot, f, h);
    const naive = this.r[this.o + 2]!;
    if (Number.isNaN(mae) || Number.isNaN(naive)) return NaN;
    if (naive <= 1e-12) return mae <= 1e-12 ? 0 : Infinity;
    return mae / naive;
  }
}
