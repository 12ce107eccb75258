import { WeightBasis } from '../../gen/augur/v1/load_prediction.js';

export { WeightBasis };

/**
 * The weight: each endpoint's share of traffic, proportional to the capacity it
 * is predicted to have while the weight is in force.
 *
 *   capacity_i = cores_i × (1 − b̃_i) × κ_s / κ_i
 *
 * in "free cores": b̃_i is the background (CPU load that is not the endpoint's)
 * the weight plans for, κ_i the endpoint's CPU-seconds per request and κ_s its
 * service's (src/lps/score/cost.ts). κ_s / κ_i is 1 until costs are known, so
 * the unit does not jump when the first cost is learnt; in requests/s the
 * capacity is cores_i × (1 − b̃_i) / κ_i.
 *
 * b̃ is the selected forecaster's forecast of the measured background
 * (host CPU − own CPU) at the horizon where the weight will be in force,
 * moved a fraction `uncertainty` of the way from the median to the upper bound:
 * where the background is volatile an endpoint is planned with less capacity
 * than its median, where it is steady with about the median.
 *
 * Why not water filling at the last request rate (what this file did before
 * issue 11): it allocates for the traffic of the interval that just ended, and
 * after a quiet interval it piles the next busy one onto the quietest
 * endpoints. Why not headroom (1 − utilisation): the utilisation includes the
 * load we send, so headroom weights oscillate (DESIGN.md). Capacity does not
 * depend on the share we send, so these weights do not feed back on themselves.
 *
 * Publication (`PublishedWeight`): a predicted drop is cut at once; a rise is
 * restored gradually (a fraction `restore` of the gap per sample); a change
 * within ± `hysteresis` of the published weight is not published at all (each
 * locality-weight update makes grpc-js-xds reconnect to every backend).
 */
export interface WeightParams {
  /** Fraction of the way from the median forecast of the background to its upper bound, [0,1]. */
  uncertainty: number;
  /** The planned background is capped here, so that no endpoint's weight reaches 0, [0,1). */
  maxBackground: number;
  /** Relative change of the target below which the published weight stays, [0,1). */
  hysteresis: number;
  /** Fraction of the gap to a higher target closed per sample, (0,1]. */
  restore: number;
  /**
   * Seconds from a weight's computation to its use by the data plane (scoring
   * tick to xDS push to client): added to the sample's age to find the horizon.
   */
  pushDelay: number;
}

export const DEFAULT_WEIGHT_PARAMS: WeightParams = {
  uncertainty: 0.5,
  maxBackground: 0.97,
  hysteresis: 0.05,
  restore: 0.8,
  pushDelay: 0.05,
};

/** The background to plan for, from the forecast's median and upper bound. */
export function plannedBackground(
  median: number,
  upper: number,
  params: Pick<WeightParams, 'uncertainty' | 'maxBackground'>,
): number {
  const m = Number.isFinite(median) ? median : 0;
  const u = Number.isFinite(upper) ? Math.max(upper, m) : m;
  const b = m + params.uncertainty * (u - m);
  return Math.min(params.maxBackground, Math.max(0, b));
}

/**
 * How far ahead, in intervals, a weight computed now is in force: it covers the
 * interval after the newest sample, shifted by that sample's age and the push
 * delay. Fractional; clamped to [1, maxHorizon].
 */
export function weightHorizon(
  sampleAgeSeconds: number,
  intervalSeconds: number,
  pushDelaySeconds: number,
  maxHorizon: number,
): number {
  const shift = (Math.max(0, sampleAgeSeconds) + Math.max(0, pushDelaySeconds)) / intervalSeconds;
  return Math.min(maxHorizon, Math.max(1, 1 + (Number.isFinite(shift) ? shift : 0)));
}

/** A forecast path read at a fractional horizon (linear between the two whole ones). */
export function atHorizon(path: (h: number) => number, h: number): number {
  const lo = Math.floor(h);
  const f = h - lo;
  const a = path(lo);
  return f === 0 ? a : a + f * (path(lo + 1) - a);
}

/**
 * The published weight of one endpoint: cut at once, restored gradually, held
 * within the hysteresis band. `update` is called once per new sample of the
 * endpoint (never per scoring tick, or restoring would speed up with the tick
 * rate).
 */
export class PublishedWeight {
  private value: number | undefined;

  constructor(private readonly params: Pick<WeightParams, 'hysteresis' | 'restore'>) {}

  get current(): number | undefined {
    return this.value;
  }

  /** Takes back a saved `current` (cluster mode's checkpoints); false if it is not one. */
  restore(value: unknown): boolean {
    if (value === null || value === undefined) {
      this.value = undefined;
      return true;
    }
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) return false;
    this.value = value;
    return true;
  }

  update(target: number): number {
    const { hysteresis, restore } = this.params;
    const p = this.value;
    if (p === undefined || !(p > 0)) return (this.value = target);
    if (target <= (1 - hysteresis) * p) return (this.value = target);
    if (target >= (1 + hysteresis) * p) {
      const next = p + restore * (target - p);
      // Close enough to land on the target, so a restore does not stall inside the band.
      return (this.value = next * (1 + hysteresis) >= target ? target : next);
    }
    return p;
  }
}
