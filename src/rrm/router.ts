import type { EndpointLoad, EndpointLoads } from './endpoint-load.js';
import type { EndpointEntry, EndpointTables, ServiceTable } from './endpoint-table.js';
import {
  answer,
  defaultPipeline,
  standardOrderPipeline,
  type DynamicPickerName,
  type PickerPipeline,
} from './pipeline/pipeline.js';
import type { CandidateSet, PickRequest } from './pipeline/types.js';

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
  /** What the RRM knows of the pick's requests (where a routed request is counted in flight). */
  readonly pick: EndpointLoad | undefined;
  /** Why `endpoints` is empty, for the 503 body. */
  readonly reason?: string;
  /** The wire form of the answer, memoised by whoever encodes it (index: variant). */
  readonly encoded: Array<Uint8Array | undefined>;
}

export interface RouterOptions {
  /** Endpoints after the pick. */
  fallbacks: number;
  maxEndpointStaleness: number;
  dynamicPicker: DynamicPickerName;
  /** ExpectedDelayPicker's sample size. */
  pickSampleSize: number;
  /** The in-band signals (requests in flight, latency) the picker reads. */
  loads: EndpointLoads;
  /** The picker's random source; default Math.random. */
  random?: () => number;
  /**
   * Request shapes with a candidate list memoised per list version (cleared when full; the
   * shapes without one, a few, are always kept).
   */
  memoSize?: number;
}

/**
 * What the router keeps per list version and request shape: the candidates (filtered and in
 * fallback order, with their loads) and the decisions built so far, one per candidate that was
 * the pick, so a pick costs no list building nor encoding after its first use. Without
 * candidates, `none`.
 */
interface Shape {
  readonly request: PickRequest;
  readonly candidates: CandidateSet | undefined;
  readonly decisions: Array<Decision | undefined>;
  readonly none: Decision | undefined;
}

/**
 * Answers "where should this request go" from the local tables. The filters and the ordering
 * run once per list version and request shape (dynamic or not, candidate list) and their result
 * is memoised on the table; per request the picker chooses among those candidates from the
 * live in-band signals, and the decision for that pick is memoised too. A steady stream of
 * similar requests costs a map lookup and one pass of the picker over the candidates.
 */
export class Router {
  mode: ServingMode = 'live';
  readonly loads: EndpointLoads;
  private readonly tables: EndpointTables;
  private readonly limit: number;
  private readonly memoSize: number;
  private readonly pipelines: Record<ServingMode, PickerPipeline>;
  /**
   * Per list version (table), the shapes of each (mode, dynamic) pair: without a candidate list
   * (key '') in `plain`, with one (keyed by the list) in `listed`, bounded. A table's memo goes
   * when the table does, so a new version never serves an old answer; it is this router's own,
   * because its candidates carry this router's loads.
   */
  private readonly memos = new WeakMap<ServiceTable, TableMemo>();

  constructor(tables: EndpointTables, options: RouterOptions) {
    this.tables = tables;
    this.loads = options.loads;
    this.limit = options.fallbacks + 1;
    // Small enough that a stream of distinct candidate lists leaves short-lived garbage (cheap
    // to collect) rather than thousands of old shapes; large enough for the lists callers repeat.
    this.memoSize = options.memoSize ?? 512;
    const normal = defaultPipeline({
      maxEndpointStaleness: options.maxEndpointStaleness,
      dynamicPicker: options.dynamicPicker,
      pickSampleSize: options.pickSampleSize,
      loads: options.loads,
      random: options.random,
    });
    this.pipelines = {
      live: normal,
      'last-list': normal,
      'standard-order': standardOrderPipeline(options.loads),
    };
  }

  isKnown = (service: string): boolean => this.tables.has(service);

  /** Every endpoint id of the service, in registration order. */
  endpointIds(service: string): string[] {
    return this.tables.get(service)?.byRegistration.map((e) => e.id) ?? [];
  }

