import type { Registry } from 'prom-client';
import type { Authorizer } from '../common/auth.js';
import type { GrpcHost } from '../common/grpc-host.js';
import type { Logger } from '../common/logger.js';
import type { LpsConfig } from './config.js';
import { EwmaScorer } from './ewma-scorer.js';
import { LoadPredictionServiceImpl, type ForecastProvider } from './load-prediction-service.js';
import { HostNameResolver, type HostNameStatus } from './host-names.js';
import { LimitRefusals } from './limit-refusals.js';
import { LpsMetrics } from './metrics.js';
import { StateJournal } from './persistence/journal.js';
import { Prioritizer } from './prioritizer.js';
import { EndpointStore } from './store.js';
import { TelemetryServiceImpl, type IngestTap } from './telemetry-service.js';
import type { CheckpointableScorer, PrioritizedListSource, Scorer } from './types.js';

export interface LpsOptions {
  config: LpsConfig;
  dataDir: string;
  registry: Registry;
  logger: Logger;
  /** Defaults to the EWMA scorer. */
  scorer?: Scorer & Partial<ForecastProvider>;
  /** Which identities may report which endpoints (security.principals); absent: anyone. */
  authorizer?: Authorizer | undefined;
  /**
   * The lists this LPS serves (LoadPrediction, and `lists` for xDS, the RRM and the dashboard)
   * when they are not its own: cluster mode serves the lists every service's owner replicated.
   * Absent: its own prioritizer's.
   */
  servedLists?: PrioritizedListSource | undefined;
  /** Hears of every accepted hello, sample and goodbye; acks wait for it (cluster mode). */
  ingestTap?: IngestTap | undefined;
}

/**
 * The Load Prediction Service: ingest (Telemetry), the endpoint store, the
 * prioritizer, and the LoadPrediction API, wired together.
 */
export class Lps {
  readonly store: EndpointStore;
  readonly metrics: LpsMetrics;
  readonly telemetry: TelemetryServiceImpl;
  readonly api: LoadPredictionServiceImpl;
  private readonly prioritizer: Prioritizer;
  private readonly hostNames: HostNameResolver;
  private readonly options: LpsOptions;
  private scorer: Scorer & Partial<ForecastProvider>;
  private journal: StateJournal | undefined;

  constructor(options: LpsOptions) {
    this.options = options;
    const { config, registry, logger } = options;
    this.metrics = new LpsMetrics(registry);
    if (config.maxStreams < config.maxEndpoints)
      logger.warn(
        { maxStreams: config.maxStreams, maxEndpoints: config.maxEndpoints },
        `lps.maxStreams (${config.maxStreams}) is below lps.maxEndpoints (${config.maxEndpoints}): at most ${config.maxStreams} endpoints can report at once; raise lps.maxStreams to lps.maxEndpoints plus room for reconnecting agents`,
      );
    this.store = new EndpointStore(config);
    this.scorer = options.scorer ?? new EwmaScorer();
    this.hostNames = new HostNameResolver({
      ...config.hostnames,
      logger: logger.child({ part: 'host-names' }),
      onChange: () => this.prioritizer.recomputeSoon(),
      onLookup: (outcome) => this.metrics.hostLookups.inc({ outcome }),
    });
    this.prioritizer = new Prioritizer(
      this.store,
      this.scorer,
      this.metrics,
      logger.child({ part: 'prioritizer' }),
      this.hostNames,
    );
    const telemetryLogger = logger.child({ part: 'telemetry' });
    // One count and one throttled log of refusals for every limit, Report and Watch streams alike.
    const refusals = new LimitRefusals(this.metrics.limitRefusals, telemetryLogger);
    this.telemetry = new TelemetryServiceImpl(
      this.store,
      config,
      this.metrics,
      telemetryLogger,
      {
        durable: () => this.journal?.durable(),
        refusal: () => this.journal?.refusal(),
      },
      options.authorizer,
      options.ingestTap,
      refusals,
    );
    this.api = new LoadPredictionServiceImpl({
      store: this.store,
      lists: this.lists,
      config,
      isLive: (id) => this.telemetry.isLive(id),
      hostNames: this.hostNames,
      forecasts: () => this.forecasts(),
      onDropped: (dropped) => {
        this.metrics.replyDropped.inc({ reply: 'list_endpoints' }, dropped.length);
        logger.warn(
          { dropped: dropped.length, endpoints: dropped.slice(0, 10).map((e) => e.endpointId) },
          `a ListEndpoints answer would pass lps.maxReplyBytes (${config.maxReplyBytes} bytes): its ${dropped.length} largest endpoints are left out`,
        );
      },
      onWatchRefused: (limit, details) => refusals.note(limit, 1, undefined, details),
    });
  }

