import { status as grpcStatus } from '@grpc/grpc-js';
import type { Registry } from 'prom-client';
import { formatHostPort, type HostPort } from '../common/address.js';
import type { GrpcHost } from '../common/grpc-host.js';
import type { AttachedPart } from '../common/lifecycle.js';
import type { Logger } from '../common/logger.js';
import type { Trust } from '../common/trust.js';
import { ResponseRouterService } from '../gen/augur/v1/response_router.js';
import type { LpsConfig } from '../lps/config.js';
import type { PrioritizedListSource } from '../lps/types.js';
import { Deliverer } from './delivery.js';
import { DeliveryGuard, type IsVerified } from './delivery-guard.js';
import { ExtProcListener } from './ext-proc/http2-listener.js';
import { EndpointLoads } from './endpoint-load.js';
import { EndpointTables } from './endpoint-table.js';
import {
  EXT_PROC_SERVICE_NAME,
  ExtProcHandler,
  extProcServiceDefinition,
} from './ext-proc/server.js';
import { RrmMetrics, type LpsStatus } from './metrics.js';
import { MonitoringForwarder, type MonitoringIntervalSink } from './monitoring.js';
import type { RequestApiLimits } from './request-api.js';
import { RoutedRequests } from './routed-requests.js';
import { responseRouterService } from './route-response.js';
import { Router, type ServingMode } from './router.js';
import { extProcWorkerCount, type RrmConfig } from './config.js';
import { ServiceResolver } from './service-resolver.js';

export interface RrmOptions {
  /** The RRM's section, and the LPS's bounds of a monitoring interval (checked before forwarding). */
  config: { rrm: RrmConfig; lps: Pick<LpsConfig, 'minInterval' | 'maxInterval'> };
  logger: Logger;
  registry: Registry;
  /** Where prioritized lists come from: the in-process LPS or a RemoteListSource. */
  lists: PrioritizedListSource;
  /** Where monitoring-interval asks go. */
  monitoring: MonitoringIntervalSink;
  /**
   * When the LPS connection went down (undefined while up). Absent for an in-process LPS,
   * which cannot be unreachable.
   */
  lpsDownSinceMs?: () => number | undefined;
  /** TLS and authorisation of the extra ext_proc address (the gRPC host has its own). */
  trust?: Trust | undefined;
  /**
   * Whether an endpoint's identity was verified: RouteResponse delivers only to those (a seam for
   * the identity model; by default every endpoint passes).
   */
  isVerified?: IsVerified;
}

/**
 * The Response Routing Module: the ext_proc endpoint picker and RouteResponse, over a local
 * copy of the LPS's prioritized lists. `register` adds both gRPC services to a host.
 */
export class Rrm {
  readonly tables: EndpointTables;
  readonly router: Router;
  readonly extProc: ExtProcHandler;
  readonly metrics: RrmMetrics;
  /** The in-band signals: per endpoint, requests in flight and recent latency. */
  readonly loads: EndpointLoads;
  /** The routed requests whose response has not come back. */
  readonly routed: RoutedRequests;
  private readonly pruneTimer: NodeJS.Timeout;
  private readonly options: RrmOptions;
  private readonly deliverer: Deliverer;
  /** Where RouteResponse may deliver (delivery-guard.ts). */
  readonly guard: DeliveryGuard;
  private readonly forwarder: MonitoringForwarder;
  private readonly modeTimer: NodeJS.Timeout | undefined;

  constructor(options: RrmOptions) {
    this.options = options;
    const { rrm, lps } = options.config;
    const logger = options.logger;
    this.metrics = new RrmMetrics(
      options.registry,
      () => this.lpsStatus(),
      () => this.routed.size,
    );
    this.tables = new EndpointTables(options.lists);
    this.loads = new EndpointLoads();
    this.routed = new RoutedRequests({
      loads: this.loads,
      timeoutSeconds: rrm.inFlightTimeout,
      onEnd: (outcome) => this.metrics.routedEnded(outcome),
    });
    this.routed.startSweeping();
    // Endpoints that left every list are forgotten once nothing is in flight there.
    this.pruneTimer = setInterval(() => {
      const listed = this.tables.destinations();
      this.loads.retain((d) => listed.has(d));
    }, 60_000);
    this.pruneTimer.unref();
    this.router = new Router(this.tables, {
      fallbacks: rrm.fallbacks,
      maxEndpointStaleness: rrm.maxEndpointStaleness,
      dynamicPicker: rrm.dynamicPicker,
      pickSampleSize: rrm.pickSampleSize,
      loads: this.loads,
    });
    this.forwarder = new MonitoringForwarder({
      sink: options.monitoring,
      fromRequests: rrm.monitoringIntervalFromRequests,
      minGapSeconds: rrm.monitoringIntervalMinGap,
      memory: rrm.monitoringIntervalMemory,
      logger,
      onFailure: () => this.metrics.forward('failed'),
    });
    const limits: RequestApiLimits = {
      dynamicRoutingDefault: rrm.dynamicRoutingDefault,
      maxCandidates: rrm.maxCandidates,
      minInterval: lps.minInterval,
      maxInterval: lps.maxInterval,
      monitoringIntervalFromRequests: rrm.monitoringIntervalFromRequests,
    };
    const resolver = new ServiceResolver(rrm);
    this.extProc = new ExtProcHandler({
      router: this.router,
      resolver,
      limits,
      monitoring: this.forwarder,
      metrics: this.metrics,
      routed: this.routed,
      logger,
      maxStreams: rrm.maxStreams,
      maxStreamsPerClient: rrm.maxStreamsPerClient,
    });
    this.deliverer = new Deliverer({ maxBodyBytes: rrm.routeResponseMaxResponseBytes });
    this.guard = new DeliveryGuard({
      allow: rrm.routeResponseAllow,
      isVerified: options.isVerified,
    });
    this.responseRouter = responseRouterService({
      router: this.router,
      tables: this.tables,
      deliverer: this.deliverer,
      guard: this.guard,
      monitoring: this.forwarder,
      limits,
      metrics: this.metrics,
      defaultService: rrm.defaultService,
      deliveryTimeout: rrm.deliveryTimeout,
      maxPayloadBytes: rrm.maxPayloadBytes,
      logger,
    });
    if (options.lpsDownSinceMs) {
      this.modeTimer = setInterval(() => this.lpsStatus(), 100);
      this.modeTimer.unref();
    }
  }

