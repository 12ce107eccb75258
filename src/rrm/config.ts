import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { DEFAULT_ROUTE_RESPONSE_ALLOW, parseCidr } from './delivery-guard.js';

/**
 * Options of the Response Routing Module; defaults live here and nowhere else.
 *
 * Which service a request belongs to (see service-resolver.ts): `serviceByRoute[route]`,
 * then `serviceByCluster[cluster]`, then the cluster name itself when the LPS has a list of
 * that name (augur's xDS server names each cluster after its service), then the route name
 * likewise, then `defaultService`.
 */
export const rrmConfigSchema = z
  .object({
    /**
     * An extra address for Envoy's ext_proc streams only, served on node:http2 directly (about a
     * third of grpc-js's CPU per stream; see ext-proc/http2-listener.ts). HOST:PORT, port 0 for
     * any free one; empty: none (ext_proc is still served on the gRPC address either way).
     */
    extProcListen: z.string().default(''),
    /**
     * Processes that serve `extProcListen`, sharing its port (node:cluster hands each new
     * connection to the next worker): 1 serves it in this process; `auto`, one per core
     * available. Each worker keeps its own copy of the lists (a Watch stream to this process's
     * gRPC address) and counts the requests in flight of the connections it holds, as each of
     * Envoy's worker threads keeps its own least-request counts. Only with `extProcListen`.
     */
    extProcWorkers: z.union([z.literal('auto'), z.number().int().min(1).max(256)]).default(1),
    /**
     * ext_proc fast path: the largest request message accepted, bytes; a frame that declares more
     * is refused with RESOURCE_EXHAUSTED before any of it is kept.
     */
    extProcMaxMessageBytes: z
      .number()
      .int()
      .positive()
      .default(4 << 20),
    /**
     * ext_proc fast path: bytes of partly received messages all streams may hold together; a
     * stream whose next chunk would pass it is refused with RESOURCE_EXHAUSTED and its bytes
     * dropped.
     */
    extProcPartialBudgetBytes: z
      .number()
      .int()
      .positive()
      .default(16 << 20),
    /**
     * ext_proc fast path: a message still partly received this long after its first byte is
     * refused with DEADLINE_EXCEEDED and its bytes dropped, seconds.
     */
    extProcPartialTimeout: z.number().positive().default(10),
    /**
     * Most ext_proc streams open at once in one process, its two addresses together (the gRPC
     * address and `extProcListen`); Envoy holds one per HTTP request in flight, a routed one until
     * its response headers. A further stream is refused with RESOURCE_EXHAUSTED when it starts
     * (Envoy, with `failure_mode_allow`, sends that request on without a pick). Per process: with
     * `extProcWorkers` N > 1 each worker has its own, so the fast path holds up to N × maxStreams
     * and the primary's gRPC address maxStreams more.
     */
    maxStreams: z.number().int().positive().default(10_000),
    /**
     * Most ext_proc streams one client holds open at once in one process, its two addresses
     * together (src/common/peer.ts: the client's IP address, so every Envoy on one host, or
     * behind one NAT, counts together), so that one client cannot take every place of
     * maxStreams; a further stream from it is refused with RESOURCE_EXHAUSTED when it starts.
     * Per process, as maxStreams: each of `extProcWorkers` counts its own.
     */
    maxStreamsPerClient: z.number().int().positive().default(5_000),
    /** Whether a request without `x-augur-dynamic-routing` is routed by Load Score. */
    dynamicRoutingDefault: z.boolean().default(true),
    /**
     * How a routed request is picked: `expected-delay` takes the candidate with the shortest
     * expected delay, (requests in flight + 1) / weight × √(recent latency), from the LPS's
     * weights and what Envoy reports of the requests the RRM routed (ext_proc response headers);
     * `highest-score` always picks the best Load Score (the seed's literal rule; it herds every
     * request between two list versions onto one endpoint, see README.md). Fallbacks follow in
     * Load Score order either way.
     */
    dynamicPicker: z.enum(['expected-delay', 'highest-score']).default('expected-delay'),
    /**
     * `expected-delay` considers every candidate of a service with at most this many, and draws
     * this many in proportion to their weights (without repeats) in a larger one.
     */
    pickSampleSize: z.number().int().min(1).max(1000).default(16),
    /**
     * A routed request counts as in flight at its endpoint until Envoy sends its response
     * headers or closes its ext_proc stream; one still open this long after its pick stops
     * counting, seconds (the bound on what a stream that is never answered can leak; longer
     * than the route's timeout with its retries: Envoy's default route timeout is 15 s).
     */
    inFlightTimeout: z.number().positive().default(30),
    /** The service of a request whose route and cluster say nothing better. */
    defaultService: z.string().min(1).default('default'),
    /** Envoy route name (`xds.route_name`) to service. */
    serviceByRoute: z.record(z.string(), z.string().min(1)).default({}),
    /** Envoy cluster name (`xds.cluster_name`) to service. */
    serviceByCluster: z.record(z.string(), z.string().min(1)).default({}),
    /**
     * Fallbacks after the picked endpoint (Envoy's route `num_retries` should match):
     * a decision names at most 1 + fallbacks endpoints.
     */
    fallbacks: z.number().int().min(0).max(32).default(2),
    /** An endpoint whose last sample is older than this (as of its list) is not picked, seconds. */
    maxEndpointStaleness: z.number().positive().default(10),
    /** Most ids accepted in `x-augur-endpoints` (and in RouteResponse's endpoint_ids). */
    maxCandidates: z.number().int().positive().default(1000),
    /**
     * A monitoring interval asked for the same set of endpoints is forwarded to the LPS at most
     * once per this many seconds; asks in between are answered but not forwarded.
     */
    monitoringIntervalMinGap: z.number().nonnegative().default(10),
    /**
     * Whether a data-plane request may change monitoring intervals (`x-augur-monitoring-interval`,
     * RouteResponse's `monitoring_interval`): off, such asks are counted (`disabled`) and
     * otherwise ignored, as anyone who can send a request through Envoy could otherwise set the
     * interval of every endpoint. Within `lps.minInterval`..`lps.maxInterval` either way.
     */
    monitoringIntervalFromRequests: z.boolean().default(false),
    /** Endpoint sets whose last ask is remembered for the rate limit. */
    monitoringIntervalMemory: z.number().int().positive().default(10_000),
    /**
     * With a remote LPS (`augur rrm --lps`): once the watch stream has been down this long the
     * RRM reports the LPS unreachable (`augur_rrm_lps_reachable` 0) and keeps serving the last
     * lists, seconds.
     */
    lpsUnreachableAfter: z.number().positive().default(5),
    /**
     * ... and once it has been down this long the lists are too old to trust: the RRM serves the
     * standard order (the caller's list, or the order endpoints were first seen), seconds.
     */
    lpsStandardOrderAfter: z.number().positive().default(60),
    /** Reconnect backoff of the watch stream: first delay and cap, seconds (with jitter). */
    lpsReconnectInitial: z.number().positive().default(0.2),
    lpsReconnectMax: z.number().positive().default(10),
    /** RouteResponse: default time per delivery attempt, seconds. */
    deliveryTimeout: z.number().positive().default(2),
    /**
     * RouteResponse delivers only to endpoint addresses inside these CIDRs (every address a host
     * name resolves to must be), and never to augur's own listening addresses. Default: the
     * private and loopback ranges.
     */
    routeResponseAllow: z
      .array(
        z.string().superRefine((cidr, ctx) => {
          try {
            parseCidr(cidr);
          } catch (err) {
            ctx.addIssue({ code: 'custom', message: (err as Error).message });
          }
        }),
      )
      .default([...DEFAULT_ROUTE_RESPONSE_ALLOW]),
    /** RouteResponse: the most bytes of an endpoint's answer returned; the rest is not read. */
    routeResponseMaxResponseBytes: z
      .number()
      .int()
      .positive()
      .default(1 << 20),
    /** RouteResponse: largest payload accepted, bytes. */
    maxPayloadBytes: z
      .number()
      .int()
      .positive()
      .default(4 << 20),
  })
  .strict()
  .refine((c) => c.lpsStandardOrderAfter >= c.lpsUnreachableAfter, {
    message: 'lpsStandardOrderAfter must be >= lpsUnreachableAfter',
  });

export type RrmConfig = z.infer<typeof rrmConfigSchema>;

/** How many processes serve the ext_proc fast path (`rrm.extProcWorkers`; 0 without one). */
export function extProcWorkerCount(
  rrm: Pick<RrmConfig, 'extProcListen' | 'extProcWorkers'>,
): number {
  if (!rrm.extProcListen) return 0;
  return rrm.extProcWorkers === 'auto' ? availableParallelism() : rrm.extProcWorkers;
}
