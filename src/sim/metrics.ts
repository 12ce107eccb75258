import type { SimSetup, SimTrace } from './simulator.js';

/** The figures of one policy in one scenario. Latencies in seconds. */
export interface PolicyFigures {
  policy: string;
  requests: number;
  mean: number;
  p50: number;
  p99: number;
  p999: number;
  /** Share of all counted requests that missed the SLO (dropped ones included). */
  overSlo: number;
  /** Share of counted requests dropped at a queue limit. */
  dropped: number;
  /**
   * Mean share of traffic the policy moves between endpoints from one interval
   * to the next (half the L1 distance of its shares); NaN without weights.
   * High at constant capacity means oscillating weights.
   */
  churn: number;
  swaps: SwapFigures | undefined;
  /** How the policy's capacity estimates compare with the truth; undefined without estimates. */
  bias: BiasFigures | undefined;
}

/**
 * A policy's capacity estimates (requests/s) against the true capacity of the
 * interval they are used in, over every endpoint and counted interval.
 */
export interface BiasFigures {
  /** Median of estimate / truth. */
  medianRatio: number;
  /** Share of estimates within ±25 % of the truth. */
  within25: number;
}

/** How well a weighted policy's cuts anticipated overloads. */
export interface SwapFigures {
  /** Overload onsets (see overloadOnsets). */
  onsets: number;
  /** Share of onsets whose endpoint had its weight cut at most `window` intervals before, or one after. */
  caught: number;
  /** Mean lead of the first such cut before the onset, seconds (negative: after). */
  leadTime: number;
  /** Weight cuts (share down by at least `cutRatio`). */
  cuts: number;
  /** Share of cuts followed by no onset of that endpoint within `window` intervals. */
  falseRate: number;
}

export interface MetricsOptions {
  /** SLO as a latency, seconds. */
  slo: number;
  /** A share falling by at least this fraction in one interval is a cut. */
  cutRatio: number;
  /** Utilisation above which an endpoint is overloaded. */
  overloadThreshold: number;
  /** Intervals a cut may precede its onset by and still count. */
  window: number;
}

/** Turns a run's raw trace into its figures. */
export function figures(
  policy: string,
  trace: SimTrace,
  setup: SimSetup,
  opts: MetricsOptions,
): PolicyFigures {
  const lat = trace.latencies.slice().sort();
  const q = (p: number) =>
    lat.length === 0
      ? NaN
      : lat[Math.min(lat.length - 1, Math.max(0, Math.ceil(p * lat.length) - 1))];
  let sum = 0;
  let over = 0;
  for (const x of lat) {
    sum += x;
    if (x > opts.slo) over++;
  }
  const counted = Math.max(1, trace.requests);
  return {
    policy,
    requests: trace.requests,
    mean: lat.length ? sum / lat.length : NaN,
    p50: q(0.5),
    p99: q(0.99),
    p999: q(0.999),
    overSlo: (over + trace.dropped) / counted,
    dropped: trace.dropped / counted,
    churn: churn(trace.shares, setup.warmupSteps),
    swaps: Number.isNaN(trace.shares[0]?.[0] ?? NaN)
      ? undefined
      : swapFigures(trace.shares, setup, opts),
    bias: biasFigures(trace.capacities, setup),
  };
}

function biasFigures(capacities: Float64Array[], setup: SimSetup): BiasFigures | undefined {
  const ratios: number[] = [];
  for (let k = setup.warmupSteps; k < capacities.length; k++)
    for (let e = 0; e < setup.speed.length; e++) {
      const est = capacities[k]![e]!;
      if (!Number.isFinite(est)) continue;
      const truth = (setup.speed[e]![k]! * setup.workers) / setup.serviceTime;
      ratios.push(est / truth);
    }
  if (ratios.length === 0) return undefined;
  ratios.sort((a, b) => a - b);
  return {
    medianRatio: ratios[ratios.length >> 1]!,
    within25: ratios.filter((r) => r >= 0.75 && r <= 1.25).length / ratios.length,
  };
}

function churn(shares: Float64Array[], from: number): number {
  let total = 0;
  let n = 0;
  for (let k = Math.max(1, from); k < shares.length; k++) {
    let d = 0;
    for (let e = 0; e < shares[k].length; e++) d += Math.abs(shares[k][e] - shares[k - 1][e]);
    if (Number.isNaN(d)) return NaN;
    total += d / 2;
    n++;
  }
  return n ? total / n : NaN;
}

/**
 * Overload onsets, defined without reference to any policy so that every
 * policy is judged against the same events: endpoint e has an onset at step k
 * if its capacity fell by at least `minDrop` at k and, kept at the share of
 * traffic proportional to its capacity of step k−1 (what a perfect reactive
 * balancer gives it), its utilisation crosses `threshold` at step k while it
 * was below at k−1.
 * Returns per endpoint the onset steps (after warm-up).
 */
export function overloadOnsets(setup: SimSetup, threshold: number, minDrop: number): number[][] {
  const N = setup.speed.length;
  const steps = setup.rate.length;
  const util = (e: number, k: number): number => {
    if (k < 1) return 0;
    let total = 0;
    for (let j = 0; j < N; j++) total += setup.speed[j][k - 1];
    const share = setup.speed[e][k - 1] / total;
    return (share * setup.rate[k] * setup.serviceTime) / (setup.workers * setup.speed[e][k]);
  };
  return Array.from({ length: N }, (_, e) => {
    const onsets: number[] = [];
    for (let k = Math.max(2, setup.warmupSteps); k < steps; k++) {
      const fell = setup.speed[e][k] <= (1 - minDrop) * setup.speed[e][k - 1];
      if (fell && util(e, k) >= threshold && util(e, k - 1) < threshold) onsets.push(k);
    }
    return onsets;
  });
}

function swapFigures(shares: Float64Array[], setup: SimSetup, opts: MetricsOptions): SwapFigures {
  const N = setup.speed.length;
  const onsets = overloadOnsets(setup, opts.overloadThreshold, opts.cutRatio);
  let nOnsets = 0;
  let caught = 0;
  let leadSum = 0;
  let cuts = 0;
  let falseCuts = 0;
  for (let e = 0; e < N; e++) {
    const cutSteps: number[] = [];
    for (let k = Math.max(1, setup.warmupSteps); k < shares.length; k++) {
      if (shares[k][e] <= (1 - opts.cutRatio) * shares[k - 1][e]) cutSteps.push(k);
    }
    for (const k of onsets[e]) {
      nOnsets++;
      const first = cutSteps.find((c) => c >= k - opts.window && c <= k + 1);
      if (first !== undefined) {
        caught++;
        leadSum += (k - first) * setup.interval;
      }
    }
    for (const c of cutSteps) {
      cuts++;
      if (!onsets[e].some((k) => k >= c - 1 && k <= c + opts.window)) falseCuts++;
    }
  }
  return {
    onsets: nOnsets,
    caught: nOnsets ? caught / nOnsets : NaN,
    leadTime: caught ? leadSum / caught : NaN,
    cuts,
    falseRate: cuts ? falseCuts / cuts : NaN,
  };
}
