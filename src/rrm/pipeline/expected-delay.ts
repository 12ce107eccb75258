import type { CandidateSet, EndpointPicker } from './types.js';

export interface ExpectedDelayOptions {
  /**
   * A service with more candidates than this has this many drawn per request, in proportion to
   * their weights (without repeats); with this many or fewer, every candidate is considered.
   */
  sampleSize: number;
  /** Uniform in [0, 1); default Math.random (the simulator passes its seeded generator). */
  random?: () => number;
}

/** Below this a latency is read as this: a zero would make an endpoint's expected delay zero. */
const MIN_LATENCY_SECONDS = 1e-6;

/**
 * Join the shortest expected delay, with the forecast as the prior and the in-band signals as
 * the evidence. For each candidate:
 *
 *     expected delay = (requests in flight + 1) / weight × √(recent latency)
 *
 * - requests in flight: the ones this RRM routed there and has not seen answered (Envoy sends
 *   the response headers of each routed request back through ext_proc; see RoutedRequests);
 * - weight: the LPS's share for the endpoint, which estimates its capacity over the interval
 *   ahead (a forecast), so (in flight + 1) / weight is the queue in units of that capacity;
 * - recent latency: of its responses as Envoy reported them (an endpoint without any yet is
 *   given the candidates' mean). It corrects the forecast where the forecast is wrong (a
 *   capacity that changed within the interval, a biased estimate). Its square root, because a
 *   latency measures the endpoint's queue as well as its speed, and the queue is already
 *   counted by the requests in flight: tuned in the simulator (`augur-envoy-rrm`, src/sim),
 *   the exponent 1/2 beat 1 and 3/4 on most scenarios and lost to none by more than 3 %.
 *
 * The pick is the candidate with the smallest, the first in Load Score order on a tie. Each pick
 * counts at once (the router counts it in flight before the next request is picked), so
 * simultaneous requests spread out instead of herding onto the same endpoint.
 *
 * Candidates: all of them up to `sampleSize` (one pass, a few ns each), else `sampleSize` drawn
 * in proportion to weight, so a large service costs O(sampleSize × log n) per request and the
 * forecast also decides which endpoints are looked at.
 */
export class ExpectedDelayPicker implements EndpointPicker {
  readonly name = 'expected-delay';
  private readonly sampleSize: number;
  private readonly random: () => number;
  /** The drawn candidates' indices (reused: picks run one at a time). */
  private readonly drawn: Int32Array;

  constructor(options: ExpectedDelayOptions) {
    if (!(options.sampleSize >= 1)) throw new RangeError('sampleSize must be at least 1');
    this.sampleSize = Math.floor(options.sampleSize);
    this.random = options.random ?? Math.random;
    this.drawn = new Int32Array(this.sampleSize);
  }

  pick(candidates: CandidateSet): number {
    const n = candidates.entries.length;
    if (n <= 1) return 0;
    if (n <= this.sampleSize) return this.shortest(candidates, undefined, n);
    return this.shortest(candidates, this.drawn, this.draw(candidates));
  }

  /** The index with the shortest expected delay among the first `count` of `among` (or all). */
  private shortest(c: CandidateSet, among: Int32Array | undefined, count: number): number {
    const { loads, weights } = c;
    let known = 0;
    let sum = 0;
    for (let k = 0; k < count; k++) {
      const latency = loads[among ? among[k]! : k]!.latency;
      if (latency === latency) {
        sum += latency;
        known++;
      }
    }
    const typical = known > 0 ? sum / known : 1;
    let best = among ? among[0]! : 0;
    let bestDelay = Infinity;
    for (let k = 0; k < count; k++) {
      const i = among ? among[k]! : k;
      const load = loads[i]!;
      const latency = load.latency === load.latency ? load.latency : typical;
      const delay =
        ((load.inFlight + 1) / weights[i]!) * Math.sqrt(Math.max(latency, MIN_LATENCY_SECONDS));
      if (delay < bestDelay || (delay === bestDelay && i < best)) {
        best = i;
        bestDelay = delay;
      }
    }
    return best;
  }

  /** Draws up to `sampleSize` distinct indices in proportion to weight into `drawn`; how many. */
  private draw(c: CandidateSet): number {
    const cumulative = c.cumulativeWeights;
    const n = cumulative.length;
    const total = cumulative[n - 1]!;
    const drawn = this.drawn;
    let count = 0;
    // Repeats are drawn again; the bound keeps a few heavy endpoints from looping for long.
    for (let tries = 0; count < drawn.length && tries < 4 * drawn.length; tries++) {
      const r = this.random() * total;
      let lo = 0;
      let hi = n - 1;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (cumulative[mid]! > r) hi = mid;
        else lo = mid + 1;
      }
      let repeat = false;
      for (let k = 0; k < count; k++) if (drawn[k] === lo) repeat = true;
      if (!repeat) drawn[count++] = lo;
    }
    return count;
  }
}
