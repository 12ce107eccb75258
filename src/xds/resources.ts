import { isIP } from 'node:net';
import protobuf from 'protobufjs';
import { EndpointState, type PrioritizedEndpointList } from '../lps/types.js';
import type { ClientKind } from './client-kind.js';
import { encodedResource, type EncodedResource } from './snapshot.js';
import { TypeUrl, type ResourceTypeUrl } from './types.js';
import { encodeProtoJson, type TypeResolver } from './proto-json.js';

/**
 * Builders from prioritized endpoint lists to xDS resources, per augur service S:
 * - Cluster S: EDS over ADS. For gRPC clients ROUND_ROBIN (grpc-js-xds NACKs LEAST_REQUEST; it
 *   balances across localities by their weights). For Envoy the override-host policy (the RRM's
 *   pick, read from dynamic metadata) with weighted least request as its fallback, or weighted
 *   least request alone.
 * - ClusterLoadAssignment S: one locality per endpoint, the endpoint's share of traffic as both
 *   the locality's and the endpoint's load_balancing_weight (gRPC honours the former, Envoy the
 *   latter). Stale, failing and draining endpoints are left out rather than marked UNHEALTHY: a
 *   client then cannot send them anything whatever its panic threshold, and Envoy's override-host
 *   policy, which does not check health, skips a host that is not in the assignment.
 * - Listener S (an api_listener with an HttpConnectionManager and the router) and
 *   RouteConfiguration S (every path to cluster S), for proxyless gRPC clients on `xds:///S`.
 */

export interface ResourceBuildOptions {
  /** A share w in [0,1] becomes the weight max(1, round(w × weightScale)). */
  weightScale: number;
  /** Seconds. */
  connectTimeout: number;
  envoyLbPolicy: 'override_host' | 'least_request';
  envoyUpstreamHttp2: boolean;
}

/** Dynamic metadata the RRM writes and Envoy's override-host policy reads (Endpoint Picker Protocol). */
export const PICKER_METADATA_NAMESPACE = 'envoy.lb';
export const PICKER_METADATA_KEY = 'x-gateway-destination-endpoint';
const OVERRIDE_HOST_TYPE = 'envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost';

/** An endpoint as it is published: reachable at an IP literal, with its share of the service's traffic. */
export interface PublishedEndpoint {
  id: string;
  ip: string;
  port: number;
  /** Share of the service's traffic among published endpoints; they sum to 1. */
  share: number;
  region: string;
  zone: string;
  subZone: string;
}

/** States whose endpoints are published; stale, failing and draining ones leave at once. */
export function isServing(state: EndpointState): boolean {
  return (
    state === EndpointState.ENDPOINT_STATE_ACTIVE ||
    state === EndpointState.ENDPOINT_STATE_UNSPECIFIED
  );
}

/**
 * The endpoints of a list that clients may use, with shares renormalised among them (equal shares
 * when every weight is 0, e.g. before the LPS has data). `ipOf` maps an address to an IP literal
 * (itself if it is one); an endpoint it cannot map is left out and reported in `unresolved`.
 */
export function publishedEndpoints(
  list: PrioritizedEndpointList,
  ipOf: (address: string) => string | undefined = (a) => (isIP(a) ? a : undefined),
): { endpoints: PublishedEndpoint[]; unresolved: string[] } {
  const unresolved: string[] = [];
  const kept: Array<{ e: PrioritizedEndpointList['endpoints'][number]; ip: string }> = [];
  for (const e of list.endpoints) {
    if (!isServing(e.state)) continue;
    const ip = ipOf(e.address);
    if (!ip) {
      unresolved.push(e.endpointId);
      continue;
    }
    kept.push({ e, ip });
  }
  const total = kept.reduce((s, k) => s + Math.max(0, k.e.weight), 0);
  const endpoints = kept.map(({ e, ip }) => ({
    id: e.endpointId,
    ip,
    port: e.port,
    share: total > 0 ? Math.max(0, e.weight) / total : 1 / kept.length,
    region: e.locality?.region ?? '',
    zone: e.locality?.zone ?? '',
    subZone: e.locality?.subZone ?? '',
  }));
  return { endpoints, unresolved };
}

