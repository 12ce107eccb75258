import type { PrioritizedEndpointList, PrioritizedListSource } from './types.js';

type Listener = (list: PrioritizedEndpointList) => void;

/**
 * The newest prioritized list of each service and who to tell about new ones:
 * the part of a PrioritizedListSource that every source shares (the LPS's
 * prioritizer, a WatchPrioritizedEndpoints client, test sources).
 */
export class ListStore implements PrioritizedListSource {
  private readonly lists = new Map<string, PrioritizedEndpointList>();
  private readonly listeners = new Set<Listener>();

  /** `onListenerError` hears of a listener that threw; the other listeners are still called. */
  constructor(
    private readonly onListenerError: (
      err: unknown,
      list: PrioritizedEndpointList,
    ) => void = rethrow,
  ) {}

  get(service: string): PrioritizedEndpointList | undefined {
    return this.lists.get(service);
  }

  services(): string[] {
    return [...this.lists.keys()];
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Keeps `list` as its service's newest (a list with no endpoints removes the
   * service, as the PrioritizedListSource contract says) and tells every listener.
   */
  publish(list: PrioritizedEndpointList): void {
    if (list.endpoints.length === 0) this.lists.delete(list.service);
    else this.lists.set(list.service, list);
    for (const listener of this.listeners) {
      try {
        listener(list);
      } catch (err) {
        this.onListenerError(err, list);
      }
    }
  }
}

function rethrow(err: unknown): never {
  throw err;
}
