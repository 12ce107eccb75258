import { formatHostPort } from '../common/address.js';
import type { EndpointState } from '../gen/augur/v1/common.js';
import type { PrioritizedEndpointList } from '../gen/augur/v1/load_prediction.js';
import type { PrioritizedListSource } from '../lps/types.js';

/** One routable endpoint of a service, as the RRM keeps it between two versions of its list. */
export interface EndpointEntry {
  readonly id: string;
  /**
   * `ip:port` (`[v6]:port`), as Envoy's override-host policy reads it: the IP the LPS published
   * for the endpoint, which is the one augur's xDS gives Envoy's EDS hosts, so the two match.
   * While the LPS has no IP for a host name it is the host name, which Envoy will not match: it
   * moves on to the next entry of the list.
   */
  readonly destination: string;
  /** The address the agent reported, `host:port`: where RouteResponse delivers itself. */
  readonly hostPort: string;
  /** Load Score in [0,1]; higher is better. */
  readonly score: number;
  /**
   * Share of the service's traffic the LPS wants this endpoint to get (the weights of a list
   * sum to 1); 0 when not finite or negative. Kept apart from `score`, which only orders.
   */
  readonly weight: number;
  readonly state: EndpointState;
  /** Seconds since the endpoint's last sample when its list was computed. */
  readonly stalenessSeconds: number;
  /** Position in the order this RRM first saw the endpoints of the service (the standard order). */
  readonly registrationRank: number;
}

/**
 * One version of one service's prioritized list, turned once into what the per-request
 * path needs: entries by id, by Load Score (best first) and in registration order, with
 * their `ip:port` strings already built. Immutable; a new version gives a new table.
 */
export class ServiceTable {
  readonly service: string;
  readonly version: number;
  readonly computedAtMs: number;
  readonly byId: ReadonlyMap<string, EndpointEntry>;
  /** Best Load Score first; ties keep registration order. */
  readonly byScore: readonly EndpointEntry[];
  readonly byRegistration: readonly EndpointEntry[];
  /** The entries of the listed ids this table has, in the order of `ids` (unknown ids skipped). */
  select(ids: readonly string[]): EndpointEntry[] {
    const out: EndpointEntry[] = [];
    for (const id of ids) {
      const e = this.byId.get(id);
      if (e) out.push(e);
    }
    return out;
  }

  constructor(list: PrioritizedEndpointList, ranks: Map<string, number>) {
    this.service = list.service;
    this.version = list.version;
    this.computedAtMs = list.computedAt ? list.computedAt.getTime() : 0;
    const entries: EndpointEntry[] = [];
    for (const e of list.endpoints) {
      // Without an address Envoy cannot be pointed at the endpoint.
      if (!e.address || !e.port) continue;
      let rank = ranks.get(e.endpointId);
      if (rank === undefined) {
        rank = ranks.size;
        ranks.set(e.endpointId, rank);
      }
      entries.push({
        id: e.endpointId,
        destination: formatHostPort({ host: e.ip || e.address, port: e.port }),
        hostPort: formatHostPort({ host: e.address, port: e.port }),
        score: Number.isFinite(e.score) ? e.score : 0,
        weight: Number.isFinite(e.weight) && e.weight > 0 ? e.weight : 0,
        state: e.state,
        stalenessSeconds: e.parts?.stalenessSeconds ?? 0,
        registrationRank: rank,
      });
    }
    this.byRegistration = [...entries].sort((a, b) => a.registrationRank - b.registrationRank);
    this.byScore = [...this.byRegistration].sort((a, b) => b.score - a.score);
    this.byId = new Map(entries.map((e) => [e.id, e]));
  }
}

/**
 * The RRM's local copy of every service's prioritized list, kept fresh by subscribing to a
 * PrioritizedListSource (in-process LPS or a WatchPrioritizedEndpoints stream). Lookups are
 * map reads; nothing here calls the LPS per request.
 */
export class EndpointTables {
  private readonly tables = new Map<string, ServiceTable>();
  /** Registration order per service, kept across versions so the standard order is stable. */
  private readonly ranks = new Map<string, Map<string, number>>();
  /** Every endpoint id to its service, for calls that name endpoints but no service. */
  private readonly serviceOfId = new Map<string, string>();
  private readonly unsubscribe: () => void;

  constructor(source: PrioritizedListSource) {
    this.unsubscribe = source.subscribe((list) => this.update(list));
    for (const service of source.services()) {
      const list = source.get(service);
      if (list) this.update(list);
    }
  }

  get(service: string): ServiceTable | undefined {
    return this.tables.get(service);
  }

  has(service: string): boolean {
    return this.tables.has(service);
  }

  services(): string[] {
    return [...this.tables.keys()];
  }

  /** The `ip:port` of every endpoint in the newest lists. */
  destinations(): Set<string> {
    const out = new Set<string>();
    for (const table of this.tables.values())
      for (const e of table.byRegistration) out.add(e.destination);
    return out;
  }

  /** The service an endpoint id belongs to, per the newest lists. */
  serviceOf(endpointId: string): string | undefined {
    return this.serviceOfId.get(endpointId);
  }

  /**
   * Applies one list (full state of its service). Every list is applied, even one with a
   * lower version: a restarted LPS counts from 1 again, and sources deliver in order.
   */
  update(list: PrioritizedEndpointList): void {
    const current = this.tables.get(list.service);
    if (current) {
      for (const id of current.byId.keys()) {
        if (this.serviceOfId.get(id) === list.service) this.serviceOfId.delete(id);
      }
    }
    if (list.endpoints.length === 0) {
      this.tables.delete(list.service);
      this.ranks.delete(list.service);
      return;
    }
    let ranks = this.ranks.get(list.service);
    if (!ranks) {
      ranks = new Map();
      this.ranks.set(list.service, ranks);
    }
    const table = new ServiceTable(list, ranks);
    this.tables.set(list.service, table);
    for (const id of table.byId.keys()) this.serviceOfId.set(id, list.service);
  }

  close(): void {
    this.unsubscribe();
  }
}