  /**
   * The answer for one request. Successive calls of the same shape may differ (the picker reads
   * the requests in flight); each distinct answer is one memoised Decision. The caller counts
   * the request in flight at `decision.pick` if it routes it (RoutedRequests).
   * @param candidatesKey a string identifying `candidates` (the raw header value), for the memo.
   */
  decide(
    service: string,
    dynamic: boolean,
    candidates: readonly string[] | undefined,
    candidatesKey?: string,
  ): Decision {
    const table = this.tables.get(service);
    if (!table) return noEndpoint(service, `service "${service}" has no endpoints known to augur`);
    const shape = this.shape(table, service, dynamic, candidates, candidatesKey);
    const set = shape.candidates;
    if (!set) return shape.none!;
    const pick = this.pipelines[this.mode].picker(shape.request).pick(set, shape.request);
    let decision = shape.decisions[pick];
    if (!decision) {
      const endpoints = answer(set.entries, pick, this.limit);
      decision = {
        service,
        endpoints,
        value: endpoints.map((e) => e.destination).join(','),
        pick: set.loads[pick],
        encoded: [],
      };
      shape.decisions[pick] = decision;
    }
    return decision;
  }

  /**
   * Like `decide` with another limit (RouteResponse's max_attempts): the same candidates and
   * picker; the list itself is not memoised.
   */
  order(
    service: string,
    dynamic: boolean,
    candidates: readonly string[] | undefined,
    limit: number,
  ): EndpointEntry[] {
    const table = this.tables.get(service);
    if (!table) return [];
    const shape = this.shape(table, service, dynamic, candidates, undefined);
    const set = shape.candidates;
    if (!set) return [];
    return answer(
      set.entries,
      this.pipelines[this.mode].picker(shape.request).pick(set, shape.request),
      limit,
    );
  }

  private shape(
    table: ServiceTable,
    service: string,
    dynamic: boolean,
    candidates: readonly string[] | undefined,
    candidatesKey: string | undefined,
  ): Shape {
    // Two levels, so no key is built per request: the (mode, dynamic) pair, a constant string,
    // then the candidate list's raw header value.
    const pair = SHAPE_KEYS[this.mode][dynamic ? 1 : 0];
    const list = candidates ? (candidatesKey ?? candidates.join(',')) : undefined;
    const memo = this.memoFor(table, pair, list !== undefined);
    const hit = memo.get(list ?? '');
    if (hit) return hit;
    const request: PickRequest = { candidates, dynamic, limit: this.limit };
    const set = this.pipelines[this.mode].candidates(table, request);
    let none: Decision | undefined;
    if (set) none = undefined;
    else if (candidates) {
      none = noEndpoint(
        service,
        `none of the ${candidates.length} endpoints in x-augur-endpoints is a healthy, fresh endpoint of service "${service}"`,
      );
    } else {
      none = noEndpoint(service, `no endpoint of service "${service}" is healthy and fresh`);
    }
    const shape: Shape = { request, candidates: set, decisions: [], none };
    if (list !== undefined && memo.size >= this.memoSize) memo.clear();
    memo.set(list ?? '', shape);
    return shape;
  }

  private memoFor(table: ServiceTable, pair: string, withList: boolean): Map<string, Shape> {
    let memos = this.memos.get(table);
    if (!memos) this.memos.set(table, (memos = { plain: new Map(), listed: new Map() }));
    const byPair = withList ? memos.listed : memos.plain;
    let memo = byPair.get(pair);
    if (!memo) byPair.set(pair, (memo = new Map()));
    return memo;
  }
}

interface TableMemo {
  readonly plain: Map<string, Map<string, Shape>>;
  readonly listed: Map<string, Map<string, Shape>>;
}

/** The memo keys of the (serving mode, dynamic routing) pairs. */
const SHAPE_KEYS: Record<ServingMode, readonly [string, string]> = {
  live: ['live|0', 'live|1'],
  'last-list': ['last-list|0', 'last-list|1'],
  'standard-order': ['standard-order|0', 'standard-order|1'],
};

function noEndpoint(service: string, reason: string): Decision {
  return { service, endpoints: [], value: '', pick: undefined, reason, encoded: [] };
}
