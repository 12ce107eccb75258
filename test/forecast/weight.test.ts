import { describe, expect, test } from 'vitest';
import { WeightBasis } from '../../src/gen/augur/v1/load_prediction.js';
import {
  atHorizon,
  plannedBackground,
  PublishedWeight,
  weightHorizon,
} from '../../src/lps/score/weight.js';
import { closedLoop, cuts, swing, type SimWorld } from './weight-sim.js';

const steady: SimWorld = {
  cost: [0.01, 0.01, 0.01],
  cores: [2, 4, 4],
  background: () => [0.1, 0.5, 0.05],
  total: () => 400,
};
/** Shares proportional to true capacity (cores × (1 − background) / cost). */
const proportional = (w: SimWorld, t: number): number[] => {
  const c = w.background(t).map((b, i) => (w.cores[i]! * (1 - b)) / w.cost[i]!);
  const sum = c.reduce((a, b) => a + b, 0);
  return c.map((x) => x / sum);
};

describe('the weight, closed loop through the ForecastScorer', () => {
  test('constant capacity: shares settle in proportion to capacity, no oscillation, no cuts', async () => {
    const trace = await closedLoop(steady, 120, { noise: 0.02 });
    const want = proportional(steady, 0);
    const last = trace.shares.at(-1)!;
    last.forEach((s, i) => expect(Math.abs(s - want[i]!)).toBeLessThan(0.02));
    // The hysteresis holds the published weights: the noise in the measurements moves nothing.
    expect(swing(trace, 60)).toBeLessThan(0.005);
    expect(cuts(trace, 5)).toBe(0);
    const parts = trace.assessed.at(-1)!.get('e1')!.parts;
    expect(parts.weightParts!.basis).toBe(WeightBasis.WEIGHT_BASIS_MEASURED);
    expect(parts.weightParts!.costPerRequest).toBeCloseTo(0.01, 3);
    // Capacity in requests/s: 4 cores × (1 − 0.5) / 0.01 CPU-seconds per request.
    expect(parts.estimatedCapacity / 200).toBeGreaterThan(0.9);
    expect(parts.estimatedCapacity / 200).toBeLessThan(1.1);
  });

  test('cold start: before any traffic the weights follow free capacity, no pile-up', async () => {
    const world: SimWorld = {
      cost: [0.01, 0.01, 0.01, 0.01],
      cores: [4, 4, 4, 4],
      background: () => [0.05, 0.2, 0.3, 0.4],
      total: (t) => (t < 10 ? 0 : 500),
    };
    const trace = await closedLoop(world, 30, { noise: 0 });
    const want = proportional(world, 0); // 0.95 : 0.8 : 0.7 : 0.6 of 3.05
    for (const t of [1, 5, 9, 12, 29]) {
      const s = trace.shares[t]!;
      s.forEach((x, i) => expect(Math.abs(x - want[i]!)).toBeLessThan(0.03));
      expect(Math.max(...s)).toBeLessThan(0.35);
    }
  });

  test('a background ramping up on one endpoint cuts its weight at once, before its CPU peaks', async () => {
    const world: SimWorld = {
      cost: [0.01, 0.01, 0.01],
      cores: [4, 4, 4],
      background: (t) => [t < 40 ? 0.05 : Math.min(0.85, 0.05 + (t - 40) * 0.1), 0.05, 0.05],
      total: () => 600,
    };
    const trace = await closedLoop(world, 70, { noise: 0.01 });
    const s0 = trace.shares.map((s) => s[0]!);
    const u0 = trace.utilization.map((u) => u[0]!);
    const before = s0[39]!;
    // Measured, not inferred: the share published after the first sample of the ramp (t = 41) is lower,
    expect(s0[42]!).toBeLessThan(0.97 * before);
    // and cut by more than 10 % one interval later, long before its CPU peaks.
    const firstCut = s0.findIndex((s, t) => t >= 40 && s < 0.9 * before);
    expect(firstCut).toBe(43);
    expect(firstCut).toBeLessThan(u0.indexOf(Math.max(...u0)) - 3);
    // It ends near its capacity's share (0.15 of 2.05 free cores), the others take the rest.
    expect(s0.at(-1)!).toBeLessThan(0.1);
    expect(trace.utilization.at(-1)!.every((u) => u < 1)).toBe(true);
  });

  test('headroom-proportional weights in the same loop oscillate (the loop can fail a policy)', async () => {
    // Same world, but the shares follow 1 − host CPU: the policy DESIGN.md measured oscillating.
    const n = steady.cores.length;
    let shares = Array.from({ length: n }, () => 1 / n);
    const history: number[][] = [];
    for (let t = 0; t < 60; t++) {
      const u = shares.map((s, i) =>
        Math.min(
          1,
          steady.background(t)[i]! + (s * steady.total(t) * steady.cost[i]!) / steady.cores[i]!,
        ),
      );
      const head = u.map((x) => Math.max(0.01, 1 - x));
      const sum = head.reduce((a, b) => a + b, 0);
      shares = head.map((h) => h / sum);
      history.push(shares);
    }
    let worst = 0;
    for (let t = 31; t < 60; t++)
      history[t]!.forEach((s, i) => (worst = Math.max(worst, Math.abs(s - history[t - 1]![i]!))));
    expect(worst).toBeGreaterThan(0.2);
  });

  test('without own CPU: A58 from host CPU and requests (no foresight), still settling', async () => {
    // The costs are shrunk toward the service's (1,000 requests' weight): give them time to part.
    const trace = await closedLoop(steady, 300, { signals: 'no-own-cpu', noise: 0.02 });
    const parts = trace.assessed.at(-1)!.get('e0')!.parts.weightParts!;
    expect(parts.basis).toBe(WeightBasis.WEIGHT_BASIS_HOST_CPU);
    expect(parts.plannedBackground).toBe(0);
    expect(swing(trace, 30)).toBeLessThan(0.02);
    // A58 moves toward equal utilisation: the spread is well under that of the same weight per
    // core (0.45 − 0.9 here), short of 0 because costs are shrunk toward the service's.
    const u = trace.utilization.at(-1)!;
    expect(Math.max(...u) - Math.min(...u)).toBeLessThan(0.15);
  });

  test('without request counts: capacity from own CPU, the same cost for all', async () => {
    const trace = await closedLoop(steady, 60, { signals: 'no-requests', noise: 0.02 });
    const parts = trace.assessed.at(-1)!.get('e1')!.parts;
    expect(parts.weightParts!.basis).toBe(WeightBasis.WEIGHT_BASIS_OWN_CPU);
    expect(parts.estimatedCapacity).toBe(0); // requests/s unknown
    const want = proportional(steady, 0);
    trace.shares.at(-1)!.forEach((s, i) => expect(Math.abs(s - want[i]!)).toBeLessThan(0.02));
  });

  test('with host CPU only: the same weight per core', async () => {
    const trace = await closedLoop(steady, 20, { signals: 'host-only' });
    expect(trace.assessed.at(-1)!.get('e0')!.parts.weightParts!.basis).toBe(
      WeightBasis.WEIGHT_BASIS_CORES,
    );
    expect(trace.shares.at(-1)).toEqual([0.2, 0.4, 0.4]);
  });

  test('the predicted utilisation shown to users stays in [0,1]', async () => {
    const world: SimWorld = {
      cost: [0.01, 0.01],
      cores: [4, 4],
      background: (t) => [Math.min(0.99, 0.5 + t * 0.02), 0.1],
      total: () => 100,
    };
    const trace = await closedLoop(world, 40);
    for (const a of trace.assessed)
      for (const e of a.values()) {
        expect(e.parts.predictedUtilization).toBeGreaterThanOrEqual(0);
        expect(e.parts.predictedUtilization).toBeLessThanOrEqual(1);
        expect(e.weight).toBeGreaterThan(0);
      }
  });
});

