/**
 * The Load Score: how good an endpoint is to send the next request to, in [0,1].
 *
 *   score = utilisationFactor * latencyFactor
 *   utilisationFactor = (1 - cpu^a) * (1 - network^a) * (1 - memory^m)
 *   latencyFactor     = r0 / (r0 + responseTime)
 *
 * where cpu, network and memory are the *upper-quantile* forecasts at the horizon,
 * as fractions of the endpoint's capacity clamped to [0,1], and responseTime the
 * forecast response time in seconds. Defaults: a = 2 (gentle at low load, steep
 * near saturation), m = 8 (memory only counts when it is nearly full: a busy
 * cache at 70 % is normal), r0 = 0.25 s (the response time that halves the score).
 *
 * Properties (tested): bounded in [0,1]; non-increasing in every input (strictly
 * decreasing in cpu and response time where they are inside (0,1) and finite);
 * Lipschitz, so small noise in the forecasts moves the score by at most
 * 2a·|Δ| + m·|Δmem| + |Δrt|/r0. A missing forecast (NaN) counts as no information:
 * its factor is 1. Stale, failing and draining endpoints score 0: the caller
 * passes `available: false`.
 */
export interface LoadScoreParams {
  cpuExponent: number;
  networkExponent: number;
  memoryExponent: number;
  /** Seconds; the predicted response time at which the latency factor is 1/2. */
  responseTimeReference: number;
}

export const DEFAULT_LOAD_SCORE_PARAMS: LoadScoreParams = {
  cpuExponent: 2,
  networkExponent: 2,
  memoryExponent: 8,
  responseTimeReference: 0.25,
};

export interface LoadScoreInputs {
  /** Predicted CPU utilisation (upper quantile), fraction of capacity. */
  cpu: number;
  /** Predicted memory utilisation (upper quantile), fraction of capacity. */
  memory: number;
  /** Predicted network utilisation (upper quantile), fraction of link capacity. */
  network: number;
  /** Predicted response time (upper quantile), seconds. */
  responseTime: number;
  /** False for stale, failing or draining endpoints. */
  available: boolean;
}

export interface LoadScore {
  score: number;
  utilizationFactor: number;
  latencyFactor: number;
}

const clamp01 = (v: number): number => (v < 0 ? 0 : v > 1 ? 1 : v);

function resourceFactor(u: number, exponent: number): number {
  if (!Number.isFinite(u)) return Number.isNaN(u) ? 1 : u > 0 ? 0 : 1;
  return 1 - clamp01(u) ** exponent;
}

/** The Load Score of `inputs`, written into `into` when given (no object per call) and returned. */
export function loadScore(
  inputs: LoadScoreInputs,
  params: LoadScoreParams = DEFAULT_LOAD_SCORE_PARAMS,
  into?: LoadScore,
): LoadScore {
  const utilizationFactor =
    resourceFactor(inputs.cpu, params.cpuExponent) *
    resourceFactor(inputs.network, params.networkExponent) *
    resourceFactor(inputs.memory, params.memoryExponent);
  const rt = inputs.responseTime;
  const r0 = params.responseTimeReference;
  const latencyFactor = Number.isNaN(rt) ? 1 : rt === Infinity ? 0 : r0 / (r0 + Math.max(0, rt));
  const out = into ?? { score: 0, utilizationFactor: 0, latencyFactor: 0 };
  out.score = inputs.available ? clamp01(utilizationFactor * latencyFactor) : 0;
  out.utilizationFactor = utilizationFactor;
  out.latencyFactor = latencyFactor;
  return out;
}
