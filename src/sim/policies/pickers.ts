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
 * Least request, power of two choices (Envoy's default with equal weights):
 * two distinct endpoints at random, the one with fewer of this proxy's own
 * requests in flight wins (ties: the first drawn).
 */
export class P2cPicker implements Picker {
  constructor(
    private readonly view: FleetView,
    private readonly rng: Rng,
  ) {}
  pick(proxy: number): number {
    const n = this.view.endpoints;
    const a = this.rng.int(n);
    let b = this.rng.int(n - 1);
    if (b >= a) b++;
    return this.view.proxyInflight(proxy, b) < this.view.proxyInflight(proxy, a) ? b : a;
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

/**
 * Weighted least request by two choices: both candidates drawn in proportion
 * to their weight, the one with the fewer of this proxy's requests in flight
 * per unit of weight wins ((inflight + 1) / weight, the load Envoy's weighted
 * least request divides by). With equal weights it is P2C.
 */
export class WeightedP2cPicker implements Picker {
  constructor(
    private readonly view: FleetView,
    private readonly rng: Rng,
  ) {}
  pick(proxy: number, weights: Float64Array): number {
    const a = drawWeighted(this.rng, weights);
    const b = drawWeighted(this.rng, weights);
    if (a === b) return a;
    const la = (this.view.proxyInflight(proxy, a) + 1) / weights[a];
    const lb = (this.view.proxyInflight(proxy, b) + 1) / weights[b];
    return lb < la ? b : a;
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
