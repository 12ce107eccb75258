import type { EndpointEntry } from '../endpoint-table.js';

/** What one request asks of the picker pipeline. */
export interface PickRequest {
  /**
   * The caller's candidate ids in the caller's order (`x-augur-endpoints`), or undefined
   * for every endpoint of the service.
   */
  readonly candidates: readonly string[] | undefined;
  /** True: best Load Score first. False: the caller's order (or the standard order). */
  readonly dynamic: boolean;
  /** Most endpoints to return: the pick plus its fallbacks (the retry budget). */
  readonly limit: number;
}

/**
 * A filter keeps the endpoints that may take the request and drops the others.
 * Contract: returns a subset of `entries` in the same relative order, never mutates
 * `entries`, and may return `entries` itself when it keeps everything.
 */
export interface EndpointFilter {
  readonly name: string;
  filter(entries: readonly EndpointEntry[], request: PickRequest): readonly EndpointEntry[];
}

/**
 * A scorer rates one endpoint for one request. Contract: returns a number in [0,1],
 * higher is better; pure (same inputs, same score) and cheap: it runs per candidate.
 */
export interface EndpointScorer {
  readonly name: string;
  score(entry: EndpointEntry, request: PickRequest): number;
}

/**
 * What a picker prepares once per list version and request shape (the router memoises it on
 * the table): the answers it gives, and which one the next request gets. A fixed order has
 * one answer; a rotating picker has one per endpoint that can be first.
 */
export interface PickPlan {
  /** How many distinct answers `answer` gives (at most the number of candidates). */
  readonly variants: number;
  /** The answer for the next request, in 0..variants-1; advances the plan's rotation, if any. */
  next(): number;
  /**
   * Answer `variant`: the pick, then the fallbacks in the order they should be tried, at most
   * `limit` entries, each at most once. A new array each call (callers may keep it).
   */
  answer(variant: number, limit: number): EndpointEntry[];
}

/**
 * A picker orders the filtered endpoints: the first is the pick, the rest are the fallbacks
 * in the order they should be tried. Contract: `pick` returns a new array (callers may keep
 * it), never more than `request.limit` entries, each entry at most once; `plan` returns what
 * successive `pick`s of the same request shape would give, uncut (its `answer` cuts).
 */
export interface EndpointPicker {
  readonly name: string;
  /** One answer for one request (a rotating picker's first answer). */
  pick(
    entries: readonly EndpointEntry[],
    scores: Float64Array | undefined,
    request: PickRequest,
  ): EndpointEntry[];
  /**
   * The answers for every request of this shape, for as long as the list version lasts.
   * `previous` is this shape's plan on the previous list version, if any, for a picker whose
   * plan has state worth continuing (a rotation).
   */
  plan(
    entries: readonly EndpointEntry[],
    scores: Float64Array | undefined,
    request: PickRequest,
    previous?: PickPlan,
  ): PickPlan;
}
