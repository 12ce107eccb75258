import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Registry } from 'prom-client';
import { createRegistry } from '../../src/common/http-host.js';
import { ProbeHealth } from '../../src/gen/augur/v1/common.js';
import type { ScoreParts } from '../../src/gen/augur/v1/load_prediction.js';
import { hostNamesConfigSchema, lpsConfigSchema } from '../../src/lps/config.js';
import { HostNameResolver } from '../../src/lps/host-names.js';
import { LpsMetrics } from '../../src/lps/metrics.js';
import { Prioritizer } from '../../src/lps/prioritizer.js';
import { EndpointStore } from '../../src/lps/store.js';
import { EndpointState, type Assessment, type Scorer } from '../../src/lps/types.js';
import { addEndpoint, makeStore } from '../dashboard/support.js';
import { makeSample } from '../support/raw-agent.js';

const parts = (predictedUtilization: number): ScoreParts => ({
  predictedUtilization,
  predictedResponseTime: 0.01,
  stalenessSeconds: 0,
  forecaster: 'scripted',
  utilizationFactor: 0,
  latencyFactor: 1,
  horizon: undefined,
  predictedMemory: 1.4,
  predictedNetwork: -0.1,
  estimatedCapacity: 0,
});

/** A prioritizer over `store` and `scorer`, its metrics in `registry`, resolving no names. */
function prioritizerOver(
  store: EndpointStore,
  scorer: Scorer,
  registry: Registry = createRegistry(false),
): Prioritizer {
  const logger = pino({ level: 'silent' });
  return new Prioritizer(
    store,
    scorer,
    new LpsMetrics(registry),
    logger,
    new HostNameResolver({ ...hostNamesConfigSchema.parse({}), logger, onChange: () => {} }),
  );
}

/** Every endpoint at score 0 (all saturated), with forecasts past 1. */
const saturated: Scorer = {
  assess: (endpoints) =>
    new Map<string, Assessment>(
      endpoints.map((r) => [r.id, { score: 0, weight: 1, parts: parts(1.18) }]),
    ),
};

describe('the prioritized list', () => {
  it('puts every active endpoint before failing and stale ones, even at equal scores, and clips utilisations', async () => {
    const store = makeStore(1);
    const now = Date.now();
    // Ids sort the failing and stale ones first, so only the state can put them last.
    for (const id of ['a-failing', 'b-stale', 'z-active']) addEndpoint(store, id, now - 60_000);
    const sample = (id: string, atMs: number, health: ProbeHealth) => {
      const r = store.get(id)!;
      store.append(
        r,
        makeSample({ sequence: r.lastSequence + 1, health, timestamp: new Date(atMs) }),
        atMs,
      );
    };
    sample('a-failing', now, ProbeHealth.PROBE_HEALTH_FAILING);
    sample('b-stale', now - 60_000, ProbeHealth.PROBE_HEALTH_SERVING);
    sample('z-active', now, ProbeHealth.PROBE_HEALTH_SERVING);
    const prioritizer = prioritizerOver(store, saturated);
    await prioritizer.recompute();
    const list = prioritizer.get('svc')!;
    expect(list.endpoints.map((e) => [e.endpointId, e.state])).toEqual([
      ['z-active', EndpointState.ENDPOINT_STATE_ACTIVE],
      ['a-failing', EndpointState.ENDPOINT_STATE_FAILING],
      ['b-stale', EndpointState.ENDPOINT_STATE_STALE],
    ]);
    for (const e of list.endpoints)
      expect(e.parts).toMatchObject({
        predictedUtilization: 1,
        predictedMemory: 1,
        predictedNetwork: 0,
      });
    await prioritizer.stop();
  });

  it('publishes a new version only when the list changed, and what it published stays as it was when the scorer writes its assessments again', async () => {
    const store = makeStore(1);
    const now = Date.now();
    for (const id of ['a', 'b']) addEndpoint(store, id, now);
    // Like the ForecastScorer: one map and one assessment per endpoint, written again each tick.
    const assessments = new Map<string, Assessment>();
    let script = { a: [0.5, 2], b: [0.4, 1] };
    const inPlace: Scorer = {
      assess: (endpoints) => {
        for (const r of endpoints) {
          const [score, weight] = script[r.id as 'a' | 'b'];
          let a = assessments.get(r.id);
          if (!a) {
            a = { score: 0, weight: 0, parts: { ...parts(0.5), weightParts: undefined } };
            assessments.set(r.id, a);
          }
          a.score = score!;
          a.weight = weight!;
          a.parts.weightParts = a.parts.weightParts ?? {
            basis: 0,
            plannedBackground: 0,
            costPerRequest: 0,
            horizonIntervals: 0,
            target: 0,
          };
          a.parts.weightParts.target = weight!;
        }
        return assessments;
      },
    };
    const prioritizer = prioritizerOver(store, inPlace);
    const published: number[] = [];
    prioritizer.subscribe((l) => published.push(l.version));
    await prioritizer.recompute();
    const first = prioritizer.get('svc')!;
    expect(first.version).toBe(1);
    expect(first.endpoints.map((e) => [e.endpointId, e.weight])).toEqual([
      ['a', 2 / 3],
      ['b', 1 / 3],
    ]);
    // Below the precision of 1e-4 in score and share: the same list, no new version.
    script = { a: [0.50001, 2], b: [0.4, 1.00001] };
    await prioritizer.recompute();
    expect(published).toEqual([1]);
    // The order changes: a new version.
    script = { a: [0.3, 2], b: [0.4, 1] };
    await prioritizer.recompute();
    expect(prioritizer.get('svc')!.endpoints.map((e) => e.endpointId)).toEqual(['b', 'a']);
    // A share moves by more than 1e-4: a new version; then the same again: none.
    script = { a: [0.3, 3], b: [0.4, 1] };
    await prioritizer.recompute();
    await prioritizer.recompute();
    expect(published).toEqual([1, 2, 3]);
    // The first list is as it was published, though the scorer wrote its objects three times since.
    expect(
      first.endpoints.map((e) => [e.endpointId, e.score, e.parts!.weightParts!.target]),
    ).toEqual([
      ['a', 0.5, 2],
      ['b', 0.4, 1],
    ]);
    await prioritizer.stop();
  });
});

