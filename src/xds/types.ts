/** Type URLs of the resources augur serves, and the order in which they are pushed. */
export const TypeUrl = {
  Cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  ClusterLoadAssignment: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  Listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  RouteConfiguration: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
} as const;

export type ResourceTypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];

/**
 * Make before break: a client must know a Cluster before the Endpoints that fill it, and a
 * Listener before the Routes it names; a snapshot change is pushed to each stream in this order.
 */
export const PUSH_ORDER: readonly ResourceTypeUrl[] = [
  TypeUrl.Cluster,
  TypeUrl.ClusterLoadAssignment,
  TypeUrl.Listener,
  TypeUrl.RouteConfiguration,
];

/**
 * CDS and LDS responses carry the full state: a resource missing from one is deleted by the
 * client. EDS and RDS responses carry only what changed among the names asked for.
 */
export function isFullState(typeUrl: string): boolean {
  return typeUrl === TypeUrl.Cluster || typeUrl === TypeUrl.Listener;
}

/** A Cluster change must be followed by its endpoints, a Listener change by its routes. */
export const DEPENDENT_TYPE: Readonly<Partial<Record<string, ResourceTypeUrl>>> = {
  [TypeUrl.Cluster]: TypeUrl.ClusterLoadAssignment,
  [TypeUrl.Listener]: TypeUrl.RouteConfiguration,
};

export function isKnownTypeUrl(typeUrl: string): typeUrl is ResourceTypeUrl {
  return (PUSH_ORDER as readonly string[]).includes(typeUrl);
}
