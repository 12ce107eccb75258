import type { EndpointLoad, EndpointLoads } from './endpoint-load.js';

/** One request the RRM routed, from its pick until its response (or its stream's end). */
export class RoutedRequest {
  readonly pick: EndpointLoad;
  readonly startedAtMs: number;
  /** False once the request's in-flight count has been given back. */
  open = true;

  constructor(pick: EndpointLoad, startedAtMs: number) {
    this.pick = pick;
    this.startedAtMs = startedAtMs;
  }
}

/** How a routed request ended, for metrics. */
export type RoutedOutcome = 'answered' | 'failed' | 'abandoned' | 'timed_out';

export interface RoutedRequestsOptions {
  loads: EndpointLoads;
  /**
   * A request still open this long after its pick no longer counts as in flight, seconds: the
   * bound on what a stream that is never answered nor closed can leak. Longer than any request
   * should take (the route's timeout with its retries).
   */
  timeoutSeconds: number;
  /** Milliseconds of a monotonic clock; default performance.now. */
  now?: () => number;
  onEnd?: (outcome: RoutedOutcome) => void;
}

/**
 * The requests the RRM routed and has not heard the end of: each counts one request in flight
 * at its pick until Envoy sends its response headers (ext_proc's response phase), its stream
 * ends without them (reset, cancelled, a data plane that does not send them), or it times out.
 * Each is given back exactly once, whichever comes first.
 */
export class RoutedRequests {
  private readonly options: RoutedRequestsOptions;
  private readonly now: () => number;
  private readonly open = new Set<RoutedRequest>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(options: RoutedRequestsOptions) {
    this.options = options;
    this.now = options.now ?? (() => performance.now());
  }

  /** A request was routed to `pick`: it counts as in flight there from now. */
  begin(pick: EndpointLoad): RoutedRequest {
    const request = new RoutedRequest(pick, this.now());
    this.options.loads.started(pick);
    this.open.add(request);
    return request;
  }

  /**
   * Its response headers came back from `served`: the endpoint Envoy says answered (the
   * `upstream.address` attribute, which is not the pick when a retry went to a fallback; the
   * pick when Envoy does not say), or undefined for one the RRM does not know. An answer from
   * another endpoint than the pick counts as a failure of the pick, a 5xx as a failure of
   * whoever sent it.
   */
  respond(request: RoutedRequest, served: EndpointLoad | undefined, status: number): void {
    if (!this.close(request)) return;
    const latency = (this.now() - request.startedAtMs) / 1000;
    const { loads } = this.options;
    const pickFailed = served !== request.pick;
    if (pickFailed) loads.responded(request.pick, latency, true);
    if (served) loads.responded(served, latency, status >= 500);
    this.options.onEnd?.(pickFailed || status >= 500 ? 'failed' : 'answered');
  }

  /** Its stream ended without response headers: the request is no longer counted. */
  abandon(request: RoutedRequest): void {
    if (this.close(request)) this.options.onEnd?.('abandoned');
  }

  /** Gives back every request older than the timeout. Returns how many. */
  sweep(): number {
    const oldest = this.now() - this.options.timeoutSeconds * 1000;
    let swept = 0;
    for (const request of this.open) {
      if (request.startedAtMs <= oldest && this.close(request)) {
        swept++;
        this.options.onEnd?.('timed_out');
      }
    }
    return swept;
  }

  /** Sweeps every `intervalMs` until `stop` (the timer does not keep the process alive). */
  startSweeping(intervalMs = 1000): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => this.sweep(), intervalMs);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /** Requests routed and not yet over. */
  get size(): number {
    return this.open.size;
  }

  private close(request: RoutedRequest): boolean {
    if (!request.open) return false;
    request.open = false;
    this.open.delete(request);
    this.options.loads.finished(request.pick);
    return true;
  }
}
