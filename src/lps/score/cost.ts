/**
 * The CPU cost of one request, learnt from what an agent observes.
 *
 * Per interval an endpoint reports the CPU it used itself (its process tree or
 * cgroup, as a fraction of the host: `own`), the host's cores, the span the
 * sample covers and the requests it completed `n`. The work it did is
 * own × cores × span CPU-seconds, so its cost per request is
 *
 *   κ = Σ own·cores·span / Σ n
 *
 * a ratio of sums over the recent intervals (exponentially weighted by interval,
 * half-life `halfLife`), not a mean of per-interval ratios: an interval with
 * many requests says more than one with few, and the ratio of sums weighs them so.
 *
 * What must not bias it (issue 11):
 * - a nearly idle interval: fewer than `minRequests` completed requests are not
 *   learnt from. The process's fixed overhead (timers, GC) divided by a handful
 *   of requests would make the endpoint look expensive, it would get less
 *   traffic, and look more expensive still;
 * - a saturated interval: host CPU at or above `saturation` is not learnt from
 *   (contention inflates the CPU per request, and requests queue across the
 *   interval's boundary);
 * - an endpoint that got little traffic: its estimate is shrunk toward its
 *   service's pooled cost with the weight of `priorRequests` requests,
 *   κ_i = (W_i + m·κ_s) / (N_i + m), so until it has served a few hundred
 *   requests its cost is mostly the service's (replicas of one service cost
 *   about the same), and an endpoint that never served any simply has the
 *   service's cost.
 *
 * Where the agent does not report own CPU, the same estimator runs on the host's
 * CPU (`hostCpu`) instead: gRFC A58's requests per unit of utilisation, which
 * counts the background as the endpoint's own load. The two are kept apart
 * (separate sums, separate service pools) so that neither contaminates the other.
 */
export interface CostParams {
  /** Fewest requests an interval must complete for its cost to be learnt. */
  minRequests: number;
  /** Host CPU at or above which an interval is saturated and not learnt, (0,1]. */
  saturation: number;
  /** Half-life of the estimate, in learnt intervals. */
  halfLife: number;
  /** Weight of the service's cost in an endpoint's, in requests. */
  priorRequests: number;
}

export const DEFAULT_COST_PARAMS: CostParams = {
  minRequests: 20,
  saturation: 0.95,
  halfLife: 100,
  priorRequests: 1000,
};

/** One interval of one endpoint, as reported. */
export interface CostSample {
  /** Host CPU busy fraction, [0,1]. */
  hostCpu: number;
  /** The endpoint's own CPU, fraction of the host's; NaN when unknown. */
  ownCpu: number;
  /** Requests completed over the span; NaN when unknown. */
  requests: number;
  /** Seconds the sample covers. */
  span: number;
  /** Logical cores of the host. */
  cores: number;
}

/** Which CPU a cost was learnt from. */
export type CostSource = 'own' | 'host';

/**
 * Exponentially weighted work (CPU-seconds) and requests of one endpoint, per source. Four
 * plain number fields (one per source and sum), no nested objects: one is kept per endpoint.
 */
export class EndpointCost {
  private ownWork = 0;
  private ownRequests = 0;
  private hostWork = 0;
  private hostRequests = 0;

  constructor(private readonly params: CostParams = DEFAULT_COST_PARAMS) {}

  /** Learns from one interval if it qualifies; returns the source it learnt for, if any. */
  learn(s: CostSample): CostSource | undefined {
    const p = this.params;
    if (!(s.requests >= p.minRequests) || !(s.span > 0) || !(s.cores > 0)) return undefined;
    if (!(s.hostCpu < p.saturation)) return undefined;
    const decay = 2 ** (-1 / p.halfLife);
    if (Number.isFinite(s.ownCpu)) {
      this.ownWork = decay * this.ownWork + s.ownCpu * s.cores * s.span;
      this.ownRequests = decay * this.ownRequests + s.requests;
      return 'own';
    }
    this.hostWork = decay * this.hostWork + s.hostCpu * s.cores * s.span;
    this.hostRequests = decay * this.hostRequests + s.requests;
    return 'host';
  }

  /** What it has learnt, to be saved (cluster mode's checkpoints); `restore` takes it back. */
  toJSON(): CostState {
    return {
      work: { own: this.ownWork, host: this.hostWork },
      requests: { own: this.ownRequests, host: this.hostRequests },
    };
  }

  /** Takes back what `toJSON` saved; false (and nothing changed) if it is not such a state. */
  restore(state: unknown): boolean {
    if (!isCostState(state)) return false;
    this.ownWork = state.work.own;
    this.hostWork = state.work.host;
    this.ownRequests = state.requests.own;
    this.hostRequests = state.requests.host;
    return true;
  }

  /** Weighted CPU-seconds learnt for `source`. */
  work(source: CostSource): number {
    return source === 'own' ? this.ownWork : this.hostWork;
  }

  /** Weighted requests learnt for `source`. */
  requests(source: CostSource): number {
    return source === 'own' ? this.ownRequests : this.hostRequests;
  }

  /** Weighted CPU-seconds and requests learnt for `source`. */
  sums(source: CostSource): { work: number; requests: number } {
    return { work: this.work(source), requests: this.requests(source) };
  }

  /**
   * CPU-seconds per request for `source`, shrunk toward the service's cost
   * `prior` (undefined when the service has none); undefined when neither knows.
   */
  estimate(source: CostSource, prior: number | undefined): number | undefined {
    const w = this.work(source);
    const n = this.requests(source);
    if (prior !== undefined) {
      const m = this.params.priorRequests;
      return (w + m * prior) / (n + m);
    }
    return n > 0 && w > 0 ? w / n : undefined;
  }
}

/** An EndpointCost's learnt sums, as saved. */
export interface CostState {
  work: Record<CostSource, number>;
  requests: Record<CostSource, number>;
}

function isCostState(v: unknown): v is CostState {
  const sums = (o: unknown): boolean =>
    typeof o === 'object' &&
    o !== null &&
    (['own', 'host'] as const).every((k) => {
      const x = (o as Record<string, unknown>)[k];
      return typeof x === 'number' && Number.isFinite(x) && x >= 0;
    });
  return (
    typeof v === 'object' &&
    v !== null &&
    sums((v as CostState).work) &&
    sums((v as CostState).requests)
  );
}

/**
 * A service's pooled cost per source: the ratio of its endpoints' sums, so that
 * the endpoints that served most weigh most. Undefined when none has learnt.
 */
export function pooledCost(
  endpoints: Iterable<EndpointCost>,
  source: CostSource,
): number | undefined {
  let work = 0;
  let requests = 0;
  for (const e of endpoints) {
    work += e.work(source);
    requests += e.requests(source);
  }
  return requests > 0 && work > 0 ? work / requests : undefined;
}
