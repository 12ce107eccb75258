import type { FileRegistry } from '@bufbuild/protobuf';
import type { Registry } from 'prom-client';
import type { Logger } from '../common/logger.js';
import type { PrioritizedListSource } from '../lps/types.js';
import { clientKindOf } from './client-kind.js';
import type { XdsConfig } from './config.js';
import { XdsMetrics } from './metrics.js';
import { xdsRegistry } from './envoy-registry.js';
import { XdsPublisher } from './publisher.js';
import { ResourceBuilder } from './resources.js';
import { SnapshotCache } from './snapshot-cache.js';
import {
  ADS_SERVICE,
  SotwServer,
  adsServiceDefinition,
  type AdsImplementation,
} from './sotw-server.js';
import type * as grpc from '@grpc/grpc-js';

export interface XdsOptions {
  config: XdsConfig;
  source: PrioritizedListSource;
  /** Envoy's API as descriptors; default: the process's (envoy-registry.ts). */
  protos?: FileRegistry;
  logger: Logger;
  registry?: Registry;
  onPublish?: (services: readonly string[]) => void;
}

/** The xDS part wired together: cache, protocol server, builders and publisher. */
export class Xds {
  readonly cache = new SnapshotCache();
  readonly server: SotwServer;
  readonly publisher: XdsPublisher;
  readonly builder: ResourceBuilder;
  readonly serviceName = ADS_SERVICE;
  readonly definition: grpc.ServiceDefinition<AdsImplementation>;

  constructor(options: XdsOptions) {
    const { config, logger } = options;
    const metrics = options.registry ? new XdsMetrics(options.registry) : undefined;
    const protos = options.protos ?? xdsRegistry();
    this.builder = new ResourceBuilder(protos, config);
    if (config.envoyLbPolicy === 'override_host' && !this.builder.overrideHostAvailable) {
      logger.warn(
        'override-host LB policy proto not found (proto/envoy-extra); Envoy clusters use least request alone',
      );
    }
    const rule = {
      metadataKey: config.clientKindMetadataKey,
      envoyUserAgents: config.envoyUserAgents,
      defaultKind: config.defaultClientKind,
    };
    this.server = new SotwServer({
      watcher: this.cache,
      groupOf: (node) => clientKindOf(node, rule),
      logger,
      callbacks: metrics?.protocol,
      maxStreams: config.maxStreams,
      maxStreamsPerClient: config.maxStreamsPerClient,
    });
    this.definition = adsServiceDefinition(protos);
    this.publisher = new XdsPublisher({
      source: options.source,
      cache: this.cache,
      builder: this.builder,
      debounceMs: config.debounceMs,
      warmupMs: config.warmup * 1000,
      hysteresis: config.hysteresis,
      logger,
      onOutcome: metrics?.onPublishOutcome,
      onPublish: options.onPublish,
    });
  }

  /** Registers ADS on a gRPC server (before it starts). */
  register(
    add: (
      name: string,
      definition: grpc.ServiceDefinition<AdsImplementation>,
      impl: AdsImplementation,
    ) => void,
  ): void {
    add(ADS_SERVICE, this.definition, this.server.implementation);
  }

  start(): void {
    this.publisher.start();
  }

  /** Stops publishing and ends the open ADS streams (clients keep their last configuration). */
  stop(): void {
    this.publisher.stop();
    this.server.closeAll();
  }
}
