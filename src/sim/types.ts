import type { Rng } from './rng.js';

/**
 * What a proxy can see of the fleet at the moment it routes a request. Each
 * proxy sees only its own in-flight counts, as an Envoy does; probes (Prequal)
 * may ask an endpoint for its own count and its recent latency.
 */
export interface FleetView {
  readonly endpoints: number;
  readonly proxies: number;
  /** Workers per endpoint: the cores its agent reports (each worker is one core). */
  readonly workers: number;
  /** Monitoring interval, seconds. */
  readonly interval: number;
  /** Mean service time of a request on an idle, unshared endpoint, seconds. */
  readonly serviceTime: number;
  /** Simulated time, seconds. */
  now(): number;
  /** Requests this proxy sent to the endpoint that have not completed. */
  proxyInflight(proxy: number, endpoint: number): number;
  /** Requests at the endpoint from every proxy (what a probe answers). */
  serverInflight(endpoint: number): number;
  /**
   * A probe's latency answer, seconds: the median latency of the endpoint's
   * recent requests that arrived when it had about as many in flight as now
   * (Prequal's server-side estimate).
   */
  latencyEstimate(endpoint: number): number;
}

/**
 * What the agents reported for one monitoring interval, one entry per
 * endpoint: what a real agent observes (host CPU, the endpoint's own CPU, the
 * requests it completed and their latency). Every policy gets the same reports
 * at the same moment (the end of the interval), so every policy sees the same
 * delayed signal.
 */
export interface IntervalReport {
  /** Index of the interval the report covers. */
  step: number;
  /**
   * Host CPU utilisation over the interval in [0,1], background load included:
   * 1 − c + own, where c is the endpoint's speed (the CPU left by the background).
   */
  utilisation: Float64Array;
  /**
   * The endpoint's own CPU over the interval, fraction of the host: c·B/(workers·T),
   * B the busy time of its workers (a worker at speed c does c CPU-seconds of work
   * per second busy).
   */
  ownCpu: Float64Array;
  /** Requests completed in the interval (a count; 0 is a real zero). */
  completed: Float64Array;
  /** Sum of the latencies of those requests, seconds. */
  latencySum: Float64Array;
  /** Requests completed per second. */
  qps: Float64Array;
  /** Mean latency of the requests completed in the interval, seconds (NaN if none). */
  latency: Float64Array;
  /** Requests rejected at the queue limit per second (the errors of gRFC A58). */
  errors: Float64Array;
}

/**
 * A routing policy: the proxies' load-balancing algorithm plus whatever
 * control plane feeds it weights. One instance serves all proxies of a run and
 * keeps per-proxy state itself.
 */
export interface RoutingPolicy {
  readonly name: string;
  /** Called once before the run. */
  init(view: FleetView, rng: Rng): void;
  /**
   * Called at the start of interval `step`, with the agents' reports of the
   * interval that just ended (undefined for the first). May be async: the
   * augur policy awaits the real Scorer.
   */
  onInterval(step: number, report: IntervalReport | undefined): void | Promise<void>;
  /** The endpoint for the next request through `proxy`. */
  pick(proxy: number): number;
  /**
   * The response to a request this policy routed reached its proxy, `latency` seconds after the
   * request arrived; `refused` when the endpoint turned it away at its queue limit (an immediate
   * 503). What a data plane that reports responses to its picker (Envoy's ext_proc response
   * phase) tells it; optional.
   */
  onResponse?(proxy: number, endpoint: number, latency: number, refused: boolean): void;
  /**
   * The traffic share of each endpoint the policy intends for the current
   * interval (weights normalised to sum 1), for the stability and swap figures;
   * undefined for policies without weights.
   */
  shares?(): Float64Array | undefined;
  /**
   * The policy's estimate of each endpoint's capacity (requests/s) for the
   * current interval, for the bias figures; undefined for policies without one.
   */
  capacities?(): Float64Array | undefined;
}
