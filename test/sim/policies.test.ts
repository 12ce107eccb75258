import { describe, expect, it } from 'vitest';
import { AugurScorerWeights } from '../../src/sim/augur-scorer.js';
import {
  drawWeighted,
  EdfSchedule,
  EnvoyLeastRequestPicker,
  RoundRobinPicker,
  SmoothWrrPicker,
} from '../../src/sim/policies/pickers.js';
import { AugurGrpcPolicy } from '../../src/sim/policies/augur-grpc.js';
import { WeightedPolicy } from '../../src/sim/policies/weighted.js';
import { OmniscientSedPolicy } from '../../src/sim/policies/omniscient.js';
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
    workers: 4,
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
  own = util.map((u) => u / 2),
): IntervalReport {
  return {
    step,
    qps: Float64Array.from(qps),
    utilisation: Float64Array.from(util),
    ownCpu: Float64Array.from(own),
    completed: Float64Array.from(qps),
    latencySum: Float64Array.from(qps.map((q) => q * 0.01)),
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

  it("Envoy's least request with equal weights: the fewer in flight of two draws with replacement", () => {
    const view = fakeView(3);
    view.inflight[0] = 5;
    view.inflight[1] = 2;
    const picker = new EnvoyLeastRequestPicker(view, new Rng(2));
    const ones = Float64Array.from([1, 1, 1]);
    const counts = [0, 0, 0];
    const n = 9000;
    for (let i = 0; i < n; i++) counts[picker.pick(0, ones)]!++;
    // 0 wins only when drawn twice (1/9); 2 whenever drawn (5/9). Bounds: ±4 standard deviations.
    const within = (k: number, p: number) =>
      expect(Math.abs(k / n - p)).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / n));
    within(counts[0]!, 1 / 9);
    within(counts[2]!, 5 / 9);
  });

  it("Envoy's least request with unequal weights: an EDF schedule that follows the weights when idle", () => {
    const picker = new EnvoyLeastRequestPicker(fakeView(3), new Rng(3));
    const w = Float64Array.from([1, 2, 5]);
    const counts = [0, 0, 0];
    for (let i = 0; i < 800; i++) counts[picker.pick(0, w)]!++;
    expect(counts).toEqual([100, 200, 500]);
  });

  it('... and a host with requests in flight is put back later: weight / (active + 1)', () => {
    const view = fakeView(2);
    view.inflight[0] = 3; // weight 2 / (3 + 1) = 0.5 each time it is picked, against 1 for host 1
    const picker = new EnvoyLeastRequestPicker(view, new Rng(4));
    const w = Float64Array.from([2, 1]);
    const counts = [0, 0];
    for (let i = 0; i < 3000; i++) counts[picker.pick(0, w)]!++;
    expect(counts[0]! / 3000).toBeCloseTo(1 / 3, 2);
  });

  it('the EDF schedule: earliest deadline first, first inserted on a tie, re-added at clock + 1/weight', () => {
    const weights = [1, 1, 4];
    const edf = new EdfSchedule(3, (h) => weights[h]!);
    weights.forEach((x, h) => edf.add(h, x));
    // deadlines 1, 1, 0.25: host 2 at 0.25, 0.5, 0.75, 1 (after 0 and 1, inserted first), ...
    const picks = Array.from({ length: 7 }, () => edf.pickAndAdd());
    expect(picks).toEqual([2, 2, 2, 0, 1, 2, 2]);
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

  it('a weighted policy keeps its weights (and Envoy its schedule) when an update changes nothing', async () => {
    let next = Float64Array.from([1, 2]);
    const policy = new WeightedPolicy(
      'w',
      { init: () => undefined, update: () => next },
      (v, r) => new EnvoyLeastRequestPicker(v, r),
    );
    policy.init(fakeView(2), new Rng(5));
    await policy.onInterval(1, undefined);
    const before = policy.shares();
    next = Float64Array.from([1, 2]);
    await policy.onInterval(2, undefined);
    expect(policy.shares()).toEqual(before);
    next = Float64Array.from([1, 3]);
    await policy.onInterval(3, undefined);
    expect(policy.shares()[1]).toBeCloseTo(0.75, 12);
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

  it("augur's weights: the agents' samples through the LPS's validation, store and ForecastScorer", async () => {
    const augur = new AugurScorerWeights();
    augur.init(fakeView(3));
    expect(Array.from(await augur.update(0, undefined))).toEqual([1, 1, 1]);
    // Backgrounds 0.1, 0.5, 0.2 (host − own); 4 cores each, 0.01 CPU-second per request.
    let w: Float64Array = new Float64Array(0);
    for (let k = 0; k < 30; k++) {
      const own = [0.25, 0.25, 0.25];
      w = await augur.update(k + 1, report(k, [100, 100, 100], [0.35, 0.75, 0.45], undefined, own));
    }
    const free = [0.9, 0.5, 0.8];
    free.forEach((f, e) => expect(w[e]).toBeCloseTo(f / 2.2, 2));
    expect(w.reduce((a, x) => a + x, 0)).toBeCloseTo(1, 12);
  });

  it('a report an agent could not send is refused by the LPS validation, loudly', async () => {
    const augur = new AugurScorerWeights();
    augur.init(fakeView(2));
    await expect(
      augur.update(1, report(0, [10, 10], [0.2, 0.2], undefined, [0.2, 0.9])),
    ).rejects.toThrow(/process_cpu_usage 0.9 exceeds cpu_usage 0.2/);
  });

  it('without own CPU the same path falls back to A58 (no foresight)', async () => {
    // No shrinkage toward the service's cost, so the ratio is exact.
    const augur = new AugurScorerWeights({
      signals: 'no-own-cpu',
      forecast: { weight: { priorRequests: 0 } },
    });
    augur.init(fakeView(2));
    let w: Float64Array = new Float64Array(0);
    for (let k = 0; k < 20; k++) w = await augur.update(k + 1, report(k, [100, 50], [0.5, 0.5]));
    // qps / utilisation: 200 against 100
    expect(w[0]! / w[1]!).toBeCloseTo(2, 6);
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

describe('omniscient-sed (the perfect-information reference)', () => {
  it("waits on a fast endpoint's queue rather than start on a slow idle one, until the queue costs more", () => {
    // 4 workers each; endpoint 0 at full speed, endpoint 1 at 0.4 (a request takes 2.5× as long).
    const view = fakeView(2);
    const policy = new OmniscientSedPolicy('omniscient-sed', [
      Float64Array.of(1, 0.2),
      Float64Array.of(0.4, 1),
    ]);
    policy.init(view, new Rng(1));
    view.server = [3, 0]; // a worker free on the fast one: 1 against 2.5
    expect(policy.pick(0)).toBe(0);
    view.server = [8, 0]; // wait for 5 of 4 workers' requests: (1 + 5/4) = 2.25 < 2.5
    expect(policy.pick(0)).toBe(0);
    view.server = [10, 0]; // (1 + 7/4) = 2.75 > 2.5
    expect(policy.pick(0)).toBe(1);
  });

  it('reads the speed of the interval it is in, from every proxy alike', () => {
    const view = fakeView(2, 3);
    let now = 0;
    view.now = () => now;
    const policy = new OmniscientSedPolicy('omniscient-sed', [
      Float64Array.of(1, 0.2),
      Float64Array.of(0.4, 1),
    ]);
    policy.init(view, new Rng(1));
    expect([0, 1, 2].map((p) => policy.pick(p))).toEqual([0, 0, 0]);
    now = 1.5; // the second interval: endpoint 0 at 0.2, endpoint 1 at full speed
    expect([0, 1, 2].map((p) => policy.pick(p))).toEqual([1, 1, 1]);
    now = 99; // past the series: its last step holds
    expect(policy.pick(0)).toBe(1);
  });
});

describe('augur-grpc (the shipped augur_expected_delay code, src/grpc-lb)', () => {
  it('follows the published weights while latencies are alike, each client counting its own calls', async () => {
    const view = fakeView(2, 2);
    const policy = new AugurGrpcPolicy(
      'augur-grpc',
      new TrueCapacityWeights([Float64Array.from([3]), Float64Array.from([1])], 0),
    );
    policy.init(view, new Rng(3));
    await policy.onInterval(1, undefined);
    expect([...policy.shares()]).toEqual([0.75, 0.25]);
    // Calls picked and never answered: client 0's queues grow as 3 : 1; client 1 has none yet.
    const counts = [0, 0];
    for (let i = 0; i < 40; i++) counts[policy.pick(0)]!++;
    expect(counts).toEqual([30, 10]);
    expect(policy.pick(1)).toBe(0);
  });

  it('moves calls off an endpoint whose answers come back slowly', async () => {
    const view = fakeView(2);
    const policy = new AugurGrpcPolicy(
      'augur-grpc',
      new TrueCapacityWeights([Float64Array.from([1]), Float64Array.from([1])], 0),
    );
    policy.init(view, new Rng(4));
    await policy.onInterval(1, undefined);
    const counts = [0, 0];
    // Four calls in flight; the oldest is answered as each new one is picked.
    const outstanding: number[] = [];
    for (let i = 0; i < 400; i++) {
      const e = policy.pick(0);
      counts[e]!++;
      outstanding.push(e);
      if (outstanding.length > 4) {
        const done = outstanding.shift()!;
        policy.onResponse(0, done, done === 0 ? 0.1 : 0.004, false);
      }
    }
    // The rule trades √(25×) the latency against the queue: endpoint 0 keeps a call now and then.
    expect(counts[1]).toBeGreaterThan(300);
    expect(counts[0]).toBeGreaterThan(0);
  });
});
