import type { EndpointEntry, EndpointTables } from './endpoint-table.js';
import {
  defaultPipeline,
  standardOrderPipeline,
  type PickerPipeline,
} from './pipeline/pipeline.js';

/**
 * How far the RRM trusts its copy of the lists:
 * - `live`: the LPS is reachable (or in-process); full pipeline.
 * - `last-list`: the LPS has been unreachable past the first bound; the last lists are
 *   still served through the full pipeline, and /metrics says so.
 * - `standard-order`: unreachable past the second bound; scores and health are too old,
 *   so the caller's order (or registration order) is served.
 */
export type ServingMode = 'live' | 'last-list' | 'standard-order';

/** The answer for one request: the endpoints to try, in order, and their EPP header value. */
export interface Decision {
  readonly service: string;
  /** The pick first, then the fallbacks; empty when nothing may take the request. */
  readonly endpoints: readonly EndpointEntry[];
  /** `ip:port,ip:port,...` of `endpoints`. */
  readonly value: string;
  /** Why `endpoints` is empty, for the 503 body. */
  readonly reason?: string;
  /** The wire form of the answer, memoised by whoever encodes it (index: variant). */
  readonly encoded: Array<Uint8Array | undefined>;
}

export interface RouterOptions {
  /** Endpoints after the pick. */
  fallbacks: number;
  maxEndpointStaleness: number;
  /** Decisions memoised per list version (cleared when full). */
  memoSize?: number;
}

/**
 * Answers "where should this request go" from the local tables. The pipeline runs once per
 * list version and request shape (dynamic or not, candidate list); the answer is memoised on
 * the table, so a steady stream of similar requests costs a map lookup.
 */
export class Router {
  mode: ServingMode = 'live';
  private readonly tables: EndpointTables;
  private readonly limit: number;
  private readonly memoSize: number;
  private readonly pipelines: Record<ServingMode, PickerPipeline>;

  constructor(tables: EndpointTables, options: RouterOptions) {
    this.tables = tables;
    this.limit = options.fallbacks + 1;
    this.memoSize = options.memoSize ?? 4096;
    const normal = defaultPipeline({ maxEndpointStaleness: options.maxEndpointStaleness });
    this.pipelines = {
      live: normal,
      'last-list': normal,
      'standard-order': standardOrderPipeline(),
    };
  }

  isKnown = (service: string): boolean => this.tables.has(service);

  /** Every endpoint id of the service, in registration order. */
  endpointIds(service: string): string[] {
    return this.tables.get(service)?.byRegistration.map((e) => e.id) ?? [];
  }

  /**
   * @param candidatesKey a string identifying `candidates` (the raw header value), for the memo.
   */
  decide(
    service: string,
    dynamic: boolean,
    candidates: readonly string[] | undefined,
    candidatesKey?: string,
  ): Decision {
    const table = this.tables.get(service);
    if (!table) {
      return noEndpoint(service, `service "${service}" has no endpoints known to augur`);
    }
    const key = `${this.mode}|${dynamic ? 1 : 0}|${candidates ? (candidatesKey ?? candidates.join(',')) : '*'}`;
    const memo = table.memo as Map<string, Decision>;
    const hit = memo.get(key);
    if (hit) return hit;
    const endpoints = this.pipelines[this.mode].run(table, {
      candidates,
      dynamic,
      limit: this.limit,
    });
    let decision: Decision;
    if (endpoints.length > 0) {
      decision = {
        service,
        endpoints,
        value: endpoints.map((e) => e.hostPort).join(','),
        encoded: [],
      };
    } else if (candidates) {
      decision = noEndpoint(
        service,
        `none of the ${candidates.length} endpoints in x-augur-endpoints is a healthy, fresh endpoint of service "${service}"`,
      );
    } else {
      decision = noEndpoint(service, `no endpoint of service "${service}" is healthy and fresh`);
    }
    if (memo.size >= this.memoSize) memo.clear();
    memo.set(key, decision);
    return decision;
  }

  /** Like `decide` with another limit (RouteResponse's max_attempts), not memoised. */
  order(
    service: string,
    dynamic: boolean,
    candidates: readonly string[] | undefined,
    limit: number,
  ): EndpointEntry[] {
    const table = this.tables.get(service);
    if (!table) return [];
    return this.pipelines[this.mode].run(table, { candidates, dynamic, limit });
  }
}

function noEndpoint(service: string, reason: string): Decision {
  return { service, endpoints: [], value: '', reason, encoded: [] };
}