/** One more sample of `id`, received now. */
function report(store: EndpointStore, id: string): void {
  const r = store.get(id)!;
  store.append(r, makeSample({ sequence: r.lastSequence + 1 }), Date.now());
}

async function metricValue(registry: Registry, name: string, labels = ''): Promise<number> {
  const text = await registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

describe('ticks that follow the reports (lps.scoreOnReports)', () => {
  it('counts, once per round, the connected endpoints that report once per tick', () => {
    const store = new EndpointStore(lpsConfigSchema.parse({ scoreInterval: 1, ringSize: 64 }));
    const now = Date.now();
    for (const id of ['a', 'b', 'c', 'fast', 'slow', 'gone']) addEndpoint(store, id, now);
    store.setInterval(['fast'], 0.2);
    store.setInterval(['slow'], 5);
    store.disconnect(store.get('gone')!, false);
    let calls = 0;
    // a, b and c are in step (0.2 s and 5 s are not, a disconnected one is not expected).
    expect(store.markRound(0.6, () => calls++)).toBe(2);
    report(store, 'fast');
    report(store, 'slow');
    report(store, 'a');
    report(store, 'a');
    expect(calls).toBe(0);
    report(store, 'b');
    expect(calls).toBe(1);
    report(store, 'c');
    expect(calls).toBe(1);
    // A new round counts afresh.
    expect(store.markRound(1, () => calls++)).toBe(3);
    report(store, 'a');
    report(store, 'b');
    expect(calls).toBe(1);
    report(store, 'c');
    expect(calls).toBe(2);
    // Share 0: the clock only.
    expect(store.markRound(0, () => calls++)).toBe(0);
    for (const id of ['a', 'b', 'c']) report(store, id);
    expect(calls).toBe(2);
  });

  it('scores as soon as the samples are in, half an interval after the last tick at the soonest, and counts what started each tick', async () => {
    // A 3 s interval: the clock would tick at 3 s; the reports at 1.5 s (the soonest) and at once.
    const store = new EndpointStore(
      lpsConfigSchema.parse({ scoreInterval: 3, defaultInterval: 3, ringSize: 64 }),
    );
    for (const id of ['a', 'b', 'c']) addEndpoint(store, id, Date.now());
    const ticks: number[] = [];
    const recording: Scorer = {
      assess: (endpoints, _states, nowMs) => {
        ticks.push(nowMs);
        return saturated.assess(endpoints, _states, nowMs);
      },
    };
    const registry = createRegistry(false);
    const prioritizer = prioritizerOver(store, recording, registry);
    const until = async (n: number) => {
      for (let waited = 0; ticks.length < n; waited += 10) {
        if (waited > 10_000) throw new Error(`tick ${n} did not come within 10 s`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    try {
      prioritizer.start(3, 1);
      await prioritizer.recompute();
      const t0 = ticks[0]!;
      // Every endpoint reports right after the tick: the next waits for half an interval.
      for (const id of ['a', 'b', 'c']) report(store, id);
      await until(2);
      expect(ticks[1]! - t0).toBeGreaterThanOrEqual(1490);
      expect(ticks[1]! - t0).toBeLessThan(2700);
      // Past half an interval, the last report starts the tick at once.
      await new Promise((r) => setTimeout(r, 1700 - (Date.now() - ticks[1]!)));
      report(store, 'a');
      report(store, 'b');
      await new Promise((r) => setTimeout(r, 100));
      expect(ticks).toHaveLength(2);
      const sent = Date.now();
      report(store, 'c');
      await until(3);
      expect(ticks[2]! - sent).toBeLessThan(600);
      expect(ticks[2]! - ticks[1]!).toBeLessThan(2900);
      expect(
        await metricValue(registry, 'augur_lps_scoring_ticks_total', '{trigger="reports"}'),
      ).toBe(2);
      expect(
        await metricValue(registry, 'augur_lps_scoring_ticks_total', '{trigger="change"}'),
      ).toBe(1);
      // The newest samples were at most ~0.2 s old at that tick.
      expect(await metricValue(registry, 'augur_lps_sample_age_at_scoring_seconds')).toBeLessThan(
        0.7,
      );
      // Without reports, the clock.
      await until(4);
      expect(ticks[3]! - ticks[2]!).toBeGreaterThanOrEqual(2990);
      expect(
        await metricValue(registry, 'augur_lps_scoring_ticks_total', '{trigger="clock"}'),
      ).toBe(1);
    } finally {
      await prioritizer.stop();
    }
  }, 20_000);
});
