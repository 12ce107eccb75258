import { Gauge, type Registry } from 'prom-client';
import type { ForecastScorer } from './scorer.js';

/**
 * Forecast quality in /metrics, computed when scraped. Labels are metric ×
 * forecaster × horizon (a few dozen series), never per endpoint: the mean over
 * endpoints of each forecaster's rolling error.
 */
export function registerForecastMetrics(registry: Registry, scorer: ForecastScorer): void {
  const labelNames = ['metric', 'forecaster', 'horizon'] as const;
  let cached: ReturnType<ForecastScorer['errorSummary']> | undefined;
  let cachedAt = 0;
  // One summary per scrape, shared by the gauges below.
  const summary = () => {
    const now = Date.now();
    if (!cached || now - cachedAt > 500) {
      cached = scorer.errorSummary();
      cachedAt = now;
    }
    return cached;
  };
  new Gauge({
    name: 'augur_forecast_mae',
    help: 'Rolling mean absolute error of each forecaster, averaged over endpoints (metric units)',
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const e of summary().errors)
        this.set({ metric: e.metric, forecaster: e.forecaster, horizon: String(e.horizon) }, e.mae);
    },
  });
  new Gauge({
    name: 'augur_forecast_mase',
    help: 'Rolling MASE (MAE over the one-step last-value MAE) of each forecaster, averaged over endpoints; < 1 beats the naive forecast',
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const e of summary().errors)
        this.set(
          { metric: e.metric, forecaster: e.forecaster, horizon: String(e.horizon) },
          e.mase,
        );
    },
  });
  new Gauge({
    name: 'augur_forecast_selected_endpoints',
    help: 'Endpoints whose CPU forecast at the score horizon uses each forecaster',
    labelNames: ['forecaster'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [forecaster, n] of Object.entries(summary().selected)) this.set({ forecaster }, n);
    },
  });
  new Gauge({
    name: 'augur_forecast_lstm_ready',
    help: '1 when the LSTM has a fitted (or restored) model, 0 before, absent when disabled',
    registers: [registry],
    collect() {
      if (scorer.lstm) this.set(scorer.lstm.ready ? 1 : 0);
    },
  });
}
