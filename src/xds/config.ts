import { z } from 'zod';

/** Options of the xDS server; defaults live here and nowhere else. */
export const xdsConfigSchema = z
  .object({
    /** Serve ADS on augur's gRPC address. */
    enabled: z.boolean().default(true),
    /**
     * Seconds after start before the first snapshot: until then requests wait unanswered, so
     * clients that reconnect after an augur restart keep their last configuration while the
     * agents reconnect, instead of being told that every endpoint is gone. Seconds.
     */
    warmup: z.number().min(0).max(300).default(3),
    /**
     * Score changes are gathered for this long before a push, so one scoring tick (every service
     * at once) makes one snapshot; 0: until the end of the current turn of the event loop, which
     * holds a whole scoring pass of the LPS. Membership and state changes (an endpoint going stale
     * or failing) are pushed at once, not debounced. Milliseconds.
     */
    debounceMs: z.number().int().min(0).max(60_000).default(0),
    /**
     * A service's new weights are pushed only if at least this fraction of its traffic would go to
     * another endpoint (½ Σ |new share − pushed share|), or its membership changed: keeps Envoy
     * from being churned by every tick's noise. 0.02 = 2 % of the traffic moves.
     */
    hysteresis: z.number().min(0).max(1).default(0.02),
    /** A share w in [0,1] becomes the integer load_balancing_weight max(1, round(w × scale)). */
    weightScale: z.number().int().min(100).max(1_000_000).default(10_000),
    /** Node metadata key that names the kind of client (`envoy` or `grpc`), whatever its user agent. */
    clientKindMetadataKey: z.string().min(1).default('augur.client'),
    /** `node.user_agent_name`s that mean Envoy (case-insensitive). */
    envoyUserAgents: z.array(z.string().min(1)).default(['envoy']),
    /** The kind of a client neither rule above decides. */
    defaultClientKind: z.enum(['envoy', 'grpc']).default('grpc'),
    /**
     * Clusters for Envoy: `override_host` (the picker's choice, read from dynamic metadata
     * `envoy.lb`/`x-gateway-destination-endpoint`, falling back to least request with EDS weights;
     * Envoy ≥ 1.35) or `least_request` only.
     */
    envoyLbPolicy: z.enum(['override_host', 'least_request']).default('override_host'),
    /**
     * Clusters for proxyless gRPC clients: `augur` lists augur's per-call picker
     * (`augur_expected_delay`: the shortest expected delay from the published weights and the
     * client's own calls in flight and latencies; registered by `registerAugurBalancer()` from
     * `augur/grpc-lb`) first and weighted round robin between localities second, which clients
     * that did not register the picker use; `round_robin`: lb_policy ROUND_ROBIN alone (weighted
     * round robin between localities for every client).
     */
    grpcLbPolicy: z.enum(['augur', 'round_robin']).default('augur'),
    /** Envoy speaks HTTP/2 to the endpoints (gRPC backends) instead of HTTP/1.1. */
    envoyUpstreamHttp2: z.boolean().default(false),
    /** Connect timeout of every cluster, seconds. */
    connectTimeout: z.number().positive().default(1),
    /**
     * Most ADS streams open at once in all, whatever their connection or client (each Envoy or
     * proxyless gRPC client holds one); a further stream is refused with RESOURCE_EXHAUSTED when
     * it starts, and the client retries with its backoff. Bounds the memory many connections can
     * take (each connection is also limited to the gRPC server's SETTINGS_MAX_CONCURRENT_STREAMS).
     */
    maxStreams: z.number().int().positive().default(10_000),
    /**
     * Most ADS streams open at once from one client (src/common/peer.ts: its IP address, as for
     * lps.maxStreamsPerClient), so one client cannot take every place of maxStreams; a further
     * stream from it is refused with RESOURCE_EXHAUSTED when it starts.
     */
    maxStreamsPerClient: z.number().int().positive().default(1000),
  })
  .strict();

export type XdsConfig = z.infer<typeof xdsConfigSchema>;

/** Defaults, for callers that have no `xds` section. */
export function defaultXdsConfig(): XdsConfig {
  return xdsConfigSchema.parse({});
}
