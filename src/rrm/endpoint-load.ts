import { smoothedLatency } from '../common/expected-delay.js';

/**
 * What the RRM knows of one endpoint from the requests it routed there (the in-band signals):
 * how many are in flight, and how long the recent ones took. Kept per destination (`ip:port`,
 * what Envoy names as `upstream.address`) across list versions, so a new version of the
 * prioritized list does not forget the requests still in flight.
 */
export class EndpointLoad {
  readonly destination: string;
  /** Requests routed here (picked by this RRM) whose response has not come back. */
  inFlight = 0;
  /**
   * Recent latency of its successful responses, seconds (an exponentially weighted mean of the
   * responses Envoy reported, smoothedLatency); NaN until the first.
   */
  latency = Number.NaN;
  /** Responses counted, and those that were failures (for metrics and tests). */
  responses = 0;
  failures = 0;

  constructor(destination: string) {
    this.destination = destination;
  }
}

/**
 * Every endpoint's EndpointLoad, by destination. The per-request cost is a counter: the router
 * resolves the EndpointLoad objects of a request shape once per list version, so the request
 * path reads and writes fields and never looks a destination up; only a response whose
 * endpoint is not the pick (a retry went to a fallback) costs a map lookup.
 */
export class EndpointLoads {
  private readonly byDestination = new Map<string, EndpointLoad>();

  /** The destination's EndpointLoad, created on first use. */
  of(destination: string): EndpointLoad {
    let load = this.byDestination.get(destination);
    if (!load) {
      load = new EndpointLoad(destination);
      this.byDestination.set(destination, load);
    }
    return load;
  }

  /** The destination's EndpointLoad if the RRM has one. */
  get(destination: string): EndpointLoad | undefined {
    return this.byDestination.get(destination);
  }

  /** A request was routed to `load`'s endpoint. */
  started(load: EndpointLoad): void {
    load.inFlight++;
  }

  /** A request routed to `load`'s endpoint is over (answered, reset, or given up on). */
  finished(load: EndpointLoad): void {
    if (load.inFlight > 0) load.inFlight--;
  }

  /**
   * A response came back from `served` after `latencySeconds`; `failed` for a failure (a 5xx, a
   * request the endpoint refused, an attempt Envoy had to retry elsewhere), which is counted but
   * leaves the latency alone: an endpoint that fails fast must not look fast. A failure does not
   * steer traffic away either: a request picked for an endpoint that failed stays counted in
   * flight there until the fallback that served it answers, so a dead endpoint keeps its share
   * and no more (never the pile-up of least-request balancers on fast failures) until the LPS
   * marks it failing; and an endpoint that refuses at its limit is already known to be full by
   * its requests in flight (steering away on refusals raised the flash crowd's p99 by 20 %, in
   * the simulator).
   */
  responded(served: EndpointLoad, latencySeconds: number, failed: boolean): void {
    served.responses++;
    if (failed) {
      served.failures++;
      return;
    }
    if (!(latencySeconds >= 0)) return;
    served.latency = smoothedLatency(served.latency, latencySeconds);
  }

  /**
   * Forgets the endpoints that are in no prioritized list any more and have nothing in flight
   * (an endpoint that comes back starts again from no latency).
   */
  retain(isListed: (destination: string) => boolean): void {
    for (const [destination, load] of this.byDestination) {
      if (load.inFlight === 0 && !isListed(destination)) this.byDestination.delete(destination);
    }
  }

  /** Requests in flight over every endpoint. */
  totalInFlight(): number {
    let n = 0;
    for (const load of this.byDestination.values()) n += load.inFlight;
    return n;
  }

  get size(): number {
    return this.byDestination.size;
  }
}
