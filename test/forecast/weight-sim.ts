import type { WeightController, WeightObservation } from '../../src/lps/score/weight.js';
import { mulberry32 } from '../../src/lps/forecast/random.js';

export interface SimWorld {
  /** Requests/s each endpoint serves at full utilisation, at tick t. */
  capacity(t: number): number[];
  /** Utilisation from load that is not ours, at tick t. */
  background(t: number): number[];
  /** Total requests/s of the service. */
  total: number;
}

export interface SimTrace {
  shares: number[][];
  utilization: number[][];
}

type Policy = { update(o: readonly WeightObservation[]): Map<string, { share: number }> };

/**
 * Closes the loop: each tick the endpoints get the shares the policy published
 * last tick, their utilisation responds (background + our load / capacity, plus
 * noise, clamped to [0,1]), and the policy sees that utilisation.
 */
export function simulate(
  policy: Policy | WeightController,
  world: SimWorld,
  ticks: number,
  opts: { reportRate: boolean; noise?: number; seed?: number },
): SimTrace {
  const n = world.capacity(0).length;
  const random = mulberry32(opts.seed ?? 1);
  let shares = Array.from({ length: n }, () => 1 / n);
  const trace: SimTrace = { shares: [], utilization: [] };
  for (let t = 0; t < ticks; t++) {
    const cap = world.capacity(t);
    const bg = world.background(t);
    const util = shares.map((s, i) => {
      const u = bg[i]! + (s * world.total) / cap[i]! + (opts.noise ?? 0) * (random() - 0.5);
      return Math.min(1, Math.max(0, u));
    });
    trace.shares.push(shares);
    trace.utilization.push(util);
    const result = policy.update(
      util.map((u, i) => ({
        id: `e${i}`,
        utilization: u,
        requestRate: opts.reportRate ? shares[i]! * world.total : 0,
        available: true,
      })),
    );
    shares = shares.map((_, i) => result.get(`e${i}`)!.share);
  }
  return trace;
}

/** Shares ∝ headroom (1 - u): the policy DESIGN.md measured oscillating. */
export const headroomPolicy: Policy = {
  update(obs) {
    const head = obs.map((o) => Math.max(0.01, 1 - o.utilization));
    const sum = head.reduce((a, b) => a + b, 0);
    return new Map(obs.map((o, i) => [o.id, { share: head[i]! / sum }]));
  },
};
