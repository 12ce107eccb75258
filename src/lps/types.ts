import type { Capacity, Locality } from '../gen/augur/v1/common.js';
import { EndpointState } from '../gen/augur/v1/common.js';
import type { PrioritizedEndpointList, ScoreParts } from '../gen/augur/v1/load_prediction.js';
import type { SampleRing } from './ring.js';

export { EndpointState };
export type { PrioritizedEndpointList, ScoreParts };

/** What the LPS knows of one endpoint. Owned and mutated by the EndpointStore only. */
export interface EndpointRecord {
  readonly id: string;
  service: string;
  address: string;
  port: number;
  locality: Locality;
  labels: Record<string, string>;
  capacity: Capacity;
  /** Monitoring interval the agent was told to use, seconds. */
  interval: number;
  /** The interval was set by an operator (SetMonitoringInterval) and outlives the agent's own request. */
  intervalPinned: boolean;
  /** An agent stream for the endpoint is open. */
  connected: boolean;
  /** The agent said goodbye (closed its stream cleanly); the endpoint is leaving. */
  draining: boolean;
  /** Highest sequence stored. */
  lastSequence: number;
  /** LPS clock of the last accepted sample or hello, ms. */
  lastSeenMs: number;
  /** LPS clock when its last stream ended, ms; 0 while one is open or none ended in this process. */
  leftAtMs: number;
  samplesStored: number;
  /**
   * The store's scoring round in which this endpoint last reported (EndpointStore.markRound);
   * the store's own records start at -1, records made elsewhere may leave it out.
   */
  reportRound?: number;
  readonly series: SampleRing;
}

/** How one endpoint is judged at one moment; both numbers come from the same forecasts. */
export interface Assessment {
  /** Load Score in [0,1]: orders endpoints (pick and fallback order). */
  score: number;
  /**
   * Relative capacity over the next interval, >= 0, not normalised: the share of
   * traffic the endpoint should take is its weight over the service's sum.
   */
  weight: number;
  parts: ScoreParts;
}

/**
 * Turns endpoints' histories into assessments, once per scoring tick, for all
 * endpoints of all services at once (so a forecaster can batch its inference).
 * Stale, failing and draining endpoints are passed in too: the scorer must give
 * them score 0 and weight 0.
 */
export interface Scorer {
  /**
   * The map and its assessments may be the scorer's own, written again by the next call (no new
   * objects per endpoint each tick): read or copy what must outlive the tick before calling again.
   */
  assess(
    endpoints: readonly EndpointRecord[],
    states: ReadonlyMap<string, EndpointState>,
    nowMs: number,
  ): Map<string, Assessment> | Promise<Map<string, Assessment>>;
}

/**
 * A scorer whose learnt state per endpoint can be saved and restored in another process (cluster
 * mode: a service's new owner resumes warm). The state is JSON, and holds what replaying the
 * endpoint's recent history does not rebuild.
 */
export interface CheckpointableScorer {
  /** The state of these endpoints (those it knows). */
  checkpoint(endpointIds: readonly string[]): Record<string, unknown>;
  /**
   * Restores what `checkpoint` saved: at once for the endpoints it knows, and for the others as
   * they arrive (so a new owner can restore before it replays their history and score once);
   * returns how many entries were valid.
   */
  restore(state: Readonly<Record<string, unknown>>): number;
}

/**
 * Where prioritized lists come from. Implemented in-process by the LPS's
 * Prioritizer and remotely by a WatchPrioritizedEndpoints client; the xDS
 * server and the RRM read through it.
 */
export interface PrioritizedListSource {
  /** The newest list of a service, or undefined if the service is unknown. */
  get(service: string): PrioritizedEndpointList | undefined;
  /** Every service with a list. */
  services(): string[];
  /**
   * Calls `listener` with each new list (full state of one service) from now on.
   * A list with no endpoints means the service has none left. Returns the
   * function that unsubscribes.
   */
  subscribe(listener: (list: PrioritizedEndpointList) => void): () => void;
}
