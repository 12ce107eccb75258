import { fromJson, toBinary, type FileRegistry, type JsonObject } from '@bufbuild/protobuf';
import { WireType } from '@bufbuild/protobuf/wire';
import { isIP } from 'node:net';
import { EndpointState, type PrioritizedEndpointList } from '../lps/types.js';
import type { ClientKind } from './client-kind.js';
import { messageType } from './envoy-registry.js';
import { encodedResource, type EncodedResource } from './snapshot.js';
import { TypeUrl, type ResourceTypeUrl } from './types.js';

/**
 * Builders from prioritized endpoint lists to xDS resources, per augur service S:
 * - Cluster S: EDS over ADS. For gRPC clients (`xds.grpcLbPolicy: augur`) a load_balancing_policy
 *   list (gRFC A52): first augur's own per-call picker (`augur_expected_delay`, src/grpc-lb, as an
 *   xds.type.v3.TypedStruct), then weighted round robin between localities (wrr_locality over
 *   round_robin) for clients that have not registered it (grpc-js-xds skips a TypedStruct policy
 *   it does not know); with `round_robin`, lb_policy ROUND_ROBIN alone (grpc-js-xds NACKs
 *   LEAST_REQUEST; it balances across localities by their weights). For Envoy the override-host policy (the RRM's
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
  /** gRPC clusters: augur's picker first, then wrr_locality (`augur`, the default), or ROUND_ROBIN. */
  grpcLbPolicy?: 'augur' | 'round_robin';
}

/** The LB policy of gRPC clients that registered it (src/grpc-lb: `augur_expected_delay`). */
export const AUGUR_GRPC_LB_TYPE_URL = 'type.googleapis.com/augur_expected_delay';
const TYPED_STRUCT_TYPE = 'xds.type.v3.TypedStruct';
const WRR_LOCALITY_TYPE = 'envoy.extensions.load_balancing_policies.wrr_locality.v3.WrrLocality';
const ROUND_ROBIN_TYPE = 'envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin';

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
 * when every weight is 0, e.g. before the LPS has data). Clients need IP literals: the LPS
 * publishes each endpoint's (`ip`, resolved from a host name there); an endpoint without one is
 * left out and reported in `unresolved`.
 */
