import type { Logger } from '../common/logger.js';
import type { PrioritizedEndpointList, PrioritizedListSource } from '../lps/types.js';
import { CLIENT_KINDS, type ClientKind } from './client-kind.js';
import {
  publishedEndpoints,
  samePlace,
  type PublishedEndpoint,
  type ResourceBuilder,
} from './resources.js';
import { Snapshot, type EncodedResource } from './snapshot.js';
import type { SnapshotCache } from './snapshot-cache.js';

export interface PublisherOptions {
  source: PrioritizedListSource;
  cache: SnapshotCache;
  builder: ResourceBuilder;
  /**
   * Milliseconds score changes are gathered before a push (membership changes are not delayed);
   * 0: until the end of the current turn of the event loop, which holds a whole scoring pass.
   */
  debounceMs: number;
  /** Milliseconds after start before the first snapshot (clients keep their config meanwhile). */
  warmupMs: number;
  /** Smallest fraction of a service's traffic that must change endpoint to be worth a push. */
  hysteresis: number;
  logger: Logger;
  /** What became of each list: published, skipped (hysteresis) or removed (no endpoints left). */
  onOutcome?: (outcome: PublishOutcome) => void;
  /** Called after each new snapshot with the services that changed (for benchmarks and tests). */
  onPublish?: (services: readonly string[]) => void;
}

export type PublishOutcome = 'published' | 'skipped' | 'removed';

/** What clients of a service were last given. */
export interface PublishedService {
  service: string;
  /** The LPS list version the push was built from. */
  listVersion: number;
  endpoints: readonly PublishedEndpoint[];
}

interface ServiceResources extends PublishedService {
  /** Endpoint id → the endpoint; a change of where it is (address, locality) is a membership change. */
  membership: Map<string, PublishedEndpoint>;
  endpointsResource: EncodedResource;
  clusters: Record<ClientKind, EncodedResource>;
  listener: EncodedResource;
  route: EncodedResource;
}

/**
 * Turns the LPS's prioritized lists into snapshots, one per kind of client. Pushing policy:
 * - nothing is published during the warm-up after start (see XdsConfig.warmup);
 * - a change of membership (an endpoint joins, or leaves because it went stale, failing or
 *   draining) is pushed at once, on the next turn of the event loop, with whatever else is pending;
 * - other changes (weights) are gathered so a scoring tick, which emits every service, becomes
 *   one snapshot: until the end of the current turn of the event loop (`debounceMs` 0, the
 *   default: the LPS's prioritizer publishes a whole scoring pass in one turn), or for
 *   `debounceMs`; then a service is re-published only if at least `hysteresis` of its
 *   traffic would change endpoint (trafficMoved) compared with its last push (compared with what
 *   was pushed, not with the last list seen, so slow drifts add up);
 * - a list with no endpoints at all removes the service's resources (full-state CDS/LDS then tell
 *   clients it is gone); a service whose endpoints are all stale keeps its cluster with none.
 */
export class XdsPublisher {
  private readonly options: PublisherOptions;
  private readonly services = new Map<string, ServiceResources>();
  /** Lists not published yet, with what of them clients may use (worked out once per list). */
  private readonly pending = new Map<string, PendingList>();
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private warmupTimer: NodeJS.Timeout | undefined;
  private warm = false;

  constructor(options: PublisherOptions) {
    this.options = options;
  }

  /** Follows the source; the first snapshot (every current list) goes out after the warm-up. */
  start(): void {
    this.unsubscribe = this.options.source.subscribe((list) => this.onList(list));
    const publishAll = (): void => {
      this.warm = true;
      for (const s of this.options.source.services()) {
        const list = this.options.source.get(s);
        if (list) this.pending.set(s, this.prepare(list));
      }
      this.flush();
    };
    if (this.options.warmupMs > 0) {
      this.warmupTimer = setTimeout(publishAll, this.options.warmupMs);
    } else {
      publishAll();
    }
  }

  stop(): void {
    this.unsubscribe?.();
    clearTimeout(this.warmupTimer);
    clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = this.immediate = undefined;
  }

  published(service: string): PublishedService | undefined {
    const s = this.services.get(service);
    return s && { service: s.service, listVersion: s.listVersion, endpoints: s.endpoints };
  }

  private prepare(list: PrioritizedEndpointList): PendingList {
    return { list, ...publishedEndpoints(list) };
  }

  private onList(list: PrioritizedEndpointList): void {
    const pending = this.prepare(list);
    this.pending.set(list.service, pending);
    if (!this.warm) return;
    const current = this.services.get(list.service);
    const urgent =
      !current ||
      list.endpoints.length === 0 ||
      !sameMembership(current.membership, pending.endpoints);
    if (urgent || this.options.debounceMs === 0) {
      this.immediate ??= setImmediate(() => this.flush());
    } else if (!this.timer && !this.immediate) {
      this.timer = setTimeout(() => this.flush(), this.options.debounceMs);
    }
  }

