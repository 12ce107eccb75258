import { EventHeap } from '../heap.js';
import type { Rng } from '../rng.js';
import type { FleetView } from '../types.js';

/**
 * How a proxy turns weights (or none) into a pick. Each picker keeps its own
 * state per proxy; `weights` are relative (not normalised), >= 0, and at least
 * one is positive.
 */
export interface Picker {
  pick(proxy: number, weights: Float64Array): number;
}

/** Plain round robin; each proxy starts at its own random offset, as Envoys do. */
export class RoundRobinPicker implements Picker {
  private readonly next: Int32Array;
  constructor(
    private readonly view: FleetView,
    rng: Rng,
  ) {
    this.next = Int32Array.from({ length: view.proxies }, () => rng.int(view.endpoints));
  }
  pick(proxy: number): number {
    const e = this.next[proxy];
    this.next[proxy] = (e + 1) % this.view.endpoints;
    return e;
  }
}

/**
 * Weighted round robin, smooth (nginx's algorithm: deterministic and spread
 * out, like Envoy's and gRPC's EDF schedulers); each proxy starts from a random
 * phase so that proxies do not send in lockstep.
 */
export class SmoothWrrPicker implements Picker {
  private readonly current: Float64Array;
  constructor(
    private readonly view: FleetView,
    rng: Rng,
  ) {
    this.current = Float64Array.from({ length: view.proxies * view.endpoints }, () => rng.next());
  }
  pick(proxy: number, weights: Float64Array): number {
    const n = this.view.endpoints;
    const base = proxy * n;
    let total = 0;
    let best = 0;
    let bestValue = -Infinity;
    for (let e = 0; e < n; e++) {
      const w = weights[e];
      total += w;
      const v = (this.current[base + e] += w);
      if (v > bestValue) {
        bestValue = v;
        best = e;
      }
    }
    this.current[base + best] -= total;
    return best;
  }
}

/** Weighted random (what grpc-js does across localities). */
export class WeightedRandomPicker implements Picker {
  constructor(private readonly rng: Rng) {}
  pick(_proxy: number, weights: Float64Array): number {
    return drawWeighted(this.rng, weights);
  }
}

/** Options of Envoy's least request load balancer, with Envoy's defaults. */
export interface EnvoyLeastRequestOptions {
  /** Hosts drawn (with replacement) when all weights are equal. */
  choiceCount: number;
  /** Exponent of (active requests + 1) dividing a host's weight when weights differ. */
  activeRequestBias: number;
}

export const ENVOY_LEAST_REQUEST_DEFAULTS: EnvoyLeastRequestOptions = {
  choiceCount: 2,
  activeRequestBias: 1,
};

/**
 * Envoy's least request load balancer as Envoy implements it
 * (`LeastRequestLoadBalancer` over `EdfLoadBalancerBase`, v1.35), on the proxy's
 * own in-flight counts:
 * - all weights equal: `choiceCount` hosts drawn at random with replacement, the
 *   one with the fewest active requests wins (the first drawn on a tie): P2C;
 * - weights differ: an earliest-deadline-first schedule. Each pick pops the
 *   host with the earliest deadline, advances the scheduler's clock to it, and
 *   puts the host back with deadline clock + 1/w', where w' = weight /
 *   (active requests + 1)^activeRequestBias read at that moment. The other
 *   hosts keep the deadlines set when they were last picked, so in-flight
 *   counts steer far less than in P2C: the schedule mostly follows the weights.
 *   The schedule is rebuilt (every host at its w', then a random number of
 *   picks, Envoy's `createWithPicks`, so proxies do not move in lockstep)
 *   whenever the weights change (an EDS update).
 */
export class EnvoyLeastRequestPicker implements Picker {
  private readonly opts: EnvoyLeastRequestOptions;
  private readonly schedules: Array<EdfSchedule | undefined>;
  private readonly built: Array<Float64Array | undefined>;

  constructor(
    private readonly view: FleetView,
    private readonly rng: Rng,
    opts: Partial<EnvoyLeastRequestOptions> = {},
  ) {
    this.opts = { ...ENVOY_LEAST_REQUEST_DEFAULTS, ...opts };
    this.schedules = new Array<EdfSchedule | undefined>(view.proxies);
    this.built = new Array<Float64Array | undefined>(view.proxies);
  }

  pick(proxy: number, weights: Float64Array): number {
    if (this.built[proxy] !== weights) {
      this.built[proxy] = weights;
      this.schedules[proxy] = allEqual(weights) ? undefined : this.build(proxy, weights);
    }
    const schedule = this.schedules[proxy];
    return schedule ? schedule.pickAndAdd() : this.unweighted(proxy, weights.length);
  }

  private unweighted(proxy: number, n: number): number {
    let best = -1;
    for (let i = 0; i < this.opts.choiceCount; i++) {
      const e = this.rng.int(n);
      if (best < 0 || this.view.proxyInflight(proxy, e) < this.view.proxyInflight(proxy, best))
        best = e;
    }
    return best;
  }

  private build(proxy: number, weights: Float64Array): EdfSchedule {
    const bias = this.opts.activeRequestBias;
    const hostWeight = (e: number): number => {
      const active = this.view.proxyInflight(proxy, e);
      return bias === 0 ? weights[e] : weights[e] / (active + 1) ** bias;
    };
    const schedule = new EdfSchedule(weights.length, hostWeight);
    for (let e = 0; e < weights.length; e++) if (weights[e] > 0) schedule.add(e, hostWeight(e));
    // A random starting point in the schedule (Envoy seeds its picks at random per load balancer).
    const skip = this.rng.int(2 * weights.length);
    for (let i = 0; i < skip; i++) schedule.pickAndAdd();
    return schedule;
  }
}

function allEqual(w: Float64Array): boolean {
  for (let i = 1; i < w.length; i++) if (w[i] !== w[0]) return false;
  return true;
}

/**
 * Envoy's EdfScheduler: entries ordered by deadline (the first inserted first on
 * a tie); a pick pops the earliest, moves the clock to its deadline and re-adds
 * the host at clock + 1/weight with its weight at that moment.
 */
export class EdfSchedule {
  private readonly heap: EventHeap;
  private clock = 0;

  constructor(
    capacity: number,
    private readonly weightOf: (host: number) => number,
  ) {
    this.heap = new EventHeap(Math.max(1, capacity));
  }

  add(host: number, weight: number): void {
    this.heap.push(this.clock + 1 / weight, host);
  }

  pickAndAdd(): number {
    this.clock = this.heap.peekTime();
    const host = this.heap.pop();
    this.add(host, this.weightOf(host));
    return host;
  }
}

/** An index drawn with probability proportional to its weight. */
export function drawWeighted(rng: Rng, weights: Float64Array): number {
  let total = 0;
  for (let i = 0; i < weights.length; i++) total += weights[i];
  let r = rng.next() * total;
  for (let i = 0; i < weights.length; i++) {
    r -= weights[i];
    if (r < 0 && weights[i] > 0) return i;
  }
  // rounding left r at ~0: the last positive weight
  for (let i = weights.length - 1; i >= 0; i--) if (weights[i] > 0) return i;
  return 0;
}