/** A share as an xDS weight: an integer ≥ 1 (0 would drop the locality in gRPC). */
export function weightOf(share: number, scale: number): number {
  return Math.max(1, Math.round(share * scale));
}

/**
 * Builds resources in Envoy's own notation (proto3 JSON, as in Envoy's YAML docs) and marshals
 * them through the strict proto-JSON walk, so a misspelt field fails loudly instead of vanishing.
 */
export class ResourceBuilder {
  private readonly resolver: TypeResolver;
  private readonly options: ResourceBuildOptions;
  /** Encoded LocalityLbEndpoints of the last build, by endpoint content. */
  private localityCache = new Map<string, Uint8Array>();
  /** Whether the override-host proto is known; without it Envoy clusters use least request alone. */
  readonly overrideHostAvailable: boolean;

  constructor(resolver: TypeResolver, options: ResourceBuildOptions) {
    this.resolver = resolver;
    this.options = options;
    this.overrideHostAvailable = resolver.findType(OVERRIDE_HOST_TYPE) !== undefined;
  }

  cluster(service: string, kind: ClientKind): EncodedResource {
    const cluster: Record<string, unknown> = {
      name: service,
      type: 'EDS',
      eds_cluster_config: { eds_config: adsConfigSource(), service_name: service },
      connect_timeout: duration(this.options.connectTimeout),
    };
    if (kind === 'grpc') {
      cluster.lb_policy = 'ROUND_ROBIN';
    } else {
      if (this.options.envoyLbPolicy === 'override_host' && this.overrideHostAvailable) {
        cluster.load_balancing_policy = {
          policies: [
            {
              typed_extension_config: {
                name: 'envoy.load_balancing_policies.override_host',
                typed_config: this.any(OVERRIDE_HOST_TYPE, {
                  override_host_sources: [
                    {
                      metadata: {
                        key: PICKER_METADATA_NAMESPACE,
                        path: [{ key: PICKER_METADATA_KEY }],
                      },
                    },
                  ],
                  fallback_policy: { policies: [this.leastRequestPolicy()] },
                }),
              },
            },
          ],
        };
      } else {
        cluster.lb_policy = 'LEAST_REQUEST';
      }
      if (this.options.envoyUpstreamHttp2) {
        cluster.typed_extension_protocol_options = {
          'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': this.any(
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
            { explicit_http_config: { http2_protocol_options: {} } },
          ),
        };
      }
    }
    return this.encode(TypeUrl.Cluster, service, cluster);
  }

  /**
   * One locality per endpoint. Its sub_zone is made unique (`<sub_zone>/<endpoint id>`, or the id
   * alone) because clients key localities by (region, zone, sub_zone) and would merge equal ones.
   *
   * This is the hot path (10,000 endpoints re-published on every change), so it is written on the
   * wire directly, and each endpoint's bytes are kept and reused while it is unchanged; the test
   * decodes the result with Envoy's protos to hold the field numbers to account.
   */
  endpoints(service: string, endpoints: readonly PublishedEndpoint[]): EncodedResource {
    const scale = this.options.weightScale;
    const parts: Uint8Array[] = [
      protobuf.Writer.create().uint32(tag(1, LEN)).string(service).finish(),
    ];
    const seen = new Map<string, Uint8Array>();
    for (const e of endpoints) {
      const weight = weightOf(e.share, scale);
      const key = `${e.id}\0${e.ip}\0${e.port}\0${weight}\0${e.region}\0${e.zone}\0${e.subZone}`;
      let bytes = this.localityCache.get(key);
      if (!bytes) bytes = encodeLocalityEndpoint(e, weight);
      seen.set(key, bytes);
      parts.push(bytes);
    }
    this.localityCache = seen;
    return encodedResource(TypeUrl.ClusterLoadAssignment, service, Buffer.concat(parts));
  }