describe('weight parts', () => {
  test('the planned background moves from the median toward the upper bound, capped', () => {
    const p = { uncertainty: 0.5, maxBackground: 0.9 };
    expect(plannedBackground(0.2, 0.4, p)).toBeCloseTo(0.3, 12);
    expect(plannedBackground(0.2, 0.1, p)).toBeCloseTo(0.2, 12); // upper below median: median
    expect(plannedBackground(0.8, 1.4, p)).toBe(0.9);
    expect(plannedBackground(-0.1, 0, p)).toBe(0);
    expect(plannedBackground(NaN, NaN, p)).toBe(0);
  });

  test("the horizon is the interval after the sample, shifted by the sample's age and the push delay", () => {
    expect(weightHorizon(0, 1, 0, 5)).toBe(1);
    expect(weightHorizon(0.5, 1, 0.25, 5)).toBeCloseTo(1.75, 12);
    expect(weightHorizon(2, 5, 0.5, 5)).toBeCloseTo(1.5, 12);
    expect(weightHorizon(30, 1, 0, 5)).toBe(5);
    expect(weightHorizon(-3, 1, 0, 5)).toBe(1);
  });

  test('a forecast path is read linearly between whole horizons', () => {
    const path = (h: number) => [NaN, 10, 20, 40][h]!;
    expect(atHorizon(path, 1)).toBe(10);
    expect(atHorizon(path, 1.25)).toBeCloseTo(12.5, 12);
    expect(atHorizon(path, 2.5)).toBeCloseTo(30, 12);
  });

  test('published weight: cut at once, restored gradually, held inside the hysteresis', () => {
    const w = new PublishedWeight({ hysteresis: 0.05, restore: 0.5 });
    expect(w.update(100)).toBe(100);
    expect(w.update(103)).toBe(100); // within 5 %: held
    expect(w.update(96)).toBe(100);
    expect(w.update(60)).toBe(60); // a drop: at once
    expect(w.update(100)).toBe(80); // a rise: half the gap
    expect(w.update(100)).toBe(90);
    expect(w.update(100)).toBe(95);
    expect(w.update(100)).toBe(100); // within the band of the target after the step: lands on it
    expect(w.update(100)).toBe(100);
  });
});
