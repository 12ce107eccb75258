import { EndpointState } from '../../../src/gen/augur/v1/common.js';
import type {
  PrioritizedEndpointList,
  ScoredEndpoint,
} from '../../../src/gen/augur/v1/load_prediction.js';
import type { PrioritizedListSource } from '../../../src/lps/types.js';

/** A PrioritizedListSource whose lists the test sets by hand (the LPS's contract, nothing more). */
export class StaticListSource implements PrioritizedListSource {
  private readonly lists = new Map<string, PrioritizedEndpointList>();
  private readonly listeners = new Set<(list: PrioritizedEndpointList) => void>();
  private version = 0;

  /** Publishes a new full list of `service`, best first by score. */
  set(
    service: string,
    endpoints: Array<Partial<ScoredEndpoint> & { endpointId: string }>,
  ): PrioritizedEndpointList {
    const list: PrioritizedEndpointList = {
      service,
      version: ++this.version,
      computedAt: new Date(),
      endpoints: endpoints
        .map((e) => ({
          score: 0.5,
          weight: 0,
          address: '127.0.0.1',
          port: 1,
          state: EndpointState.ENDPOINT_STATE_ACTIVE,
          ...e,
        }))
        .sort((a, b) => b.score - a.score),
    };
    if (list.endpoints.length === 0) this.lists.delete(service);
    else this.lists.set(service, list);
    for (const l of this.listeners) l(list);
    return list;
  }

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
}
