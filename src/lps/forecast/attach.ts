import { join } from 'node:path';
import type { ControlPlaneContext } from '../../serve/control-plane.js';
import { OnlineLstm } from './lstm/online.js';
import { registerForecastMetrics } from './metrics.js';
import { ForecastScorer } from './scorer.js';

/**
 * Plugs forecasting into `augur serve`: starts the LSTM worker (restoring its
 * model from `<dataDir>/forecast/lstm.json`), makes the ForecastScorer the LPS's
 * scorer (which also answers GetForecast), and adds the forecast gauges to
 * /metrics. If the LSTM cannot start, the baselines serve alone and the log
 * says why.
 */
export async function attachForecast(ctx: ControlPlaneContext): Promise<{ stop(): Promise<void> }> {
  const config = ctx.config.forecast;
  const logger = ctx.logger.child({ part: 'forecast' });
  let lstm: OnlineLstm | undefined;
  if (config.lstm.enabled) {
    try {
      lstm = await OnlineLstm.start({
        config: config.lstm,
        maxHorizon: config.maxHorizon,
        file: join(ctx.config.dataDir, 'forecast', 'lstm.json'),
        logger,
        maxRows: Math.max(ctx.config.lps.ringSize, config.lstm.minHistory * 2),
      });
    } catch (err) {
      logger.warn(
        { err: (err as Error).message },
        'LSTM unavailable; forecasting with the baselines only',
      );
    }
  }
  const scorer = new ForecastScorer({ config, logger, lstm });
  ctx.lps.setScorer(scorer);
  registerForecastMetrics(ctx.registry, scorer);
  return { stop: () => scorer.close() };
}