export function publishedEndpoints(list: PrioritizedEndpointList): {
  endpoints: PublishedEndpoint[];
  unresolved: string[];
} {
  const unresolved: string[] = [];
  const kept: Array<{ e: PrioritizedEndpointList['endpoints'][number]; ip: string }> = [];
  for (const e of list.endpoints) {
    if (!isServing(e.state)) continue;
    const ip = e.ip || (isIP(e.address) ? e.address : '');
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
 * them with @bufbuild/protobuf's strict JSON reader, so a misspelt field fails loudly instead of
 * vanishing.
 */
export class ResourceBuilder {
  private readonly registry: FileRegistry;
  private readonly options: ResourceBuildOptions;
  /** The weight-independent bytes of each endpoint of the last build, by endpoint content. */
  private readonly fixedCache = new Map<string, Map<string, CachedParts>>();
  /** Whether the override-host proto is known; without it Envoy clusters use least request alone. */
  readonly overrideHostAvailable: boolean;

  constructor(registry: FileRegistry, options: ResourceBuildOptions) {
    this.registry = registry;
    this.options = options;
    this.overrideHostAvailable = registry.getMessage(OVERRIDE_HOST_TYPE) !== undefined;
  }

  cluster(service: string, kind: ClientKind): EncodedResource {
    const cluster: JsonObject = {
      name: service,
      type: 'EDS',
      eds_cluster_config: { eds_config: adsConfigSource(), service_name: service },
      connect_timeout: duration(this.options.connectTimeout),
    };
    if (kind === 'grpc') {
      if ((this.options.grpcLbPolicy ?? 'augur') === 'augur') {
        cluster.load_balancing_policy = { policies: this.grpcPolicies() };
      } else {
        cluster.lb_policy = 'ROUND_ROBIN';
      }
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
   * Rebuilt on every weight change, so it is the one resource written on the wire by hand, with
   * each endpoint's bytes kept and reused while its place is unchanged. Measured in one run
   * (BENCHMARKS.md, xDS): at 10,000 endpoints it takes a fraction of encoding the same message with
   * @bufbuild/protobuf (which is itself faster than protobufjs there); at 1,000 the three are within
   * a few ms of each other. The tests decode the result with Envoy's protos to hold the field
   * numbers to account.
   */
  endpoints(service: string, endpoints: readonly PublishedEndpoint[]): EncodedResource {
    const scale = this.options.weightScale;
    const fixed: FixedParts[] = new Array<FixedParts>(endpoints.length);
    const weights: number[] = new Array<number>(endpoints.length);
    // Per service, by endpoint id: the bytes of each endpoint while its place is unchanged. In
    // the common push (weights moved, nobody joined or left) nothing here is allocated.
    const known = this.fixedCache.get(service);
    let same = known !== undefined && known.size === endpoints.length;
    for (let i = 0; i < endpoints.length; i++) {
      const e = endpoints[i]!;
      const c = known?.get(e.id);
      if (c && samePlace(c.place, e)) {
        fixed[i] = c.parts;
      } else {
        fixed[i] = fixedParts(e);
        same = false;
      }
      weights[i] = weightOf(e.share, scale);
    }
    if (!same) {
      const next = new Map<string, CachedParts>();
      for (let i = 0; i < endpoints.length; i++) {
        const e = endpoints[i]!;
        next.set(e.id, { place: e, parts: fixed[i]! });
      }
      this.fixedCache.set(service, next);
    }
    return encodedResource(
      TypeUrl.ClusterLoadAssignment,
      service,
      encodeAssignment(service, fixed, weights),
    );
  }

  /** Drops what `endpoints` kept for a service that is gone. */
  forget(service: string): void {
    this.fixedCache.delete(service);
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

  /**
   * augur's picker, then weighted round robin between localities. The TypedStruct's value is an
   * empty Struct (the client's defaults; grpc-js-xds refuses a TypedStruct without a value).
   */
  private grpcPolicies(): JsonObject[] {
    return [
      {
        typed_extension_config: {
          name: 'augur.grpc_lb.expected_delay',
          typed_config: this.any(TYPED_STRUCT_TYPE, {
            type_url: AUGUR_GRPC_LB_TYPE_URL,
            value: {},
          }),
        },
      },
      {
        typed_extension_config: {
          name: 'envoy.load_balancing_policies.wrr_locality',
          typed_config: this.any(WRR_LOCALITY_TYPE, {
            endpoint_picking_policy: {
              policies: [
                {
                  typed_extension_config: {
                    name: 'envoy.load_balancing_policies.round_robin',
                    typed_config: this.any(ROUND_ROBIN_TYPE, {}),
                  },
                },
              ],
            },
          }),
        },
      },
    ];
  }

  private leastRequestPolicy(): JsonObject {
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

  private any(typeName: string, value: JsonObject): JsonObject {
    return { '@type': `type.googleapis.com/${typeName}`, ...value };
  }

  private encode(typeUrl: ResourceTypeUrl, name: string, value: JsonObject): EncodedResource {
    const desc = messageType(this.registry, typeUrl.slice(typeUrl.indexOf('/') + 1));
    const message = fromJson(desc, value, { registry: this.registry });
    return encodedResource(typeUrl, name, toBinary(desc, message));
  }
}

function adsConfigSource(): JsonObject {
  return { ads: {}, resource_api_version: 'V3' };
}

function duration(seconds: number): string {
  return `${Number(seconds.toFixed(9))}s`;
}

/*
 * ClusterLoadAssignment { cluster_name = 1; repeated LocalityLbEndpoints endpoints = 2 }
 * LocalityLbEndpoints { Locality locality = 1 {region = 1, zone = 2, sub_zone = 3};
 *   repeated LbEndpoint lb_endpoints = 2; UInt32Value load_balancing_weight = 3 }
 * LbEndpoint { Endpoint endpoint = 1 {Address address = 1 {SocketAddress socket_address = 1
 *   {address = 2, port_value = 3}}}; HealthStatus health_status = 2; UInt32Value load_balancing_weight = 4 }
 * Only the weights change from one push to the next, so the rest of each endpoint is encoded once
 * and the whole assignment is written into one buffer sized in a first pass.
 */
const LEN = WireType.LengthDelimited;
const VARINT = WireType.Varint;
const tag = (field: number, wireType: number): number => (field << 3) | wireType;
/** envoy.config.core.v3.HealthStatus.HEALTHY */
const HEALTHY = 1;

/** Where an endpoint is: what its fixed bytes depend on. */
export interface Place {
  ip: string;
  port: number;
  region: string;
  zone: string;
  subZone: string;
}

/** An endpoint's bytes, with the endpoint (its place) they were built from. */
interface CachedParts {
  place: Place;
  parts: FixedParts;
}

/** The same address and locality. */
export const samePlace = (a: Place, b: Place): boolean =>
  a.ip === b.ip &&
  a.port === b.port &&
  a.region === b.region &&
  a.zone === b.zone &&
  a.subZone === b.subZone;

interface FixedParts {
  /** `locality` field of LocalityLbEndpoints, tag and length included. */
  locality: Uint8Array;
  /** `endpoint` field of LbEndpoint, tag and length included. */
  endpoint: Uint8Array;
}

/** Bytes of a length-delimited field holding `len` bytes. */
const lenField = (len: number): number => 1 + varintSize(len) + len;

function putVarint(out: Buffer, pos: number, n: number): number {
  while (n > 0x7f) {
    out[pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  out[pos++] = n;
  return pos;
}

/** Writes field `field` (a string of `len` UTF-8 bytes) at `pos`; returns the position after. */
function putString(out: Buffer, pos: number, field: number, value: string, len: number): number {
  out[pos++] = tag(field, LEN);
  pos = putVarint(out, pos, len);
  return pos + out.write(value, pos, 'utf8');
}

/** An endpoint's locality and endpoint fields, sized first and written into one buffer each. */
function fixedParts(e: PublishedEndpoint): FixedParts {
  const subZone = e.subZone ? `${e.subZone}/${e.id}` : e.id;
  const region = e.region ? Buffer.byteLength(e.region) : -1;
  const zone = e.zone ? Buffer.byteLength(e.zone) : -1;
  const sub = Buffer.byteLength(subZone);
  const localityBody =
    (region >= 0 ? lenField(region) : 0) + (zone >= 0 ? lenField(zone) : 0) + lenField(sub);
  const locality = Buffer.allocUnsafe(lenField(localityBody));
  let pos = 0;
  locality[pos++] = tag(1, LEN);
  pos = putVarint(locality, pos, localityBody);
  if (region >= 0) pos = putString(locality, pos, 1, e.region, region);
  if (zone >= 0) pos = putString(locality, pos, 2, e.zone, zone);
  putString(locality, pos, 3, subZone, sub);

  const ip = Buffer.byteLength(e.ip);
  const socket = lenField(ip) + (e.port ? 1 + varintSize(e.port) : 0);
  const address = lenField(socket);
  const body = lenField(address);
  const endpoint = Buffer.allocUnsafe(lenField(body));
  pos = 0;
  for (const len of [body, address, socket]) {
    endpoint[pos++] = tag(1, LEN); // endpoint, address, socket_address
    pos = putVarint(endpoint, pos, len);
  }
  pos = putString(endpoint, pos, 2, e.ip, ip);
  if (e.port) {
    endpoint[pos++] = tag(3, VARINT);
    putVarint(endpoint, pos, e.port);
  }
  return { locality, endpoint };
}

const varintSize = (n: number): number =>
  n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;

function encodeAssignment(
  service: string,
  fixed: readonly FixedParts[],
  weights: readonly number[],
): Uint8Array {
  const name = Buffer.from(service);
  const sizes: Array<{ lb: number; lle: number }> = [];
  let total = 1 + varintSize(name.length) + name.length;
  for (let i = 0; i < fixed.length; i++) {
    const f = fixed[i]!;
    const wrapped = 1 + varintSize(weights[i]!); // UInt32Value { value = 1 }
    const lb = f.endpoint.length + 2 + (2 + wrapped);
    const lle = f.locality.length + (1 + varintSize(lb) + lb) + (2 + wrapped);
    sizes.push({ lb, lle });
    total += 1 + varintSize(lle) + lle;
  }
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  const varint = (n: number): void => {
    while (n > 0x7f) {
      out[pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    out[pos++] = n;
  };
  const bytes = (b: Uint8Array): void => {
    out.set(b, pos);
    pos += b.length;
  };
  const weight = (field: number, w: number): void => {
    out[pos++] = tag(field, LEN);
    out[pos++] = 1 + varintSize(w);
    out[pos++] = tag(1, VARINT);
    varint(w);
  };
  out[pos++] = tag(1, LEN);
  varint(name.length);
  bytes(name);
  for (let i = 0; i < fixed.length; i++) {
    const { lb, lle } = sizes[i]!;
    out[pos++] = tag(2, LEN);
    varint(lle);
    bytes(fixed[i]!.locality);
    out[pos++] = tag(2, LEN);
    varint(lb);
    bytes(fixed[i]!.endpoint);
    out[pos++] = tag(2, VARINT);
    out[pos++] = HEALTHY;
    weight(4, weights[i]!);
    weight(3, weights[i]!);
  }
  if (pos !== total)
    throw new Error(`ClusterLoadAssignment size mismatch: wrote ${pos} of ${total} bytes`);
  return out;
}
