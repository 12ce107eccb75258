import type { EndpointEntry, EndpointTables, ServiceTable } from './endpoint-table.js';
import {
  defaultPipeline,
  standardOrderPipeline,
  type DynamicPickerName,
  type PickerPipeline,
} from './pipeline/pipeline.js';
import type { PickPlan } from './pipeline/types.js';

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
  dynamicPicker: DynamicPickerName;
  /**
   * Request shapes with a candidate list memoised per list version (cleared when full; the
   * shapes without one, a few, are always kept).
   */
  memoSize?: number;
}

/**
 * What the router memoises per list version and request shape: the picker's plan (with its
 * rotation state, if any) and the decisions built so far, one per answer of the plan, so a
 * rotating pick still costs no encoding after its first use. Without a plan, `none`.
 */
interface Shape {
  readonly plan: PickPlan | undefined;
  readonly decisions: Array<Decision | undefined>;
  readonly none: Decision | undefined;
}

/**
 * Answers "where should this request go" from the local tables. The pipeline runs once per
 * list version and request shape (dynamic or not, candidate list) and its plan is memoised on
 * the table (a rotating plan continues the same shape's plan of the previous version); per
 * request the plan names its answer (a rotation step for the weighted picker)
 * and the decision for that answer is memoised too, so a steady stream of similar requests
 * costs a map lookup and, with weights, one pass over the candidates.
 */
export class Router {
  mode: ServingMode = 'live';
  private readonly tables: EndpointTables;
  private readonly limit: number;
  private readonly memoSize: number;
  private readonly pipelines: Record<ServingMode, PickerPipeline>;
  /** Per service: the table last answered from, and the one before it (whose plans continue). */
  private readonly seen = new Map<string, { current: ServiceTable; previous?: ServiceTable }>();

  constructor(tables: EndpointTables, options: RouterOptions) {
    this.tables = tables;
    this.limit = options.fallbacks + 1;
    // Small enough that a stream of distinct candidate lists leaves short-lived garbage (cheap
    // to collect) rather than thousands of old shapes; large enough for the lists callers repeat.
    this.memoSize = options.memoSize ?? 512;
    const normal = defaultPipeline({
      maxEndpointStaleness: options.maxEndpointStaleness,
      dynamicPicker: options.dynamicPicker,
    });
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
   * The answer for one request. Successive calls of the same shape may differ (the weighted
   * picker rotates the pick); each distinct answer is one memoised Decision.
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
      this.seen.delete(service);
      return noEndpoint(service, `service "${service}" has no endpoints known to augur`);
    }
    const shape = this.shape(table, service, dynamic, candidates, candidatesKey);
    const plan = shape.plan;
    if (!plan) return shape.none!;
    const variant = plan.variants === 1 ? 0 : plan.next();
    let decision = shape.decisions[variant];
    if (!decision) {
      const endpoints = plan.answer(variant, this.limit);
      decision = {
        service,
        endpoints,
        value: endpoints.map((e) => e.destination).join(','),
        encoded: [],
      };
      shape.decisions[variant] = decision;
    }
    return decision;
  }

  /**
   * Like `decide` with another limit (RouteResponse's max_attempts): the same plan, so its
   * picks take their turn in the same rotation; the list itself is not memoised.
   */
  order(
    service: string,
    dynamic: boolean,
    candidates: readonly string[] | undefined,
    limit: number,
  ): EndpointEntry[] {
    const table = this.tables.get(service);
    if (!table) return [];
    const plan = this.shape(table, service, dynamic, candidates, undefined).plan;
    return plan ? plan.answer(plan.variants === 1 ? 0 : plan.next(), limit) : [];
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
    const memo = memoFor(table, pair, list !== undefined);
    const hit = memo.get(list ?? '');
    if (hit) return hit;
    const plan = this.pipelines[this.mode].plan(
      table,
      { candidates, dynamic, limit: this.limit },
      this.previousPlan(service, table, pair, list),
    );
    let none: Decision | undefined;
    if (plan) none = undefined;
    else if (candidates) {
      none = noEndpoint(
        service,
        `none of the ${candidates.length} endpoints in x-augur-endpoints is a healthy, fresh endpoint of service "${service}"`,
      );
    } else {
      none = noEndpoint(service, `no endpoint of service "${service}" is healthy and fresh`);
    }
    const shape: Shape = { plan, decisions: [], none };
    // Clearing also restarts the rotations of the shapes dropped; bounded memory matters more.
    if (list !== undefined && memo.size >= this.memoSize) memo.clear();
    memo.set(list ?? '', shape);
    return shape;
  }

  /** The plan of the same shape on the service's previous list version, if it had one. */
  private previousPlan(
    service: string,
    table: ServiceTable,
    pair: string,
    list: string | undefined,
  ): PickPlan | undefined {
    let seen = this.seen.get(service);
    if (!seen) this.seen.set(service, (seen = { current: table }));
    else if (seen.current !== table) {
      seen.previous = seen.current;
      seen.current = table;
    }
    if (!seen.previous) return undefined;
    return memoFor(seen.previous, pair, list !== undefined).get(list ?? '')?.plan;
  }
}

/** The memo keys of the (serving mode, dynamic routing) pairs. */
const SHAPE_KEYS: Record<ServingMode, readonly [string, string]> = {
  live: ['live|0', 'live|1'],
  'last-list': ['last-list|0', 'last-list|1'],
  'standard-order': ['standard-order|0', 'standard-order|1'],
};

/**
 * A table's shapes of one (mode, dynamic) pair: with a candidate list (keyed by the list) in
 * `listMemo`, bounded; without one (key '') in `memo`.
 */
function memoFor(table: ServiceTable, pair: string, withList: boolean): Map<string, Shape> {
  const memos = (withList ? table.listMemo : table.memo) as Map<string, Map<string, Shape>>;
  let memo = memos.get(pair);
  if (!memo) memos.set(pair, (memo = new Map()));
  return memo;
}

function noEndpoint(service: string, reason: string): Decision {
  return { service, endpoints: [], value: '', reason, encoded: [] };
}
