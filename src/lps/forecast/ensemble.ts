import { ErrorTracker } from './error-tracker.js';
import type { Forecast, Forecaster } from './forecaster.js';

/** A forecast and the forecaster that made it. */
export interface SelectedForecast extends Forecast {
  forecaster: string;
}

export interface EnsembleOptions {
  /** Forecasters run in-line on every observed value. */
  forecasters: readonly Forecaster[];
  /**
   * Forecasters whose forecasts come from elsewhere (the LSTM worker), by name:
   * they are offered with `offer()` after `observe()`, or not at all for a step.
   */
  external?: readonly string[];
  maxHorizon: number;
  /** Rolling error window, in scored forecasts. */
  window?: number;
  /** Scored forecasts a forecaster needs before it can be selected. */
  minCount?: number;
  /** Used until any forecaster qualifies; defaults to the first forecaster. */
  fallback?: string;
}

/**
 * Every forecaster of one series side by side, each scored on its own forecasts,
 * and per horizon the one with the lowest rolling MAE selected. Forecasters are
 * compared by MAE, not MASE: on one series the scale is shared, so they rank the
 * same, and MAE is defined before the naive error is.
 */
export class ForecastEnsemble {
  readonly tracker: ErrorTracker;
  private readonly forecasters: readonly Forecaster[];
  private readonly minCount: number;
  private readonly fallback: number;
  /** Current forecasts of external forecasters, [slot][h-1]; cleared at each observe. */
  private readonly offered = new Map<number, Forecast[]>();

  constructor({
    forecasters,
    external = [],
    maxHorizon,
    window = 100,
    minCount = 10,
    fallback,
  }: EnsembleOptions) {
    this.forecasters = forecasters;
    this.tracker = new ErrorTracker({
      names: [...forecasters.map((f) => f.name), ...external],
      maxHorizon,
      window,
    });
    this.minCount = minCount;
    this.fallback = Math.max(0, fallback ? this.tracker.indexOf(fallback) : 0);
  }

  get maxHorizon(): number {
    return this.tracker.maxHorizon;
  }

  /** Feeds the next value to every forecaster and records their forecasts for the steps ahead. */
  observe(value: number): void {
    this.tracker.observe(value);
    this.offered.clear();
    for (let f = 0; f < this.forecasters.length; f++) {
      const forecaster = this.forecasters[f]!;
      forecaster.observe(value);
      if (forecaster.median) {
        // NaN (no forecast) is what the tracker holds for a forecast never made.
        for (let h = 1; h <= this.maxHorizon; h++) this.tracker.record(f, h, forecaster.median(h));
        continue;
      }
      for (let h = 1; h <= this.maxHorizon; h++) {
        const fc = forecaster.forecast(h);
        if (fc) this.tracker.record(f, h, fc.median);
      }
    }
  }

  /** An external forecaster's forecasts for 1..H from the current step (made from data up to it). */
  offer(name: string, forecasts: readonly Forecast[]): void {
    const f = this.tracker.indexOf(name);
    if (f < this.forecasters.length) return;
    this.offered.set(f, forecasts.slice(0, this.maxHorizon));
    forecasts.forEach((fc, i) => this.tracker.record(f, i + 1, fc.median));
  }

  private forecastOf(f: number, h: number): Forecast | undefined {
    if (f < this.forecasters.length) return this.forecasters[f]!.forecast(h);
    return this.offered.get(f)?.[h - 1];
  }

  /** The slot with the lowest rolling MAE at `h` among those with a forecast now. */
  private select(h: number): number {
    let best = -1;
    let bestMae = Infinity;
    for (let f = 0; f < this.tracker.names.length; f++) {
      if (this.tracker.count(f, h) < this.minCount) continue;
      const mae = this.tracker.maeOf(f, h);
      if (mae < bestMae && this.forecastOf(f, h)) {
        best = f;
        bestMae = mae;
      }
    }
    return best >= 0 ? best : this.fallback;
  }

  /** The selected forecaster's forecast `h` steps ahead, or undefined before any value. */
  forecast(h: number): SelectedForecast | undefined {
    let f = this.select(h);
    let fc = this.forecastOf(f, h);
    if (!fc) {
      f = this.fallback;
      fc = this.forecastOf(f, h);
    }
    if (!fc) return undefined;
    return {
      forecaster: this.tracker.names[f]!,
      median: fc.median,
      upper: Math.max(fc.upper, fc.median),
    };
  }

  /** Forecasts of the selected forecaster (chosen at `h`) for 1..H. */
  path(selectAt: number): { forecaster: string; median: number[]; upper: number[] } | undefined {
    const f = this.select(selectAt);
    const median: number[] = [];
    const upper: number[] = [];
    for (let h = 1; h <= this.maxHorizon; h++) {
      const fc = this.forecastOf(f, h) ?? this.forecastOf(this.fallback, h);
      if (!fc) return undefined;
      median.push(fc.median);
      upper.push(Math.max(fc.upper, fc.median));
    }
    return { forecaster: this.tracker.names[f]!, median, upper };
  }
}
