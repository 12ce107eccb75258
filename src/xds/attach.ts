import type { AugurConfig } from '../common/config.js';
import { loadEnvoyProtos } from '../common/envoy-protos.js';
import type { AttachedPart, ControlPlaneContext } from '../serve/control-plane.js';
import { defaultXdsConfig, type XdsConfig } from './config.js';
import { Xds } from './xds.js';

/** The `xds` section of the configuration, or its defaults while the section is not composed in. */
export function xdsConfigOf(config: AugurConfig): XdsConfig {
  return (config as AugurConfig & { xds?: XdsConfig }).xds ?? defaultXdsConfig();
}

/** Serves ADS on `augur serve`'s gRPC address, publishing the LPS's prioritized lists. */
export async function attachXds(ctx: ControlPlaneContext): Promise<AttachedPart> {
  const config = xdsConfigOf(ctx.config);
  if (!config.enabled) return { stop: async () => {} };
  const logger = ctx.logger.child({ part: 'xds' });
  const xds = new Xds({
    config,
    source: ctx.lps.lists,
    root: loadEnvoyProtos().root,
    logger,
    registry: ctx.registry,
  });
  xds.register((name, definition, impl) => ctx.grpc.addService(name, definition, impl));
  xds.start();
  logger.info({ service: xds.serviceName }, 'xDS (ADS, state of the world) attached');
  return {
    stop: async () => xds.stop(),
  };
}
