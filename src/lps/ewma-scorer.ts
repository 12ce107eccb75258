import { secondsToDuration } from '../common/duration.js';
import { EndpointState, type Assessment, type EndpointRecord, type Scorer } from './types.js';

export interface EwmaScorerOptions {
  /** Smoothing factor of the EWMA, (0,1]. */
  alpha: number;
  /** Response time at which the latency factor is 0.5, seconds. */
  responseTimeRef: number;
}

const DEFAULTS: EwmaScorerOptions = { alpha: 0.3, responseTimeRef: 0.2 };

/**
 * The simplest scorer that runs end to end: an EWMA of each endpoint's CPU and
 * response time over its stored samples, score = (1 - cpu) × 1/(1 + rt/ref),
 * weight = score. The forecasting scorer (src/lps/forecast) replaces it; this
 * one stays as the fallback and for tests of the pipeline around it.
 */
export class EwmaScorer implements Scorer {
  private readonly options: EwmaScorerOptions;

  constructor(options: Partial<EwmaScorerOptions> = {}) {
    this.options = { ...DEFAULTS, ...options };
  }

  assess(
    endpoints: readonly EndpointRecord[],
    states: ReadonlyMap<string, EndpointState>,
    nowMs: number,
  ): Map<string, Assessment> {
    const out = new Map<string, Assessment>();
    for (const r of endpoints) {
      const cpu = this.ewma(r, 'cpu');
      const rt = this.ewma(r, 'responseTime');
      const usable = states.get(r.id) === EndpointState.ENDPOINT_STATE_ACTIVE && r.series.size > 0;
      const utilizationFactor = usable ? Math.max(0, 1 - cpu) : 0;
      const latencyFactor = usable ? 1 / (1 + rt / this.options.responseTimeRef) : 0;
      const score = utilizationFactor * latencyFactor;
      out.set(r.id, {
        score,
        weight: score,
        parts: {
          predictedUtilization: cpu,
          predictedResponseTime: rt,
          stalenessSeconds: Math.max(0, (nowMs - r.lastSeenMs) / 1000),
          forecaster: 'ewma',
          utilizationFactor,
          latencyFactor,
          horizon: secondsToDuration(r.interval),
          predictedMemory: this.ewma(r, 'memory'),
          predictedNetwork: 0,
          estimatedCapacity: 0,
        },
      });
    }
    return out;
  }

  private ewma(r: EndpointRecord, column: 'cpu' | 'responseTime' | 'memory'): number {
    const values = r.series.column(column, 64);
    if (values.length === 0) return 0;
    let acc = values[0]!;
    for (let i = 1; i < values.length; i++) acc += this.options.alpha * (values[i]! - acc);
    return acc;
  }
}
