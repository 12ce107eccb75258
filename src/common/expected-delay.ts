/**
 * The expected-delay choice rule, shared by every augur picker that decides per request: the
 * RRM's (`rrm.dynamicPicker: expected-delay`, Envoy asking over ext_proc) and the gRPC client's
 * (`augur_expected_delay`, src/grpc-lb). Pure: it reads what the caller keeps of each endpoint
 * (requests in flight, recent latency) and the forecast weights, and names one candidate.
 */

/** What a picker knows of one endpoint from the requests it sent there (the in-band signals). */
export interface DelaySignals {
  /** Requests sent there whose response has not come back. */
  readonly inFlight: number;
  /** Recent latency of its successful responses, seconds (smoothedLatency); NaN until the first. */
  readonly latency: number;
}

/** The candidates of one pick: their signals and weights (same index). */
export interface DelayCandidates {
  readonly loads: readonly DelaySignals[];
  /** Weights as the rule uses them (pickerWeights: floored, or all equal without weights). */
  readonly weights: readonly number[];
  /** Running sums of `weights`, for draws in proportion to weight (the last is the total). */
  readonly cumulativeWeights: readonly number[];
}

export interface ExpectedDelayOptions {
  /**
   * With more candidates than this, this many are drawn per request in proportion to their
   * weights (without repeats); with this many or fewer, every candidate is considered.
   */
  sampleSize: number;
  /** Uniform in [0, 1); default Math.random (the simulator passes its seeded generator). */
  random?: () => number;
}

/** Below this a latency is read as this: a zero would make an endpoint's expected delay zero. */
const MIN_LATENCY_SECONDS = 1e-6;

/** Below this fraction of the candidates' mean weight, a weight is raised to it. */
export const MIN_WEIGHT_FRACTION = 0.01;

/** Weight of the newest response in an endpoint's latency: about the last ten responses count. */
export const LATENCY_SMOOTHING = 0.1;

/** An endpoint's recent latency after one more successful response (NaN `prior`: the first). */
export function smoothedLatency(prior: number, latencySeconds: number): number {
  return Number.isNaN(prior)
    ? latencySeconds
    : prior + LATENCY_SMOOTHING * (latencySeconds - prior);
}

/**
 * Raw weights (a control plane's shares, any scale) as the rule uses them, written into `weights`
 * and `cumulativeWeights` (same length as `raw`): each raised to MIN_WEIGHT_FRACTION of the mean
 * so that no candidate is starved (an endpoint without traffic would never show it could take
 * some), or all equal when no weight is positive.
 */
export function pickerWeights(
  raw: readonly number[],
  weights: number[],
  cumulativeWeights: number[],
): void {
  const n = raw.length;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const w = raw[i]!;
    if (w > 0 && Number.isFinite(w)) total += w;
  }
  const floor = total > 0 ? (MIN_WEIGHT_FRACTION * total) / n : 0;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const r = raw[i]!;
    const w = total > 0 ? Math.max(r > 0 && Number.isFinite(r) ? r : 0, floor) : 1 / n;
    weights[i] = w;
    cumulativeWeights[i] = sum += w;
  }
}

/**
 * Join the shortest expected delay, with the forecast as the prior and the in-band signals as
 * the evidence. For each candidate:
 *
 *     expected delay = (requests in flight + 1) / weight × √(recent latency)
 *
 * - requests in flight: the ones this picker sent there and has not seen answered;
 * - weight: the LPS's share for the endpoint, which estimates its capacity over the interval
 *   ahead (a forecast), so (in flight + 1) / weight is the queue in units of that capacity;
 * - recent latency: of its responses (an endpoint without any yet is given the candidates'
 *   mean; with none known at all the rule is weighted join-the-shortest-queue). It corrects the
 *   forecast where the forecast is wrong (a capacity that changed within the interval, a biased
 *   estimate). Its square root, because a latency measures the endpoint's queue as well as its
 *   speed, and the queue is already counted by the requests in flight: tuned in the simulator
 *   (`augur-envoy-rrm`, src/sim), the exponent 1/2 beat 1 and 3/4 on most scenarios and lost to
 *   none by more than 3 %.
 *
 * The pick is the candidate with the smallest, the first in the given order on a tie. Each pick
 * must be counted in flight by the caller before the next one, so simultaneous requests spread
 * out instead of herding onto the same endpoint.
 *
 * Candidates: all of them up to `sampleSize` (one pass, a few ns each), else `sampleSize` drawn
 * in proportion to weight, so a large service costs O(sampleSize × log n) per request and the
 * forecast also decides which endpoints are looked at.
 */
export class ExpectedDelayChooser {
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

  /** The index of the candidate to send the request to (0 when there is one or none). */
  pick(candidates: DelayCandidates): number {
    const n = candidates.loads.length;
    if (n <= 1) return 0;
    if (n <= this.sampleSize) return this.shortest(candidates, undefined, n);
    return this.shortest(candidates, this.drawn, this.draw(candidates));
  }

  /** The index with the shortest expected delay among the first `count` of `among` (or all). */
  private shortest(c: DelayCandidates, among: Int32Array | undefined, count: number): number {
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
  private draw(c: DelayCandidates): number {
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
