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
 * A picker orders the filtered endpoints and cuts the list to `request.limit`: the first
 * is the pick, the rest are the fallbacks in the order they should be tried. Contract:
 * returns a new array (callers may keep it), never more than `request.limit` entries,
 * each entry at most once.
 */
export interface EndpointPicker {
  readonly name: string;
  pick(
    entries: readonly EndpointEntry[],
    scores: Float64Array | undefined,
    request: PickRequest,
  ): EndpointEntry[];
}