  private readonly responseRouter: ReturnType<typeof responseRouterService>;
  private listener: ExtProcListener | undefined;

  /** Adds ExternalProcessor and ResponseRouter to the process's gRPC server. */
  register(host: GrpcHost): void {
    host.addService(EXT_PROC_SERVICE_NAME, extProcServiceDefinition, this.extProc.implementation());
    host.addService('augur.v1.ResponseRouter', ResponseRouterService, this.responseRouter);
  }

  /**
   * Starts the extra ext_proc address (`rrm.extProcListen`, node:http2 directly) if one is
   * configured, and returns where it listens.
   */
  async listenExtProc(): Promise<HostPort | undefined> {
    const listen = this.options.config.rrm.extProcListen;
    if (!listen || this.listener) return this.listener?.address;
    const { rrm } = this.options.config;
    this.listener = new ExtProcListener({
      listen,
      handler: this.extProc,
      logger: this.options.logger,
      tls: this.options.trust?.tls,
      insecure: this.options.trust?.insecure,
      authorizer: this.options.trust?.authorizer,
      maxMessageBytes: rrm.extProcMaxMessageBytes,
      partialBudgetBytes: rrm.extProcPartialBudgetBytes,
      partialTimeoutMs: rrm.extProcPartialTimeout * 1000,
      onRefused: (code) => this.metrics.fastPathRefused(grpcStatus[code] ?? String(code)),
    });
    const bound = await this.listener.start();
    this.guard.addOwnAddress(bound);
    return bound;
  }

  /** One of this process's listening addresses: RouteResponse never delivers there. */
  addOwnAddress(address: HostPort | string): void {
    this.guard.addOwnAddress(address);
  }

  /** Bytes of partly received messages the fast path holds now (0 without one). */
  get extProcPartialBytes(): number {
    return this.listener?.partial.used ?? 0;
  }

  /** The extra ext_proc address, if it listens. */
  get extProcAddress(): string | undefined {
    return this.listener ? formatHostPort(this.listener.address) : undefined;
  }

  /** How long the LPS has been unreachable, and the serving mode that follows (switching to it). */
  lpsStatus(now = Date.now()): LpsStatus {
    const since = this.options.lpsDownSinceMs?.();
    const { lpsUnreachableAfter, lpsStandardOrderAfter } = this.options.config.rrm;
    const down = since === undefined ? 0 : Math.max(0, (now - since) / 1000);
    const mode: ServingMode =
      down >= lpsStandardOrderAfter
        ? 'standard-order'
        : down >= lpsUnreachableAfter
          ? 'last-list'
          : 'live';
    if (mode !== this.router.mode) {
      const logger = this.options.logger;
      const fields = { mode, lpsDownSeconds: Math.round(down) };
      if (mode === 'live') logger.info(fields, `RRM now serves ${describeMode(mode)}`);
      else logger.warn(fields, `RRM now serves ${describeMode(mode)}`);
      this.router.mode = mode;
    }
    return { reachable: down < lpsUnreachableAfter, downSeconds: down, mode };
  }

  async stop(): Promise<void> {
    await this.listener?.stop();
    if (this.modeTimer) clearInterval(this.modeTimer);
    clearInterval(this.pruneTimer);
    this.routed.stop();
    this.tables.close();
    this.deliverer.close();
  }
}

function describeMode(mode: ServingMode): string {
  if (mode === 'live') return 'live prioritized lists';
  if (mode === 'last-list') return 'the last prioritized lists (LPS unreachable)';
  return 'the standard order (LPS unreachable too long to trust its lists)';
}

/** What the RRM needs of the process it is attached to (`augur serve`, beside the LPS). */
export interface RrmHost {
  config: RrmOptions['config'];
  logger: Logger;
  registry: Registry;
  grpc: GrpcHost;
  trust?: Trust | undefined;
  lps: {
    lists: PrioritizedListSource;
    setMonitoringInterval(ids: string[], seconds: number, service?: string): string[];
  };
}

/** Plugs the RRM into `augur serve`, reading the in-process LPS's lists. */
export async function attachRrm(host: RrmHost): Promise<AttachedPart & { rrm: Rrm }> {
  const rrm = new Rrm({
    config: host.config,
    logger: host.logger.child({ part: 'rrm' }),
    registry: host.registry,
    trust: host.trust,
    lists: host.lps.lists,
    monitoring: {
      setMonitoringInterval: async (_service, ids, seconds) =>
        host.lps.setMonitoringInterval(ids, seconds),
    },
  });
  rrm.register(host.grpc);
  // With several workers the fast path is theirs (src/serve/ext-proc-workers.ts).
  if (extProcWorkerCount(host.config.rrm) <= 1) await rrm.listenExtProc();
  return { rrm, stop: () => rrm.stop() };
}