  /** For gRPC clients dialling `xds:///<service>`: the listener is named as the target. */
  listener(service: string): EncodedResource {
    return this.encode(TypeUrl.Listener, service, {
      name: service,
      api_listener: {
        api_listener: this.any(
          'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
          {
            stat_prefix: service,
            rds: { config_source: adsConfigSource(), route_config_name: service },
            http_filters: [
              {
                name: 'envoy.filters.http.router',
                typed_config: this.any('envoy.extensions.filters.http.router.v3.Router', {}),
              },
            ],
          },
        ),
      },
    });
  }

  route(service: string): EncodedResource {
    return this.encode(TypeUrl.RouteConfiguration, service, {
      name: service,
      virtual_hosts: [
        {
          name: service,
          domains: ['*'],
          routes: [{ match: { prefix: '' }, route: { cluster: service } }],
        },
      ],
    });
  }

  private leastRequestPolicy(): Record<string, unknown> {
    return {
      typed_extension_config: {
        name: 'envoy.load_balancing_policies.least_request',
        typed_config: this.any(
          'envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest',
          {},
        ),
      },
    };
  }

  private any(typeName: string, value: Record<string, unknown>): Record<string, unknown> {
    return { '@type': `type.googleapis.com/${typeName}`, ...value };
  }

  private encode(
    typeUrl: ResourceTypeUrl,
    name: string,
    value: Record<string, unknown>,
  ): EncodedResource {
    const typeName = typeUrl.slice(typeUrl.indexOf('/') + 1);
    const type = this.resolver.findType(typeName);
    if (!type) throw new Error(`Envoy proto type ${typeName} is not loaded`);
    return encodedResource(typeUrl, name, encodeProtoJson(type, value, this.resolver));
  }
}

function adsConfigSource(): Record<string, unknown> {
  return { ads: {}, resource_api_version: 'V3' };
}

function duration(seconds: number): string {
  return `${Number(seconds.toFixed(9))}s`;
}

const LEN = 2;
const VARINT = 0;
const tag = (field: number, wireType: number): number => (field << 3) | wireType;
/** envoy.config.core.v3.HealthStatus.HEALTHY */
const HEALTHY = 1;

/**
 * ClusterLoadAssignment.endpoints[] entry (field 2), a LocalityLbEndpoints:
 * locality = 1 {region = 1, zone = 2, sub_zone = 3}; lb_endpoints = 2 {endpoint = 1 {address = 1
 * {socket_address = 1 {address = 2, port_value = 3}}}, health_status = 2,
 * load_balancing_weight = 4 {value = 1}}; load_balancing_weight = 3 {value = 1}.
 */
function encodeLocalityEndpoint(e: PublishedEndpoint, weight: number): Uint8Array {
  const w = protobuf.Writer.create();
  w.uint32(tag(2, LEN)).fork();
  w.uint32(tag(1, LEN)).fork();
  if (e.region) w.uint32(tag(1, LEN)).string(e.region);
  if (e.zone) w.uint32(tag(2, LEN)).string(e.zone);
  w.uint32(tag(3, LEN)).string(e.subZone ? `${e.subZone}/${e.id}` : e.id);
  w.ldelim();
  w.uint32(tag(2, LEN)).fork();
  w.uint32(tag(1, LEN)).fork().uint32(tag(1, LEN)).fork().uint32(tag(1, LEN)).fork();
  w.uint32(tag(2, LEN)).string(e.ip);
  if (e.port) w.uint32(tag(3, VARINT)).uint32(e.port);
  w.ldelim().ldelim().ldelim();
  w.uint32(tag(2, VARINT)).uint32(HEALTHY);
  w.uint32(tag(4, LEN)).fork().uint32(tag(1, VARINT)).uint32(weight).ldelim();
  w.ldelim();
  w.uint32(tag(3, LEN)).fork().uint32(tag(1, VARINT)).uint32(weight).ldelim();
  w.ldelim();
  return w.finish();
}
