import { loadEnvoyProtos } from '../common/envoy-protos.js';
import type { AttachedPart, ControlPlaneContext } from '../serve/control-plane.js';
import { sharedHostResolver } from './host-resolver.js';
import { Xds } from './xds.js';

/** Serves ADS on `augur serve`'s gRPC address, publishing the LPS's prioritized lists. */
export async function attachXds(ctx: ControlPlaneContext): Promise<AttachedPart> {
  const config = ctx.config.xds;
  if (!config.enabled) return { stop: async () => {} };
  const logger = ctx.logger.child({ part: 'xds' });
  const xds = new Xds({
    config,
    source: ctx.lps.lists,
    root: loadEnvoyProtos().root,
    logger,
    registry: ctx.registry,
    resolver: sharedHostResolver(ctx),
  });
  xds.register((name, definition, impl) => ctx.grpc.addService(name, definition, impl));
  xds.start();
  logger.info({ service: xds.serviceName }, 'xDS (ADS, state of the world) attached');
  return {
    stop: async () => xds.stop(),
  };
}
