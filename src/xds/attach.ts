import type { Registry } from 'prom-client';
import type { GrpcHost } from '../common/grpc-host.js';
import type { AttachedPart } from '../common/lifecycle.js';
import type { Logger } from '../common/logger.js';
import type { PrioritizedListSource } from '../lps/types.js';
import type { XdsConfig } from './config.js';
import { Xds } from './xds.js';

/** What the xDS part needs of the process it is attached to. */
export interface XdsHost {
  config: XdsConfig;
  /** The prioritized lists to publish (the in-process LPS's). */
  lists: PrioritizedListSource;
  grpc: GrpcHost;
  logger: Logger;
  registry: Registry;
}

/** Serves ADS on the host's gRPC address, publishing the prioritized lists. */
export async function attachXds(host: XdsHost): Promise<AttachedPart> {
  const { config } = host;
  if (!config.enabled) return { stop: async () => {} };
  const logger = host.logger.child({ part: 'xds' });
  const xds = new Xds({
    config,
    source: host.lists,
    logger,
    registry: host.registry,
  });
  xds.register((name, definition, impl) => host.grpc.addService(name, definition, impl));
  xds.start();
  logger.info({ service: xds.serviceName }, 'xDS (ADS, state of the world) attached');
  return {
    stop: async () => xds.stop(),
  };
}