  /** Builds what changed, and sets the new snapshots if anything did. */
  private flush(): void {
    clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = this.immediate = undefined;
    const changed: string[] = [];
    for (const [service, pending] of this.pending) {
      try {
        if (this.apply(service, pending)) changed.push(service);
      } catch (err) {
        this.options.logger.error(
          { err, service },
          'cannot build xDS resources; clients keep the last ones',
        );
      }
    }
    this.pending.clear();
    if (changed.length === 0 && this.options.cache.getSnapshot(CLIENT_KINDS[0]!)) return;
    for (const kind of CLIENT_KINDS) this.options.cache.setSnapshot(kind, this.snapshotFor(kind));
    this.options.logger.debug({ changed }, 'xDS snapshots published');
    this.options.onPublish?.(changed);
  }

  /** Updates one service; false if clients need not hear about it. */
  private apply(service: string, { list, endpoints, unresolved }: PendingList): boolean {
    const current = this.services.get(service);
    if (list.endpoints.length === 0) {
      if (!current) return false;
      this.services.delete(service);
      this.options.builder.forget(service);
      this.options.onOutcome?.('removed');
      return true;
    }
    if (unresolved.length > 0)
      this.options.logger.debug(
        { service, unresolved },
        'endpoints without an IP address left out (their host names do not resolve)',
      );
    if (
      current &&
      sameMembership(current.membership, endpoints) &&
      trafficMovedFrom(current.membership, endpoints) < this.options.hysteresis
    ) {
      this.options.onOutcome?.('skipped');
      return false;
    }
    const b = this.options.builder;
    this.services.set(service, {
      service,
      listVersion: list.version,
      endpoints,
      membership: new Map(endpoints.map((e) => [e.id, e])),
      endpointsResource: b.endpoints(service, endpoints),
      // These depend on the service name only; build them once.
      clusters: current?.clusters ?? {
        envoy: b.cluster(service, 'envoy'),
        grpc: b.cluster(service, 'grpc'),
      },
      listener: current?.listener ?? b.listener(service),
      route: current?.route ?? b.route(service),
    });
    this.options.onOutcome?.('published');
    return true;
  }

  /** Envoy gets Clusters and Endpoints (its listeners and routes are in its bootstrap); gRPC all four. */
  private snapshotFor(kind: ClientKind): Snapshot {
    const resources: EncodedResource[] = [];
    for (const s of this.services.values()) {
      resources.push(s.clusters[kind], s.endpointsResource);
      if (kind === 'grpc') resources.push(s.listener, s.route);
    }
    return new Snapshot(resources);
  }
}

interface PendingList {
  list: PrioritizedEndpointList;
  endpoints: PublishedEndpoint[];
  unresolved: string[];
}

/** The same endpoints at the same places (address and locality); shares may differ. */
function sameMembership(
  known: ReadonlyMap<string, PublishedEndpoint>,
  endpoints: readonly PublishedEndpoint[],
): boolean {
  if (known.size !== endpoints.length) return false;
  for (const e of endpoints) {
    const k = known.get(e.id);
    if (!k || !samePlace(k, e)) return false;
  }
  return true;
}

/**
 * The fraction of a service's traffic that would go to another endpoint if the new shares replaced
 * the old ones (total variation distance, ½ Σ |Δshare|). Unlike the largest single change it does
 * not vanish as endpoints multiply: at 1,000 endpoints every share is ~0.001, yet a reshuffle can
 * move half the traffic.
 */
export function trafficMoved(
  before: readonly PublishedEndpoint[],
  after: readonly PublishedEndpoint[],
): number {
  return trafficMovedFrom(new Map(before.map((e) => [e.id, e])), after);
}

/** `trafficMoved` with the earlier endpoints by id (the publisher keeps them so). */
function trafficMovedFrom(
  before: ReadonlyMap<string, PublishedEndpoint>,
  after: readonly PublishedEndpoint[],
): number {
  let sum = 0;
  let matched = 0;
  let matchedBefore = 0;
  for (const e of after) {
    const b = before.get(e.id);
    if (b) {
      matched++;
      matchedBefore += b.share;
    }
    sum += Math.abs(e.share - (b?.share ?? 0));
  }
  // Endpoints that left took all their share with them.
  if (matched < before.size) {
    let all = 0;
    for (const b of before.values()) all += b.share;
    sum += all - matchedBefore;
  }
  return sum / 2;
}
