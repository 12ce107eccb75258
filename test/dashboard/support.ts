import { lpsConfigSchema } from '../../src/lps/config.js';
import { EndpointStore } from '../../src/lps/store.js';
import {
  EndpointState,
  type EndpointRecord,
  type PrioritizedEndpointList,
  type PrioritizedListSource,
} from '../../src/lps/types.js';
import type { ScoreParts } from '../../src/gen/augur/v1/load_prediction.js';
import { makeSample } from '../support/raw-agent.js';

/** A PrioritizedListSource the test publishes to by hand, as the Prioritizer would. */
export class DrivenLists implements PrioritizedListSource {
  private readonly lists = new Map<string, PrioritizedEndpointList>();
  private readonly listeners = new Set<(list: PrioritizedEndpointList) => void>();
  private version = 0;

  get(service: string): PrioritizedEndpointList | undefined {
    return this.lists.get(service);
  }

  services(): string[] {
    return [...this.lists.keys()];
  }

  subscribe(listener: (list: PrioritizedEndpointList) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Publishes a list of `service` computed at `atMs`: weights as given,
   * score = weight × 2 capped at 1 (unless `scores` says otherwise), predicted
   * utilisation 1 − score (unless `parts` says otherwise), best first.
   */
  publish(
    service: string,
    atMs: number,
    weights: Record<string, number>,
    states: Record<string, EndpointState> = {},
    parts: Record<string, Partial<ScoreParts>> = {},
    scores: Record<string, number> = {},
  ): PrioritizedEndpointList {
    const list: PrioritizedEndpointList = {
      service,
      version: ++this.version,
      computedAt: new Date(atMs),
      endpoints: Object.entries(weights).map(([id, weight]) => ({
        endpointId: id,
        score: scores[id] ?? Math.min(1, weight * 2),
        weight,
        address: '127.0.0.1',
        port: 9000,
        state: states[id] ?? EndpointState.ENDPOINT_STATE_ACTIVE,
        locality: undefined,
        parts: {
          predictedUtilization: 1 - (scores[id] ?? Math.min(1, weight * 2)),
          predictedResponseTime: 0.01,
          stalenessSeconds: 0,
          forecaster: 'holt',
          utilizationFactor: 1,
          latencyFactor: 1,
          horizon: undefined,
          predictedMemory: 0,
          predictedNetwork: 0,
          estimatedCapacity: 0,
          ...parts[id],
        },
      })),
    };
    // Best first, as the Prioritizer orders them.
    list.endpoints.sort((x, y) => y.score - x.score || (x.endpointId < y.endpointId ? -1 : 1));
    this.lists.set(service, list);
    for (const l of this.listeners) l(list);
    return list;
  }
}

/** A real EndpointStore with endpoints added by hello, as the Telemetry service does. */
export function makeStore(intervalSeconds = 1): EndpointStore {
  return new EndpointStore(
    lpsConfigSchema.parse({ defaultInterval: intervalSeconds, ringSize: 64 }),
  );
}

export function addEndpoint(
  store: EndpointStore,
  id: string,
  atMs: number,
  service = 'svc',
): EndpointRecord {
  return store.upsertFromHello(
    { endpointId: id, service, address: '127.0.0.1', port: 9000, labels: {}, agentVersion: 't' },
    atMs,
  );
}

/** Stores a sample received by the LPS at `atMs`. */
export function addSample(
  store: EndpointStore,
  id: string,
  atMs: number,
  cpu: number,
  responseTime = 0.01,
  requestRate = 0,
): void {
  const r = store.get(id)!;
  store.append(
    r,
    makeSample({
      sequence: r.lastSequence + 1,
      cpuUsage: cpu,
      responseTime,
      requestRate,
      timestamp: new Date(atMs),
    }),
    atMs,
  );
}
