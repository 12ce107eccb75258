/** The Envoy request attributes the RRM asks for (ext_proc `request_attributes`). */
export const ROUTE_NAME_ATTRIBUTE = 'xds.route_name';
export const CLUSTER_NAME_ATTRIBUTE = 'xds.cluster_name';
/** Envoy puts the attributes of an ext_proc request under the filter's name. */
export const EXT_PROC_ATTRIBUTE_NAMESPACE = 'envoy.filters.http.ext_proc';

export interface ServiceResolverOptions {
  serviceByRoute: Readonly<Record<string, string>>;
  serviceByCluster: Readonly<Record<string, string>>;
  defaultService: string;
}

/**
 * Which service an Envoy request belongs to, from its route and cluster names:
 *  1. `serviceByRoute[route]`, 2. `serviceByCluster[cluster]`,
 *  3. the cluster name itself if the LPS has a list of that name (augur's xDS server names
 *     each cluster after its service), 4. the route name likewise, 5. `defaultService`.
 */
export class ServiceResolver {
  private readonly byRoute: ReadonlyMap<string, string>;
  private readonly byCluster: ReadonlyMap<string, string>;
  private readonly defaultService: string;

  constructor(options: ServiceResolverOptions) {
    this.byRoute = new Map(Object.entries(options.serviceByRoute));
    this.byCluster = new Map(Object.entries(options.serviceByCluster));
    this.defaultService = options.defaultService;
  }

  resolve(
    route: string | undefined,
    cluster: string | undefined,
    isKnown: (service: string) => boolean,
  ): string {
    if (route) {
      const s = this.byRoute.get(route);
      if (s) return s;
    }
    if (cluster) {
      const s = this.byCluster.get(cluster);
      if (s) return s;
      if (isKnown(cluster)) return cluster;
    }
    if (route && isKnown(route)) return route;
    return this.defaultService;
  }
}
