import { describe, expect, test } from 'vitest';
import { LastValueForecaster } from '../../src/lps/forecast/baselines.js';
import { WeightController, waterLevel } from '../../src/lps/score/weight.js';
import { headroomPolicy, simulate, type SimTrace } from './weight-sim.js';

const capacity = [100, 200, 400];
const background = [0.1, 0.3, 0.05];
const constant = { capacity: () => capacity, background: () => background, total: 350 };

/** Largest tick-to-tick change of any share over the last `n` ticks. */
function swing(trace: SimTrace, n: number): number {
  let worst = 0;
  for (let t = trace.shares.length - n; t < trace.shares.length; t++)
    trace.shares[t]!.forEach(
      (s, i) => (worst = Math.max(worst, Math.abs(s - trace.shares[t - 1]![i]!))),
    );
  return worst;
}

describe('weight controller, closed loop', () => {
  const level = waterLevel(
    background,
    capacity.map((c) => 1 / c),
    constant.total,
  );
  const optimal = background.map((b, i) => ((level - b) * capacity[i]!) / constant.total);

  for (const reportRate of [true, false]) {
    test(`constant capacity: shares settle at equal utilisation (${reportRate ? 'rate' : 'share'} mode)`, () => {
      const trace = simulate(new WeightController(), constant, 100, { reportRate, noise: 0.02 });
      expect(swing(trace, 30)).toBeLessThan(0.02);
      const last = trace.shares.at(-1)!;
      last.forEach((s, i) => expect(Math.abs(s - optimal[i]!)).toBeLessThan(0.03));
      expect(last.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    });
  }

  test('the same loop with headroom-proportional shares does not settle (the test can fail)', () => {
    const trace = simulate(headroomPolicy, constant, 100, { reportRate: true, noise: 0.02 });
    expect(swing(trace, 30)).toBeGreaterThan(0.2);
  });

  test('a capacity drop (background ramping on one endpoint) cuts its weight before its utilisation peaks', () => {
    const world = {
      capacity: () => [200, 200, 200],
      background: (t: number) => [
        t < 40 ? 0.05 : Math.min(0.75, 0.05 + (t - 40) * 0.035),
        0.05,
        0.05,
      ],
      total: 300,
    };
    for (const reportRate of [true, false]) {
      const trace = simulate(new WeightController(), world, 90, { reportRate, noise: 0.02 });
      const u0 = trace.utilization.map((u) => u[0]!);
      const s0 = trace.shares.map((s) => s[0]!);
      const peak = u0.indexOf(Math.max(...u0));
      const before = s0[39]!;
      const firstCut = s0.findIndex((s, t) => t >= 40 && s < 0.9 * before);
      expect(firstCut).toBeGreaterThan(39);
      expect(firstCut).toBeLessThan(peak);
      // The others absorb the traffic: endpoint 0 ends with a small share.
      expect(s0.at(-1)!).toBeLessThan(0.1);
    }
  });

  test('stale or failing endpoints get weight 0 and the rest share all the traffic', () => {
    const c = new WeightController();
    c.update([
      { id: 'a', utilization: 0.5, requestRate: 0, available: true },
      { id: 'b', utilization: 0.5, requestRate: 0, available: true },
    ]);
    const r = c.update([
      { id: 'a', utilization: 0.5, requestRate: 0, available: false },
      { id: 'b', utilization: 0.5, requestRate: 0, available: true },
    ]);
    expect(r.get('a')!.share).toBe(0);
    expect(r.get('b')!.share).toBeCloseTo(1, 9);
  });

  test('rate mode reports a capacity estimate near the true one; share mode reports 0', () => {
    const world = { capacity: () => [100, 300], background: () => [0, 0], total: 200 };
    const rate = new WeightController();
    let shares = [0.5, 0.5];
    let last = new Map<string, { capacity: number; share: number }>();
    for (let t = 0; t < 30; t++) {
      last = rate.update(
        shares.map((s, i) => ({
          id: `e${i}`,
          utilization: (s * world.total) / world.capacity()[i]!,
          requestRate: s * world.total,
          available: true,
        })),
      );
      shares = shares.map((_, i) => last.get(`e${i}`)!.share);
    }
    expect(last.get('e0')!.capacity).toBeGreaterThan(80);
    expect(last.get('e0')!.capacity).toBeLessThan(125);
    expect(last.get('e1')!.capacity).toBeGreaterThan(240);
    expect(last.get('e1')!.capacity).toBeLessThan(375);
    const share = simulate(new WeightController({}, () => new LastValueForecaster()), world, 5, {
      reportRate: false,
    });
    expect(share.shares.at(-1)![1]!).toBeGreaterThan(share.shares.at(-1)![0]!);
  });
});

describe('weight controller, repeated measurements', () => {
  test('an update marked fresh: false leaves the estimates alone (the measurement was already learnt)', () => {
    const c = new WeightController();
    const obs = (u: number, fresh: boolean) => [
      { id: 'a', utilization: u, requestRate: 0, available: true, fresh },
      { id: 'b', utilization: 0.2, requestRate: 0, available: true, fresh },
    ];
    let r = c.update(obs(0.8, true));
    for (let i = 0; i < 10; i++) r = c.update(obs(0.8, true));
    const before = r.get('a')!;
    // Even a different value must not be learnt when the caller says it is not new.
    const after = c.update(obs(0.3, false)).get('a')!;
    expect(after.costPerUnit).toBe(before.costPerUnit);
    expect(after.background).toBe(before.background);
    const learnt = c.update(obs(0.3, true)).get('a')!;
    expect(learnt.costPerUnit).not.toBe(before.costPerUnit);
  });
});

describe('weight controller, request rates', () => {
  test('an endpoint that served nothing (rate 0) keeps its estimates; the service stays in rate mode', () => {
    const c = new WeightController();
    const obs = (rateB: number) => [
      { id: 'a', utilization: 0.5, requestRate: 100, available: true },
      { id: 'b', utilization: 0.25, requestRate: rateB, available: true },
    ];
    let r = c.update(obs(100));
    for (let i = 0; i < 10; i++) r = c.update(obs(100));
    const before = r.get('b')!;
    expect(before.capacity).toBeGreaterThan(0);
    const after = c.update(obs(0)).get('b')!;
    expect(after.costPerUnit).toBe(before.costPerUnit);
    expect(after.capacity).toBe(before.capacity); // still rate mode: capacity known
    expect(c.update(obs(100)).get('a')!.capacity).toBeGreaterThan(0);
  });
});
