import {
  ExpectedDelayChooser,
  pickerWeights,
  smoothedLatency,
  type DelayCandidates,
  type DelaySignals,
} from '../common/expected-delay.js';

/**
 * What one gRPC client (one channel's `augur_expected_delay` policy) knows of one endpoint from
 * its own calls: how many are in flight, how long the recent ones took. Kept by endpoint across
 * xDS updates, so a new assignment does not forget the calls still in flight.
 */
export class EndpointStats implements DelaySignals {
  readonly key: string;
  inFlight = 0;
  /** Recent latency of its answered calls, seconds (smoothedLatency); NaN until the first. */
  latency = Number.NaN;
  /** Calls ended, and those that were failures (counted, latency left alone). */
  responses = 0;
  failures = 0;

  constructor(key: string) {
    this.key = key;
  }
}

/**
 * One pick's bookkeeping, from the pick to the end of the call. A pick counts in flight at once
 * (calls picked in one turn of the event loop must not all land on the same endpoint), but grpc-js
 * may pick and then not start the call (the subchannel left READY meanwhile and it picks again;
 * the call was cancelled first): a pick whose call has not started by the end of the turn is
 * uncounted (EndpointBook.settle), and counted again if its call starts later (call credentials
 * that took a while).
 */
export interface CallTicket {
  readonly stats: EndpointStats;
  counted: boolean;
  started: boolean;
  /** performance.now() when the call started. */
  startedAt: number;
}

/**
 * Every endpoint's EndpointStats for one client, by key (grpc-js's endpoint string; the
 * simulator's endpoint index), and the in-flight accounting of its calls.
 */
export class EndpointBook {
  private readonly byKey = new Map<string, EndpointStats>();
  private pending: CallTicket[] = [];

  /** The key's EndpointStats, created on first use. */
  of(key: string): EndpointStats {
    let stats = this.byKey.get(key);
    if (!stats) {
      stats = new EndpointStats(key);
      this.byKey.set(key, stats);
    }
    return stats;
  }

  /** Forgets the endpoints no longer listed that have nothing in flight. */
  retain(isListed: (key: string) => boolean): void {
    for (const [key, stats] of this.byKey)
      if (stats.inFlight === 0 && !isListed(key)) this.byKey.delete(key);
  }

  get size(): number {
    return this.byKey.size;
  }

  /** A call was sent to `stats`' endpoint (the simulator: it always starts). */
  started(stats: EndpointStats): void {
    stats.inFlight++;
  }

  /**
   * A call to `stats`' endpoint ended after `latencySeconds`; `failed`: it was not answered by
   * the endpoint (refused, unavailable, reset), which is counted but leaves the latency alone, so
   * an endpoint that fails fast does not look fast.
   */
  ended(stats: EndpointStats, latencySeconds: number, failed: boolean): void {
    if (stats.inFlight > 0) stats.inFlight--;
    stats.responses++;
    if (failed) {
      stats.failures++;
      return;
    }
    if (latencySeconds >= 0) stats.latency = smoothedLatency(stats.latency, latencySeconds);
  }

  /** A pick for `stats`' endpoint whose call may or may not start (grpc-js): counted now. */
  picked(stats: EndpointStats): CallTicket {
    stats.inFlight++;
    const ticket: CallTicket = { stats, counted: true, started: false, startedAt: 0 };
    this.pending.push(ticket);
    return ticket;
  }

  /** The ticket's call started on the endpoint. */
  callStarted(ticket: CallTicket, now: number): void {
    ticket.started = true;
    ticket.startedAt = now;
    if (!ticket.counted) {
      ticket.counted = true;
      ticket.stats.inFlight++;
    }
  }

  /** The ticket's call ended (after callStarted). */
  callEnded(ticket: CallTicket, now: number, failed: boolean): void {
    if (!ticket.counted) return;
    ticket.counted = false;
    this.ended(ticket.stats, (now - ticket.startedAt) / 1000, failed);
  }

  /** Picks since the last settle: whether any wait (the caller schedules settle once). */
  get unsettled(): boolean {
    return this.pending.length > 0;
  }

  /** Uncounts the picks made since the last settle whose calls have not started. */
  settle(): void {
    const pending = this.pending;
    this.pending = [];
    for (const t of pending) {
      if (t.started || !t.counted) continue;
      t.counted = false;
      if (t.stats.inFlight > 0) t.stats.inFlight--;
    }
  }
}

/**
 * The endpoints one picker chooses among, with their weights as the rule uses them (the
 * control plane's, floored; all equal without any) and their stats (same index).
 */
export class WeightedCandidates<T> implements DelayCandidates {
  readonly items: readonly T[];
  readonly loads: readonly EndpointStats[];
  readonly weights: number[];
  readonly cumulativeWeights: number[];

  constructor(items: readonly T[], loads: readonly EndpointStats[], rawWeights: readonly number[]) {
    if (items.length !== loads.length || items.length !== rawWeights.length)
      throw new RangeError('items, loads and weights must have the same length');
    this.items = items;
    this.loads = loads;
    this.weights = new Array<number>(items.length);
    this.cumulativeWeights = new Array<number>(items.length);
    pickerWeights(rawWeights, this.weights, this.cumulativeWeights);
  }
}

export interface AugurPickerOptions {
  /** Candidates considered per call (drawn by weight beyond it); default 16, as `rrm.pickSampleSize`. */
  sampleSize?: number;
  /** Uniform in [0, 1); default Math.random. */
  random?: () => number;
}

export const DEFAULT_SAMPLE_SIZE = 16;

/** The shared choice rule with the client's options. */
export function augurChooser(options: AugurPickerOptions = {}): ExpectedDelayChooser {
  return new ExpectedDelayChooser({
    sampleSize: options.sampleSize ?? DEFAULT_SAMPLE_SIZE,
    random: options.random,
  });
}

/**
 * The weight of each endpoint from what xDS gives a gRPC client: its locality's weight split
 * among the locality's endpoints by their own weights (`endpointWeight` is locality weight ×
 * endpoint weight, as @grpc/grpc-js-xds passes it). augur publishes one locality per endpoint, so
 * this is the locality weight. Endpoints without locality weights (no xDS) weigh 1.
 */
export function xdsWeights(
  endpoints: ReadonlyArray<{
    localityKey?: string;
    localityWeight?: number;
    endpointWeight?: number;
  }>,
): number[] {
  const withinSum = new Map<string, number>();
  const within = endpoints.map((e) => {
    const lw = e.localityWeight;
    if (!(typeof lw === 'number' && lw > 0)) return 0;
    const ew =
      typeof e.endpointWeight === 'number' && e.endpointWeight > 0 ? e.endpointWeight / lw : 1;
    const key = e.localityKey ?? '';
    withinSum.set(key, (withinSum.get(key) ?? 0) + ew);
    return ew;
  });
  return endpoints.map((e, i) => {
    const lw = e.localityWeight;
    if (!(typeof lw === 'number' && lw > 0)) return 1;
    return (lw * within[i]!) / withinSum.get(e.localityKey ?? '')!;
  });
}
