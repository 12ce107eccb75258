import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import type { AttachedPart } from '../../common/lifecycle.js';
import type { Logger } from '../../common/logger.js';
import type { Scorer } from '../types.js';
import type { ForecastProvider } from '../load-prediction-service.js';
import type { ForecastConfig, LstmConfig } from './config.js';
import { OnlineLstm } from './lstm/online.js';
import { registerForecastMetrics } from './metrics.js';
import { ForecastScorer } from './scorer.js';

/**
 * The most rows of history the LSTM's worker keeps for one endpoint to train on (the engine's
 * maxRows); past 1,456 endpoints at the defaults each keeps less, its share of
 * `forecast.lstm.trainingRows` (engine.ts, rowShare).
 */
export function lstmRowsPerEndpoint(ringSize: number, lstm: LstmConfig): number {
  return Math.max(ringSize, lstm.minHistory * 2);
}

/** What forecasting needs of the process it is attached to. */
export interface ForecastHost {
  config: ForecastConfig;
  /** `<dataDir>/forecast/` keeps the LSTM. */
  dataDir: string;
  /** Samples the LPS keeps per endpoint: the most history the LSTM can be given. */
  ringSize: number;
  lps: { setScorer(scorer: Scorer & Partial<ForecastProvider>): void };
  registry: Registry;
  logger: Logger;
}

/**
 * Plugs forecasting into the LPS of `augur serve`: makes the ForecastScorer the LPS's
 * scorer (which also answers GetForecast) and adds the forecast gauges to
 * /metrics. The LSTM worker starts when there is something to learn or a saved
 * model (`<dataDir>/forecast/lstm.json`) to restore; if it cannot start, the
 * baselines serve alone and the log says why.
 */
export async function attachForecast(host: ForecastHost): Promise<AttachedPart> {
  const { config } = host;
  const logger = host.logger.child({ part: 'forecast' });
  const file = join(host.dataDir, 'forecast', 'lstm.json');
  const scorer = new ForecastScorer({
    config,
    logger,
    ...(config.lstm.enabled
      ? {
          startLstm: () =>
            OnlineLstm.start({
              config: config.lstm,
              maxHorizon: config.maxHorizon,
              file,
              logger,
              maxRows: lstmRowsPerEndpoint(host.ringSize, config.lstm),
            }),
          // A saved model is restored at once; otherwise the worker waits for enough history.
          startLstmEagerly: existsSync(file),
        }
      : {}),
  });
  host.lps.setScorer(scorer);
  registerForecastMetrics(host.registry, scorer);
  return { stop: () => scorer.close() };
}