  /** The prioritized lists this LPS serves, for in-process readers (xDS, RRM, dashboard). */
  get lists(): PrioritizedListSource {
    return this.options.servedLists ?? this.prioritizer;
  }

  /** The lists this LPS's own scoring publishes (the same as `lists` unless servedLists is given). */
  get scoredLists(): PrioritizedListSource {
    return this.prioritizer;
  }

  /** The scorer, when its learnt state can be saved and restored (cluster mode's checkpoints). */
  checkpointable(): CheckpointableScorer | undefined {
    const s = this.scorer as Partial<CheckpointableScorer>;
    return s.checkpoint && s.restore ? (this.scorer as Scorer & CheckpointableScorer) : undefined;
  }

  /** Scores every endpoint now (and publishes what changed); settles when done. */
  rescore(): Promise<void> {
    return this.prioritizer.recompute();
  }

  /** The scorer's forecasts (GetForecast's data), when it makes any; the dashboard plots them. */
  forecasts(): ForecastProvider | undefined {
    return this.scorer.forecastFor ? (this.scorer as ForecastProvider) : undefined;
  }

  /**
   * Whether an endpoint's address has an IP, and why not (what ListEndpoints reports as
   * `ip` / `address_error`), for in-process readers such as the dashboard.
   */
  addressStatus(address: string): HostNameStatus {
    return this.hostNames.statusOf(address);
  }

  /** Swaps the scorer (for example once a forecasting scorer has loaded its model). */
  setScorer(scorer: Scorer & Partial<ForecastProvider>): void {
    this.scorer = scorer;
    this.prioritizer.setScorer(scorer);
  }

  register(grpc: GrpcHost): void {
    this.telemetry.register((name, def, impl) => grpc.addService(name, def, impl));
    this.api.register((name, def, impl) => grpc.addService(name, def, impl));
  }

  /** Restores the state in the data dir (which must be writable), then starts scoring. */
  async start(): Promise<void> {
    this.journal = await StateJournal.open({
      dataDir: this.options.dataDir,
      config: this.options.config,
      store: this.store,
      metrics: this.metrics,
      logger: this.options.logger.child({ part: 'state' }),
    });
    this.prioritizer.start(this.options.config.scoreInterval, this.options.config.scoreOnReports);
    await this.prioritizer.recompute();
  }

  /**
   * Asks the agents of these endpoints to report every `seconds`. Throws a
   * gRPC status object (INVALID_ARGUMENT, NOT_FOUND) naming the problem.
   */
  setMonitoringInterval(endpointIds: readonly string[], seconds: number, service = ''): string[] {
    const { ids } = this.api.resolveIntervalRequest(service, endpointIds, seconds, false);
    return this.store.setInterval(ids, seconds);
  }

  /** Ends the agents' streams and saves the state; throws STATE_NOT_SAVED if it cannot. */
  async stop(): Promise<void> {
    this.telemetry.closeAll();
    await this.prioritizer.stop();
    this.hostNames.close();
    await this.journal?.close();
  }
}
