import { describe, expect, it } from 'vitest';
import { WeightController } from '../../src/lps/score/weight.js';
import { AugurScorerWeights } from '../../src/sim/augur-scorer.js';
import { AugurWeights } from '../../src/sim/augur-weights.js';
import {
  drawWeighted,
  P2cPicker,
  RoundRobinPicker,
  SmoothWrrPicker,
  WeightedP2cPicker,
} from '../../src/sim/policies/pickers.js';
import { hotColdIndex, PrequalPolicy } from '../../src/sim/policies/prequal.js';
import { A58Weights, TrueCapacityWeights } from '../../src/sim/policies/weights.js';
import { Rng } from '../../src/sim/rng.js';
import type { FleetView, IntervalReport } from '../../src/sim/types.js';

/** A fleet whose in-flight counts and latencies the test sets by hand. */
function fakeView(
  n: number,
  proxies = 1,
): FleetView & { inflight: number[]; server: number[]; latency: number[] } {
  const v = {
    endpoints: n,
    proxies,
    interval: 1,
    serviceTime: 0.01,
    inflight: new Array<number>(n).fill(0),
    server: new Array<number>(n).fill(0),
    latency: new Array<number>(n).fill(0.01),
    now: () => 0,
    proxyInflight: (_p: number, e: number) => v.inflight[e]!,
    serverInflight: (e: number) => v.server[e]!,
    latencyEstimate: (e: number) => v.latency[e]!,
  };
  return v;
}

function report(
  step: number,
  qps: number[],
  util: number[],
  errors = qps.map(() => 0),
): IntervalReport {
  return {
    step,
    qps: Float64Array.from(qps),
    utilisation: Float64Array.from(util),
    errors: Float64Array.from(errors),
    latency: Float64Array.from(qps.map(() => 0.01)),
  };
}

describe('pickers', () => {
  it('round robin cycles through every endpoint in order', () => {
    const picker = new RoundRobinPicker(fakeView(4), new Rng(1));
    const picks = Array.from({ length: 12 }, () => picker.pick(0));
    for (let i = 1; i < picks.length; i++) expect(picks[i]).toBe((picks[i - 1]! + 1) % 4);
  });

  it('P2C picks the less loaded of two distinct candidates', () => {
    const view = fakeView(3);
    view.inflight[0] = 5;
    view.inflight[1] = 2;
    const picker = new P2cPicker(view, new Rng(2));
    const counts = [0, 0, 0];
    for (let i = 0; i < 3000; i++) counts[picker.pick(0)]!++;
    // 0 never wins (it is always paired with a less loaded one); 2 wins whenever drawn (2/3 of picks)
    expect(counts[0]).toBe(0);
    expect(counts[2]! / 3000).toBeGreaterThan(0.62);
    expect(counts[2]! / 3000).toBeLessThan(0.71);
  });

  it('weighted round robin follows the weights exactly over a cycle, spread out', () => {
    const picker = new SmoothWrrPicker(fakeView(4), new Rng(3));
    const w = Float64Array.from([1, 2, 3, 4]);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 1000; i++) counts[picker.pick(0, w)]!++;
    expect(counts.map((c) => Math.round(c / 100))).toEqual([1, 2, 3, 4]);
    for (let e = 0; e < 4; e++) expect(Math.abs(counts[e]! - (e + 1) * 100)).toBeLessThanOrEqual(1);
  });

  it('weighted random draws in proportion to the weights and never a zero weight', () => {
    const rng = new Rng(4);
    const w = Float64Array.from([0, 1, 3]);
    const counts = [0, 0, 0];
    for (let i = 0; i < 40000; i++) counts[drawWeighted(rng, w)]!++;
    expect(counts[0]).toBe(0);
    expect(counts[2]! / counts[1]!).toBeGreaterThan(2.8);
    expect(counts[2]! / counts[1]!).toBeLessThan(3.2);
  });

  it('weighted P2C compares in-flight per unit of weight', () => {
    const view = fakeView(2);
    view.inflight[0] = 3; // (3+1)/4 = 1 per unit of weight
    view.inflight[1] = 1; // (1+1)/1 = 2 per unit of weight: the more loaded for its weight
    const picker = new WeightedP2cPicker(view, new Rng(5));
    const w = Float64Array.from([4, 1]);
    let toOne = 0;
    for (let i = 0; i < 5000; i++) if (picker.pick(0, w) === 1) toOne++;
    // endpoint 1 wins only when drawn twice: (1/5)^2 = 4 %
    expect(toOne / 5000).toBeGreaterThan(0.025);
    expect(toOne / 5000).toBeLessThan(0.055);
  });
});

