import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createRegistry } from '../../src/common/http-host.js';
import { ProbeHealth } from '../../src/gen/augur/v1/common.js';
import type { ScoreParts } from '../../src/gen/augur/v1/load_prediction.js';
import { hostNamesConfigSchema } from '../../src/lps/config.js';
import { HostNameResolver } from '../../src/lps/host-names.js';
import { LpsMetrics } from '../../src/lps/metrics.js';
import { Prioritizer } from '../../src/lps/prioritizer.js';
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
    const prioritizer = new Prioritizer(
      store,
      saturated,
      new LpsMetrics(createRegistry(false)),
      pino({ level: 'silent' }),
      new HostNameResolver({
        ...hostNamesConfigSchema.parse({}),
        logger: pino({ level: 'silent' }),
        onChange: () => {},
      }),
    );
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
});
