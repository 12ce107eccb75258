import { afterEach, describe, expect, it } from 'vitest';
import { SwapDetector, type Swap, type SwapConfig } from '../../src/lps/swaps.js';
import { EndpointState } from '../../src/lps/types.js';
import { DrivenLists, addEndpoint, addSample, makeStore } from './support.js';

const T0 = 1_700_000_000_000;
const detectors: SwapDetector[] = [];
afterEach(() => {
  for (const d of detectors.splice(0)) d.stop();
});

function setup(config: Partial<SwapConfig> = {}, ids = ['a', 'b', 'c']) {
  const lists = new DrivenLists();
  const store = makeStore(1);
  for (const id of ids) addEndpoint(store, id, T0);
  let now = T0;
  const detector = new SwapDetector({ lists, store, config, now: () => now, checkEveryMs: 0 });
  detectors.push(detector);
  const swaps: Swap[] = [];
  const resolved: Swap[] = [];
  detector.on('swap', (s) => swaps.push({ ...s }));
  detector.on('swap-resolved', (s) => resolved.push({ ...s }));
  return {
    lists,
    store,
    detector,
    swaps,
    resolved,
    setNow: (ms: number) => (now = ms),
  };
}

describe('SwapDetector', () => {
  it('records a cut with its weights, score and prediction, then overload it missed', () => {
    const t = setup();
    for (const id of ['a', 'b', 'c']) addSample(t.store, id, T0, 0.5);
    t.lists.publish('svc', T0, { a: 1 / 3, b: 1 / 3, c: 1 / 3 });
    expect(t.swaps).toHaveLength(0);

    t.lists.publish('svc', T0 + 1000, { a: 0.45, b: 0.45, c: 0.1 });
    expect(t.swaps).toHaveLength(1);
    const swap = t.swaps[0]!;
    expect(swap).toMatchObject({
      id: 1,
      service: 'svc',
      endpointId: 'c',
      atMs: T0 + 1000,
      rule: 'drop',
      weightAfter: 0.1,
      score: 0.2,
      forecaster: 'holt',
      outcome: 'pending',
      overloadedAtCut: false,
      utilizationAtCut: 0.5,
    });
    expect(swap.weightBefore).toBeCloseTo(1 / 3);
    expect(swap.fairShare).toBeCloseTo(1 / 3);
    expect(swap.predictedUtilization).toBeCloseTo(0.8);

    // Utilisation climbs past the limit 2.5 s after the cut.
    addSample(t.store, 'c', T0 + 2000, 0.8);
    t.detector.check(T0 + 2000);
    expect(t.resolved).toHaveLength(0);
    addSample(t.store, 'c', T0 + 3500, 0.95);
    t.detector.check(T0 + 3500);
    expect(t.resolved).toHaveLength(1);
    // The forecast at the cut (0.8) was under the limit (0.9): overload it did not foresee.
    expect(t.resolved[0]).toMatchObject({
      id: 1,
      outcome: 'missed',
      overloadCause: 'utilization',
      resolvedAtMs: T0 + 3500,
      forecastOverload: false,
      verdict:
        'missed: overloaded (CPU) 2.5 s after the cut; the forecast at the cut (80 %) was under 90 %',
    });
    expect(t.resolved[0]!.overloadAfterSeconds).toBeCloseTo(2.5);
    expect(t.detector.history()[0]!.outcome).toBe('missed');
    expect(t.detector.pending()).toHaveLength(0);
  });

  it('marks a cut with no overload in the window, and none foreseen, a false swap', () => {
    const t = setup({ watchIntervals: 5 });
    t.lists.publish('svc', T0, { a: 1 / 3, b: 1 / 3, c: 1 / 3 });
    t.lists.publish('svc', T0 + 1000, { a: 0.4, b: 0.4, c: 0.2 });
    expect(t.swaps).toHaveLength(1);
    for (let i = 1; i <= 5; i++) addSample(t.store, 'c', T0 + 1000 + i * 1000, 0.6);
    t.detector.check(T0 + 5999);
    expect(t.resolved).toHaveLength(0);
    // An overload after the window (5 intervals of 1 s) does not count.
    addSample(t.store, 'c', T0 + 6500, 0.99);
    t.detector.check(T0 + 6500);
    expect(t.resolved).toHaveLength(1);
    expect(t.resolved[0]).toMatchObject({
      outcome: 'false',
      verdict:
        'false: no overload followed (peak 60 %), and none would have without the cut (at most 60 %, under 90 %)',
    });
    // The sample ring keeps older utilisations as 32-bit floats.
    expect(t.resolved[0]!.measuredPeak).toBeCloseTo(0.6, 6);
    expect(t.resolved[0]!.overloadAfterSeconds).toBeUndefined();
  });

  it('counts a response time above the SLO as overload', () => {
    const t = setup({ responseTimeSlo: 0.25 });
    t.lists.publish('svc', T0, { a: 0.5, b: 0.5 });
    t.lists.publish('svc', T0 + 1000, { a: 0.8, b: 0.2 });
    addSample(t.store, 'b', T0 + 1500, 0.3, 0.4);
    t.detector.check(T0 + 1500);
    expect(t.resolved[0]).toMatchObject({
      endpointId: 'b',
      outcome: 'missed',
      overloadCause: 'response-time',
    });
  });

  it('does not count a change of the fair share (an endpoint joining) as a cut', () => {
    const t = setup();
    t.lists.publish('svc', T0, { a: 0.5, b: 0.5 });
    t.lists.publish('svc', T0 + 1000, { a: 1 / 3, b: 1 / 3, c: 1 / 3 });
    t.lists.publish('svc', T0 + 2000, { a: 0.25, b: 0.25, c: 0.25, d: 0.25 });
    expect(t.swaps).toHaveLength(0);
  });

  it('does not count newcomers getting their first weight as a cut of the others', () => {
    const t = setup();
    // a reported first: it has all the traffic while b and c have no samples yet.
    t.lists.publish('svc', T0, { a: 1, b: 0, c: 0 });
    t.lists.publish('svc', T0 + 1000, { a: 0.34, b: 0.33, c: 0.33 });
    expect(t.swaps).toHaveLength(0);
    // A cut to 0 of an endpoint that had a weight is still a cut.
    t.lists.publish('svc', T0 + 2000, { a: 0.5, b: 0.5, c: 0 });
    expect(t.swaps.map((s) => [s.endpointId, s.weightAfter])).toEqual([['c', 0]]);
  });

  it('catches a slow cut when the share crosses below the fair-share fraction', () => {
    const t = setup({ dropFraction: 0.3, belowFairShare: 0.5 });
    t.lists.publish('svc', T0, { a: 1 / 3, b: 1 / 3, c: 1 / 3 });
    // c: 1/3 → 0.25 → 0.19 → 0.15: each step < 30 % of itself; the last crosses 1/6.
    t.lists.publish('svc', T0 + 1000, { a: 0.375, b: 0.375, c: 0.25 });
    t.lists.publish('svc', T0 + 2000, { a: 0.405, b: 0.405, c: 0.19 });
    expect(t.swaps).toHaveLength(0);
    t.lists.publish('svc', T0 + 3000, { a: 0.425, b: 0.425, c: 0.15 });
    expect(t.swaps).toHaveLength(1);
    expect(t.swaps[0]).toMatchObject({ endpointId: 'c', rule: 'below-fair-share' });
    expect(t.swaps[0]!.weightBefore).toBeCloseTo(0.19);
  });

  it('ignores endpoints that are not active and already starved ones', () => {
    const t = setup({ minShareBefore: 0.2 });
    t.lists.publish('svc', T0, { a: 0.48, b: 0.48, c: 0.04 });
    // c is starved (0.12 of the fair share) and falls further; b goes stale (weight 0).
    t.lists.publish(
      'svc',
      T0 + 1000,
      { a: 0.99, b: 0, c: 0.01 },
      { b: EndpointState.ENDPOINT_STATE_STALE },
    );
    expect(t.swaps).toHaveLength(0);
  });

  it('treats further cuts of a pending swap as the same decision', () => {
    const t = setup();
    t.lists.publish('svc', T0, { a: 1 / 3, b: 1 / 3, c: 1 / 3 });
    t.lists.publish('svc', T0 + 1000, { a: 0.4, b: 0.4, c: 0.2 });
    t.lists.publish('svc', T0 + 2000, { a: 0.45, b: 0.45, c: 0.1 });
    t.lists.publish('svc', T0 + 3000, { a: 0.47, b: 0.47, c: 0.06 });
    expect(t.swaps).toHaveLength(1);
    expect(t.detector.history()[0]!.lowestWeight).toBeCloseTo(0.06);
    expect(t.detector.history()[0]!.weightAfter).toBeCloseTo(0.2);
  });

  it('flags a cut of an endpoint that was already overloaded as reactive, and late', () => {
    const t = setup();
    addSample(t.store, 'c', T0 + 900, 0.97);
    t.lists.publish('svc', T0, { a: 1 / 3, b: 1 / 3, c: 1 / 3 });
    t.lists.publish(
      'svc',
      T0 + 1000,
      { a: 0.45, b: 0.45, c: 0.1 },
      {},
      {
        c: { predictedUtilization: 0.99 },
      },
    );
    expect(t.swaps[0]).toMatchObject({ overloadedAtCut: true, utilizationAtCut: 0.97 });
    expect(t.resolved[0]).toMatchObject({
      outcome: 'late',
      overloadAfterSeconds: 0,
      verdict:
        'late: already overloaded when cut, though the forecast at the cut (99 %) foresaw it',
    });
  });

  it('calls a cut that the forecast said would meet overload, and none came, prevented', () => {
    const t = setup({ watchIntervals: 3 });
    t.lists.publish('svc', T0, { a: 1 / 3, b: 1 / 3, c: 1 / 3 });
    t.lists.publish(
      'svc',
      T0 + 1000,
      { a: 0.45, b: 0.45, c: 0.1 },
      {},
      {
        c: { predictedUtilization: 0.95 },
      },
    );
    for (let i = 1; i <= 3; i++) addSample(t.store, 'c', T0 + 1000 + i * 1000, 0.7);
    t.detector.check(T0 + 4000);
    expect(t.resolved[0]).toMatchObject({
      outcome: 'prevented',
      forecastOverload: true,
      verdict:
        'prevented: without the cut it would have reached 95 % (the forecast at the cut); with it, it peaked at 70 %, under 90 %',
    });
  });

  it('counts the traffic a cut moved away: the load it would have carried uncut', () => {
    // Forecast under the limit (0.7), but c served 100 req/s at the cut and 20 after, at a
    // cost of 1/200 of its CPU each: uncut, 0.55 + 80/200 = 0.95.
    const t = setup({ watchIntervals: 3 });
    addSample(t.store, 'c', T0 + 900, 0.6, 0.01, 100);
    t.lists.publish('svc', T0, { a: 1 / 3, b: 1 / 3, c: 1 / 3 });
    t.lists.publish(
      'svc',
      T0 + 1000,
      { a: 0.45, b: 0.45, c: 0.1 },
      {},
      {
        c: { predictedUtilization: 0.7, estimatedCapacity: 200 },
      },
    );
    for (let i = 1; i <= 3; i++) addSample(t.store, 'c', T0 + 1000 + i * 1000, 0.55, 0.01, 20);
    t.detector.check(T0 + 4000);
    expect(t.resolved[0]).toMatchObject({ outcome: 'prevented', requestRateAtCut: 100 });
    expect(t.resolved[0]!.withoutCutPeak).toBeCloseTo(0.95);
    expect(t.resolved[0]!.verdict).toMatch(/its measured load plus the traffic the cut moved/);
  });

  it('calls overload that came after a cut the forecast had called for late', () => {
    const t = setup();
    t.lists.publish('svc', T0, { a: 0.5, b: 0.5 });
    t.lists.publish(
      'svc',
      T0 + 1000,
      { a: 0.8, b: 0.2 },
      {},
      { b: { predictedUtilization: 0.92 } },
    );
    addSample(t.store, 'b', T0 + 3000, 0.96);
    t.detector.check(T0 + 3000);
    expect(t.resolved[0]).toMatchObject({
      outcome: 'late',
      verdict:
        'late: overloaded (CPU) 2.0 s after the cut, though the forecast at the cut (92 %) foresaw it',
    });
  });

  it('resolves a swap whose endpoint left as unknown', () => {
    const t = setup({}, ['a', 'b']);
    t.lists.publish('svc', T0, { a: 0.5, b: 0.5 });
    t.lists.publish('svc', T0 + 1000, { a: 0.8, b: 0.2 });
    t.store.disconnect(t.store.get('b')!, false);
    // Forgotten after `forgetAfter` (default 3600 s) of silence.
    t.store.forgetSilent(T0 + 3_700_000);
    t.detector.check(T0 + 1500);
    expect(t.resolved[0]).toMatchObject({ endpointId: 'b', outcome: 'unknown' });
  });

  it('keeps a bounded history, newest last, with increasing ids', () => {
    const t = setup({ history: 3, watchIntervals: 1 });
    let at = T0;
    t.lists.publish('svc', at, { a: 0.5, b: 0.5 });
    for (let i = 0; i < 5; i++) {
      t.lists.publish('svc', (at += 1000), { a: 0.8, b: 0.2 });
      t.detector.check((at += 1000));
      // Back up, without cutting a by more than 30 %.
      t.lists.publish('svc', at, { a: 0.6, b: 0.4 });
    }
    const h = t.detector.history();
    expect(t.swaps).toHaveLength(5);
    expect(h.map((s) => s.id)).toEqual([3, 4, 5]);
    expect(h.every((s) => s.outcome === 'false')).toBe(true);
  });

  it('checks pending swaps on its own timer, without new lists', async () => {
    const lists = new DrivenLists();
    const store = makeStore(0.1);
    addEndpoint(store, 'a', Date.now());
    addEndpoint(store, 'b', Date.now());
    const detector = new SwapDetector({
      lists,
      store,
      config: { watchIntervals: 2 },
      checkEveryMs: 20,
    });
    detectors.push(detector);
    lists.publish('svc', Date.now(), { a: 0.5, b: 0.5 });
    const resolved = new Promise<Swap>((r) => detector.once('swap-resolved', r));
    lists.publish('svc', Date.now(), { a: 0.8, b: 0.2 });
    const swap = await resolved;
    expect(swap).toMatchObject({ endpointId: 'b', outcome: 'false' });
  });
});
