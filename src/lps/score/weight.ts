import { HoltForecaster } from '../forecast/baselines.js';
import type { Forecaster } from '../forecast/forecaster.js';

/**
 * The weight: the share of a service's traffic each endpoint should get over the
 * next interval, estimated from what it can take, never from its headroom alone.
 *
 * Model. An endpoint's utilisation is its own load plus load that is not ours:
 *
 *   u_i(t) = b_i(t) + k_i · x_i(t)
 *
 * where x_i is the traffic we sent it (requests/s when the agent reports a request
 * rate; otherwise the share of the service's traffic the LPS published for that
 * interval), k_i the utilisation per unit of that traffic (1/k_i is its capacity:
 * gRFC A58's qps/utilisation) and b_i the background (noisy neighbours, batch
 * jobs, other services). Per endpoint we keep exponentially weighted moments of
 * (x, u) and estimate k_i by a ridge regression of u on x whose prior is A58's
 * u/x (which assumes b = 0): where our own traffic moved enough, the slope
 * separates our load from the background; where it did not, the estimate falls
 * back to A58. k_i is clamped to [(1 - maxBackgroundFraction)·u/x, u/x] so the
 * background is never negative and never claims more than that fraction of the
 * mean utilisation: that bound is an assumption, stated here because the
 * background and our load cannot be told apart without variation of our own.
 *
 * The background series b_i(t) = u_i(t) - k_i·x_i(t) is forecast `horizon`
 * intervals ahead (Holt, damped, by default): that is where foresight enters.
 * Because it is the load that is not ours, moving our own traffic does not look
 * like a trend to the forecaster.
 *
 * Allocation (water filling): the level u* at which the predicted utilisations
 * are equal, Σ_i max(0, u* - b̂_i)/k_i = X (X = total rate, or 1 in share mode),
 * gives the target share t_i = max(0, u* - b̂_i)/(k_i·X), floored at
 * `minShareFraction`/n so no endpoint starves (a starved endpoint could never be
 * measured again). The published share moves a fraction `damping` toward the
 * target each interval.
 *
 * Why not headroom: a share ∝ (1 - u) ignores that u depends on the share itself,
 * so it overshoots in both directions (DESIGN.md measured shares swinging 0.01 ↔
 * 0.7 at constant capacity). Here, at constant capacity and background the target
 * does not depend on the current share once k is known, and while k is still the
 * A58 estimate the update is s' ∝ s/u, whose error shrinks by a factor (1 - own
 * fraction of u) per interval: it converges without overshoot. The test suite
 * closes the loop with simulated endpoints and checks both.
 *
 * Share mode (no request rate from the agents) relies on the published share being
 * the share received; a client that ignores the weights breaks that assumption and
 * the estimate degrades to A58 on the wrong x. Capacity in requests/s is only
 * known in rate mode; in share mode `capacity` is 0.
 */
export interface WeightParams {
  /** Intervals ahead the background is forecast. */
  horizon: number;
  /** Fraction of the way to the target share moved each interval, (0,1]. */
  damping: number;
  /** Forgetting factor of the (x, u) moments per interval, (0,1). */
  forgetting: number;
  /** Ridge prior strength, as a coefficient of variation of x: below it, A58 dominates. */
  priorStrength: number;
  /** Most of the mean utilisation the background may claim, [0,1). */
  maxBackgroundFraction: number;
  /** Floor of a share, as a fraction of the equal share 1/n. */
  minShareFraction: number;
}

export const DEFAULT_WEIGHT_PARAMS: WeightParams = {
  horizon: 2,
  damping: 0.5,
  forgetting: 0.95,
  priorStrength: 0.1,
  maxBackgroundFraction: 0.8,
  minShareFraction: 0.1,
};

export interface WeightObservation {
  id: string;
  /** Measured utilisation of the resource the weight steers (CPU), [0,1]. */
  utilization: number;
  /**
   * Requests/s the endpoint served over the interval; 0 when unknown. The service
   * is in rate mode when any endpoint reports a rate; an endpoint reporting 0 then
   * keeps its estimates (nothing is learnt from that interval).
   */
  requestRate: number;
  /** False for stale, failing or draining endpoints: they get weight 0 and are forgotten. */
  available: boolean;
  /**
   * False when `utilization` is the same measurement as at the previous update
   * (the agent reports less often than the weights are recomputed): the endpoint's
   * estimates are left alone and only the allocation is redone. Default true.
   */
  fresh?: boolean;
}

export interface WeightResult {
  /** Share of the service's traffic for the next interval; the shares of one call sum to 1. */
  share: number;
  /** Utilisation per unit of x (request/s in rate mode, share in share mode). */
  costPerUnit: number;
  /** Requests/s at full utilisation, 0 when unknown (share mode). */
  capacity: number;
  /** Current background utilisation estimate. */
  background: number;
  /** Background forecast at the horizon. */
  predictedBackground: number;
}

interface EndpointState {
  share: number;
  rateMode: boolean;
  n: number;
  mx: number;
  mu: number;
  vxx: number;
  cxu: number;
  k: number;
  background: Forecaster;
  lastBackground: number;
}

const clamp = (v: number, lo: number, hi: number): number => (v < lo ? lo : v > hi ? hi : v);

/**
 * One controller per service, stepped once per interval with every endpoint of the
 * service. Synchronous and self-contained: a simulator can drive it directly.
 */
export class WeightController {
  private readonly params: WeightParams;
  private readonly newForecaster: () => Forecaster;
  private readonly states = new Map<string, EndpointState>();

