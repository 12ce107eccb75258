import type { EndpointLoad } from '../endpoint-load.js';
import type { EndpointEntry } from '../endpoint-table.js';

/** What one request asks of the picker pipeline. */
export interface PickRequest {
  /**
   * The caller's candidate ids in the caller's order (`x-augur-endpoints`), or undefined
   * for every endpoint of the service.
   */
  readonly candidates: readonly string[] | undefined;
  /** True: routed by the LPS (picked, fallbacks by Load Score). False: the caller's order. */
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
 * A scorer rates one endpoint for one request; the fallbacks of a routed request follow its
 * scores, best first. Contract: returns a number in [0,1], higher is better; pure (same
 * inputs, same score) and cheap: it runs per candidate.
 */
export interface EndpointScorer {
  readonly name: string;
  score(entry: EndpointEntry, request: PickRequest): number;
}

/**
 * The endpoints that may take the requests of one shape (dynamic or not, candidate list) on
 * one list version, in the order the fallbacks are tried: best score first for a routed
 * request, the caller's order otherwise. The router builds it once per list version and shape.
 */
export interface CandidateSet {
  readonly entries: readonly EndpointEntry[];
  /** What the RRM knows of each entry's requests in flight and latency (same index). */
  readonly loads: readonly EndpointLoad[];
  /**
   * The entries' weights as the pickers use them: the LPS's share, floored so that no
   * candidate is starved (an endpoint without traffic would never show it could take some),
   * or all equal when the LPS gives none (same index).
   */
  readonly weights: readonly number[];
  /** Running sums of `weights`, for draws in proportion to weight (the last is the total). */
  readonly cumulativeWeights: readonly number[];
}

/**
 * A picker chooses the endpoint that takes one request; the others follow as fallbacks in the
 * candidates' order. It is the one stage that runs per request, in the style of the Gateway
 * API Inference Extension's picker. Contract: returns an index into `candidates.entries`
 * (which is never empty); may read the candidates' loads, never changes them.
 */
export interface EndpointPicker {
  readonly name: string;
  pick(candidates: CandidateSet, request: PickRequest): number;
}