describe('weight sources', () => {
  it('A58: qps / (utilisation + errors/qps × penalty), after the blackout period', () => {
    const a58 = new A58Weights({ blackoutPeriod: 2 });
    a58.init(fakeView(3));
    expect(Array.from(a58.update(0, undefined))).toEqual([1, 1, 1]);
    const r = (k: number) => report(k, [100, 50, 10], [0.5, 0.5, 0.2], [0, 10, 0]);
    // step 0 and 1: still in blackout, equal weights
    expect(Array.from(a58.update(1, r(0)))).toEqual([1, 1, 1]);
    expect(Array.from(a58.update(2, r(1)))).toEqual([1, 1, 1]);
    const w = a58.update(3, r(2));
    expect(w[0]).toBeCloseTo(100 / 0.5);
    expect(w[1]).toBeCloseTo(50 / (0.5 + 10 / 50));
    expect(w[2]).toBeCloseTo(10 / 0.2);
  });

  it('A58: an endpoint without traffic gets the mean of the usable weights', () => {
    const a58 = new A58Weights({ blackoutPeriod: 0 });
    a58.init(fakeView(3));
    const w = a58.update(1, report(0, [100, 0, 50], [0.5, 0.1, 0.5]));
    expect(w[1]).toBeCloseTo((200 + 100) / 2);
  });

  it('perfect reactive sees the capacity of the interval that ended; the oracle that of the next', () => {
    const speed = [Float64Array.from([1, 0.5, 0.2, 0.9]), Float64Array.from([0.3, 0.3, 0.3, 0.3])];
    const view = fakeView(2);
    const perfect = new TrueCapacityWeights(speed, 0);
    const oracle = new TrueCapacityWeights(speed, 1);
    perfect.init(view);
    oracle.init(view);
    // at the start of step 2, perfect knows step 1 (0.5), the oracle step 2 (0.2)
    expect(perfect.update(2)[0]).toBeCloseTo(0.5 / 0.01);
    expect(oracle.update(2)[0]).toBeCloseTo(0.2 / 0.01);
    expect(oracle.update(3)[1]).toBeCloseTo(0.3 / 0.01);
  });

  it("augur's weights are the project's WeightController shares, fed the agents' reports", () => {
    const augur = new AugurWeights();
    augur.init(fakeView(3));
    const controller = new WeightController();
    const rng = new Rng(9);
    for (let k = 0; k < 40; k++) {
      const qps = [100 + 20 * rng.next(), 80 + 20 * rng.next(), 60 * rng.next() + 1];
      const util = [0.3 + 0.1 * rng.next(), 0.6, 0.2 + 0.5 * rng.next()];
      const w = augur.update(k + 1, report(k, qps, util));
      const expected = controller.update(
        qps.map((q, e) => ({
          id: `ep-${e}`,
          utilization: util[e]!,
          requestRate: q,
          available: true,
        })),
      );
      for (let e = 0; e < 3; e++) expect(w[e]).toBeCloseTo(expected.get(`ep-${e}`)!.share, 12);
    }
  });
  it("the LPS's ForecastScorer gives the same weights, and a Load Score that falls with utilisation", async () => {
    const weights = new AugurScorerWeights('weight');
    const scores = new AugurScorerWeights('score');
    weights.init(fakeView(3));
    scores.init(fakeView(3));
    const controller = new WeightController();
    const rng = new Rng(10);
    let last: Float64Array = new Float64Array(3);
    for (let k = 0; k < 30; k++) {
      const qps = [100 + 20 * rng.next(), 90, 80];
      const util = [0.3, 0.5, 0.9];
      const w = await weights.update(k + 1, report(k, qps, util));
      const expected = controller.update(
        qps.map((q, e) => ({
          id: `ep-${e}`,
          utilization: util[e]!,
          requestRate: q,
          available: true,
        })),
      );
      for (let e = 0; e < 3; e++) expect(w[e]).toBeCloseTo(expected.get(`ep-${e}`)!.share, 12);
      last = await scores.update(k + 1, report(k, qps, util));
    }
    expect(last[0]).toBeGreaterThan(last[1]!);
    expect(last[1]).toBeGreaterThan(last[2]!);
  });
});

describe('prequal', () => {
  it('hot-cold rule: the cold probe with the lowest latency; if all are hot, the lowest RIF', () => {
    const pool = [
      { rif: 9, latency: 0.001 }, // hot: fastest but too many in flight
      { rif: 2, latency: 0.05 },
      { rif: 3, latency: 0.02 },
    ];
    expect(hotColdIndex(pool, 5)).toBe(2);
    expect(hotColdIndex(pool, 1)).toBe(1);
  });

  it('routes away from an endpoint with many requests in flight', () => {
    const view = fakeView(10);
    view.server = [50, 1, 1, 1, 1, 1, 1, 1, 1, 1];
    view.latency[0] = 0.001; // the loaded one even claims to be fast: it is hot, so latency does not count
    const policy = new PrequalPolicy();
    policy.init(view, new Rng(6));
    const counts = new Array<number>(10).fill(0);
    for (let i = 0; i < 2000; i++) counts[policy.pick(0)]!++;
    expect(counts[0]! / 2000).toBeLessThan(0.02);
    expect(Math.min(...counts.slice(1))).toBeGreaterThan(100);
  });
});
