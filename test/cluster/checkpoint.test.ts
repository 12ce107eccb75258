import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { lpsConfigSchema } from '../../src/lps/config.js';
import { forecastConfigSchema } from '../../src/lps/forecast/config.js';
import { ForecastScorer } from '../../src/lps/forecast/scorer.js';
import { EndpointStore } from '../../src/lps/store.js';
import { EndpointState } from '../../src/lps/types.js';
import { makeSample } from '../support/raw-agent.js';

/*
 * Warm takeover: the forecasting scorer's checkpoint (learnt cost per request and the weight
 * controller's published weight) restored into another scorer that replayed the same history
 * gives the same state and the same weights; a damaged checkpoint is ignored.
 */
describe('ForecastScorer checkpoints', () => {
  const config = forecastConfigSchema.parse({ lstm: { enabled: false } });
  const logger = createLogger('test', 'silent');

  /** Two endpoints with `n` samples each; the second costs twice the CPU per request. */
  function history(n: number): EndpointStore {
    const store = new EndpointStore(lpsConfigSchema.parse({}));
    const now = Date.now();
    for (const [i, id] of ['a', 'b'].entries()) {
      const r = store.upsertFromHello(
        {
          endpointId: id,
          service: 's',
          address: '127.0.0.1',
          port: 1 + i,
          labels: {},
          agentVersion: 't',
          capacity: { cpuCores: 2, memoryBytes: 1 << 30, networkBytesPerSecond: 1e9 },
        },
        now,
      );
      for (let q = 1; q <= n; q++)
        store.accept(
          r,
          makeSample({
            endpointId: id,
            sequence: q,
            cpuUsage: 0.2 + 0.2 * i,
            processCpuUsage: 0.1 + 0.2 * i,
            requestsCompleted: 50 + (q % 7),
            sampleSpan: { seconds: 1, nanos: 0 },
            timestamp: new Date(now - (n - q) * 1000),
          }),
          now,
        );
    }
    return store;
  }
  const states = (store: EndpointStore) =>
    new Map(store.all().map((r) => [r.id, EndpointState.ENDPOINT_STATE_ACTIVE]));

  it('restores the learnt state into a scorer that replayed the history', async () => {
    const store = history(120);
    const old = new ForecastScorer({ config, logger });
    const before = await old.assess(store.all(), states(store), Date.now());
    const saved = JSON.parse(JSON.stringify(old.checkpoint(['a', 'b', 'unknown']))) as Record<
      string,
      unknown
    >;
    expect(Object.keys(saved).sort()).toEqual(['a', 'b']);

    // The new owner replayed only part of the history: its cost differs until restored.
    const fresh = new ForecastScorer({ config, logger });
    await fresh.assess(history(30).all(), states(store), Date.now());
    expect(fresh.checkpoint(['a', 'b'])).not.toEqual(saved);
    expect(fresh.restore(saved)).toBe(2);
    expect(fresh.checkpoint(['a', 'b'])).toEqual(saved);
    const after = await fresh.assess(history(30).all(), states(store), Date.now());
    // The same relative capacity as the old owner's: b costs twice per request.
    const ratio = (m: Map<string, { weight: number }>) => m.get('a')!.weight / m.get('b')!.weight;
    expect(ratio(after)).toBeCloseTo(ratio(before), 1);
    await old.close();
    await fresh.close();
  });

  it('a checkpoint restored before the history arrives is applied as each endpoint arrives, without learning the same samples twice', async () => {
    const store = history(120);
    const old = new ForecastScorer({ config, logger });
    await old.assess(store.all(), states(store), Date.now());
    const saved = JSON.parse(JSON.stringify(old.checkpoint(['a', 'b']))) as Record<string, unknown>;

    // The new owner restores first (it holds neither endpoint yet), then replays and scores once.
    const fresh = new ForecastScorer({ config, logger });
    expect(fresh.restore(saved)).toBe(2);
    expect(fresh.checkpoint(['a', 'b'])).toEqual({});
    await fresh.assess(store.all(), states(store), Date.now());
    // The replayed samples are the ones the checkpoint learnt: the cost is the old owner's as is.
    expect(fresh.checkpoint(['a', 'b'])).toEqual(saved);

    // A sample newer than the checkpoint is learnt.
    const a = store.get('a')!;
    store.accept(
      a,
      makeSample({
        endpointId: 'a',
        sequence: 121,
        cpuUsage: 0.5,
        processCpuUsage: 0.4,
        requestsCompleted: 50,
        sampleSpan: { seconds: 1, nanos: 0 },
        timestamp: new Date(Date.now() + 1000),
      }),
      Date.now(),
    );
    await fresh.assess(store.all(), states(store), Date.now());
    const cost = (c: Record<string, unknown>, id: string) => (c[id] as { cost: unknown }).cost;
    expect(cost(fresh.checkpoint(['a']), 'a')).not.toEqual(cost(saved, 'a'));
    await old.close();
    await fresh.close();
  });

  it('ignores a damaged checkpoint', async () => {
    const store = history(20);
    const scorer = new ForecastScorer({ config, logger });
    await scorer.assess(store.all(), states(store), Date.now());
    const kept = scorer.checkpoint(['a', 'b']);
    expect(
      scorer.restore({
        a: { cost: { work: { own: -1, host: 0 }, requests: { own: 1, host: 1 } }, weight: 1 },
        b: 'not a checkpoint',
      }),
    ).toBe(0);
    expect(scorer.checkpoint(['a', 'b'])).toEqual(kept);
    await scorer.close();
  });
});
