import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ControlPlaneContext } from '../../serve/control-plane.js';
import { OnlineLstm } from './lstm/online.js';
import { registerForecastMetrics } from './metrics.js';
import { ForecastScorer } from './scorer.js';

/**
 * Plugs forecasting into `augur serve`: makes the ForecastScorer the LPS's
 * scorer (which also answers GetForecast) and adds the forecast gauges to
 * /metrics. The LSTM worker starts when there is something to learn or a saved
 * model (`<dataDir>/forecast/lstm.json`) to restore; if it cannot start, the
 * baselines serve alone and the log says why.
 */
export async function attachForecast(ctx: ControlPlaneContext): Promise<{ stop(): Promise<void> }> {
  const config = ctx.config.forecast;
  const logger = ctx.logger.child({ part: 'forecast' });
  const file = join(ctx.config.dataDir, 'forecast', 'lstm.json');
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
              maxRows: Math.max(ctx.config.lps.ringSize, config.lstm.minHistory * 2),
            }),
          // A saved model is restored at once; otherwise the worker waits for enough history.
          startLstmEagerly: existsSync(file),
        }
      : {}),
  });
  ctx.lps.setScorer(scorer);
  registerForecastMetrics(ctx.registry, scorer);
  return { stop: () => scorer.close() };
}
