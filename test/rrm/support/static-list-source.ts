import { EndpointState } from '../../../src/gen/augur/v1/common.js';
import type {
  PrioritizedEndpointList,
  ScoredEndpoint,
} from '../../../src/gen/augur/v1/load_prediction.js';
import { ListStore } from '../../../src/lps/list-store.js';

/** A PrioritizedListSource whose lists the test sets by hand (the LPS's contract, nothing more). */
export class StaticListSource extends ListStore {
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
    this.publish(list);
    return list;
  }
}