  constructor(
    params: Partial<WeightParams> = {},
    newForecaster: () => Forecaster = () => new HoltForecaster(),
  ) {
    this.params = { ...DEFAULT_WEIGHT_PARAMS, ...params };
    this.newForecaster = newForecaster;
  }

  /** The share last published for an endpoint, if any. */
  shareOf(id: string): number | undefined {
    return this.states.get(id)?.share;
  }

  update(observations: readonly WeightObservation[]): Map<string, WeightResult> {
    const p = this.params;
    const out = new Map<string, WeightResult>();
    const live = observations.filter((o) => o.available && Number.isFinite(o.utilization));
    for (const o of observations) if (!live.includes(o)) this.states.delete(o.id);
    const present = new Set(observations.map((o) => o.id));
    for (const id of this.states.keys()) if (!present.has(id)) this.states.delete(id);
    const n = live.length;
    for (const o of observations) if (!live.includes(o)) out.set(o.id, zero());
    if (n === 0) return out;

    // Rate mode as soon as any agent reports a rate: an endpoint that served nothing
    // in an interval reports 0 (the same as "unknown"), and must not flip the whole
    // service to share mode (and back), which would throw away what was learnt.
    const rateMode = live.some((o) => o.requestRate > 0);
    const equal = 1 / n;
    const est: Array<{
      o: WeightObservation;
      s: EndpointState;
      x: number;
      k: number;
      bHat: number;
    }> = [];
    for (const o of live) {
      let s = this.states.get(o.id);
      if (!s || s.rateMode !== rateMode) {
        s = fresh(rateMode, s?.share ?? equal, this.newForecaster());
        this.states.set(o.id, s);
      }
      const u = clamp(o.utilization, 0, 1);
      const x = rateMode ? o.requestRate : s.share;
      // In rate mode an endpoint without a rate this interval says nothing about its cost.
      const informative = !rateMode || o.requestRate > 0;
      if (informative && (o.fresh !== false || s.n === 0)) {
        this.learn(s, x, u);
        const b = clamp(u - s.k * x, 0, 1);
        s.background.observe(b);
        s.lastBackground = b;
      }
      const bHat = clamp(s.background.forecast(p.horizon)?.median ?? s.lastBackground, 0, 1);
      est.push({ o, s, x, k: s.k, bHat });
    }

    // An endpoint with nothing learnt yet borrows the mean cost of the others.
    const known = est.filter((e) => e.s.n > 0 && e.s.mx > 0);
    const meanK = known.length ? known.reduce((a, e) => a + e.k, 0) / known.length : 1;
    for (const e of est) if (!(e.s.n > 0 && e.s.mx > 0)) e.k = meanK;
    const total = rateMode ? est.reduce((acc, e) => acc + e.x, 0) : 1;
    const level = waterLevel(
      est.map((e) => e.bHat),
      est.map((e) => e.k),
      total,
    );
    const floor = p.minShareFraction * equal;
    let targetSum = 0;
    const targets = est.map((e) => {
      const t = Math.max(floor, Math.max(0, level - e.bHat) / (e.k * total));
      targetSum += t;
      return t;
    });
    let shareSum = 0;
    est.forEach((e, i) => {
      const target = targets[i]! / targetSum;
      e.s.share = e.s.share + p.damping * (target - e.s.share);
      shareSum += e.s.share;
    });
    for (const e of est) {
      e.s.share /= shareSum;
      out.set(e.o.id, {
        share: e.s.share,
        costPerUnit: e.k,
        capacity: rateMode && e.k > 0 ? 1 / e.k : 0,
        background: e.s.lastBackground,
        predictedBackground: e.bHat,
      });
    }
    return out;
  }

  /** Updates the (x, u) moments and the cost-per-unit estimate. */
  private learn(s: EndpointState, x: number, u: number): void {
    const p = this.params;
    s.n++;
    const a = Math.max(1 - p.forgetting, 1 / s.n);
    const dx = x - s.mx;
    const du = u - s.mu;
    s.mx += a * dx;
    s.mu += a * du;
    s.vxx = (1 - a) * (s.vxx + a * dx * dx);
    s.cxu = (1 - a) * (s.cxu + a * dx * du);
    if (s.mx <= 0) return;
    // A58: all the utilisation is ours. Floor u so an idle endpoint still has a finite capacity.
    const a58 = Math.max(s.mu, 1e-3) / s.mx;
    const rho = (p.priorStrength * s.mx) ** 2;
    const slope = (s.cxu + rho * a58) / (s.vxx + rho);
    s.k = clamp(slope, (1 - p.maxBackgroundFraction) * a58, a58);
  }
}

function fresh(rateMode: boolean, share: number, background: Forecaster): EndpointState {
  return {
    share,
    rateMode,
    n: 0,
    mx: 0,
    mu: 0,
    vxx: 0,
    cxu: 0,
    k: 1,
    background,
    lastBackground: 0,
  };
}

function zero(): WeightResult {
  return { share: 0, costPerUnit: 0, capacity: 0, background: 0, predictedBackground: 0 };
}

/** u* with Σ max(0, u* - b_i)/k_i = total (bisection; the left side is increasing in u*). */
export function waterLevel(
  backgrounds: readonly number[],
  costs: readonly number[],
  total: number,
): number {
  let lo = Math.min(...backgrounds);
  let hi = Math.max(...backgrounds) + total * Math.max(...costs) + 1e-9;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    let sum = 0;
    for (let j = 0; j < backgrounds.length; j++)
      sum += Math.max(0, mid - backgrounds[j]!) / costs[j]!;
    if (sum < total) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}
