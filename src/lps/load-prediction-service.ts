import * as grpc from '@grpc/grpc-js';
import { durationToSeconds, secondsToDuration } from '../common/duration.js';
import { clientOf, OpenCounts } from '../common/peer.js';
import {
  EndpointInfo,
  LoadPredictionService,
  type GetForecastResponse,
  type LoadPredictionServer,
  type PrioritizedEndpointList,
} from '../gen/augur/v1/load_prediction.js';
import type { LpsConfig } from './config.js';
import type { HostNameResolver } from './host-names.js';
import type { LpsLimit } from './limit-refusals.js';
import { fitReply } from './reply-size.js';
import { endpointDataOf, type EndpointStore } from './store.js';
import type { EndpointRecord, PrioritizedListSource } from './types.js';

/** Gives the forecasts of one endpoint, for GetForecast; undefined if it has none yet. */
export interface ForecastProvider {
  forecastFor(endpointId: string): GetForecastResponse | undefined;
}

export interface LoadPredictionDeps {
  store: EndpointStore;
  lists: PrioritizedListSource;
  config: LpsConfig;
  isLive: (endpointId: string) => boolean;
  hostNames: Pick<HostNameResolver, 'statusOf'>;
  forecasts: () => ForecastProvider | undefined;
  /** Called with the endpoints a ListEndpoints answer left out for lps.maxReplyBytes. */
  onDropped?: (dropped: readonly EndpointInfo[]) => void;
  /**
   * Called when a Watch is refused as it starts, with the limit (lps.maxWatchStreams, or
   * lps.maxWatchStreamsPerClient) and the reason.
   */
  onWatchRefused?: (limit: WatchLimit, details: string) => void;
}

/** The limits a Watch is refused for as it starts. */
type WatchLimit = Extract<LpsLimit, 'max_watch_streams' | 'max_watch_streams_per_client'>;

function grpcError(code: grpc.status, details: string): Partial<grpc.StatusObject> {
  return { code, details };
}

/** Serves augur.v1.LoadPrediction from the store and the prioritized lists. */
export class LoadPredictionServiceImpl {
  /** Watch streams open now (lps.maxWatchStreams). */
  private watches = 0;
  /** Watch streams open now per client (lps.maxWatchStreamsPerClient). */
  private readonly watchesPerClient = new OpenCounts();

  constructor(private readonly deps: LoadPredictionDeps) {}

  /** Watch streams open now. */
  get openWatches(): number {
    return this.watches;
  }

  /** Clients with a Watch stream open now (none holds memory once its last one ended). */
  get watchingClients(): number {
    return this.watchesPerClient.size;
  }

  register(
    add: (name: string, def: typeof LoadPredictionService, impl: LoadPredictionServer) => void,
  ): void {
    add('augur.v1.LoadPrediction', LoadPredictionService, {
      getPrioritizedEndpoints: (call, cb) => {
        const list = this.deps.lists.get(call.request.service);
        if (!list) {
          return cb(
            grpcError(
              grpc.status.NOT_FOUND,
              `no endpoints known for service "${call.request.service}"`,
            ),
          );
        }
        cb(null, list);
      },
      watchPrioritizedEndpoints: (call) => this.watch(call),
      setMonitoringInterval: (call, cb) => {
        try {
          const { ids, seconds } = this.resolveIntervalRequest(
            call.request.service,
            call.request.endpointIds,
            durationToSeconds(call.request.monitoringInterval),
            call.request.monitoringInterval === undefined,
          );
          const applied = this.deps.store.setInterval(ids, seconds);
          cb(null, { endpointIds: applied, monitoringInterval: secondsToDuration(seconds) });
        } catch (err) {
          cb(err as Partial<grpc.StatusObject>);
        }
      },
      listEndpoints: (call, cb) => {
        const service = call.request.service;
        const all = this.deps.store
          .all()
          .filter((r) => !service || r.service === service)
          .sort((a, b) => (a.id < b.id ? -1 : 1))
          .map((r) => this.info(r));
        // Past lps.maxReplyBytes the largest endpoints (long labels) are left out, not the answer.
        const { kept, dropped } = fitReply(
          all,
          (e) => EndpointInfo.encode(e).finish().length,
          0,
          this.deps.config.maxReplyBytes,
        );
        if (dropped.length > 0) this.deps.onDropped?.(dropped);
        cb(null, { endpoints: kept });
      },
      getForecast: (call, cb) => {
        const id = call.request.endpointId;
        if (!this.deps.store.get(id))
          return cb(grpcError(grpc.status.NOT_FOUND, `unknown endpoint "${id}"`));
        const forecast = this.deps.forecasts()?.forecastFor(id);
        if (!forecast) {
          return cb(
            grpcError(
              grpc.status.UNAVAILABLE,
              `no forecast for endpoint "${id}" yet: not enough samples`,
            ),
          );
        }
        cb(null, forecast);
      },
    });
  }

  /**
   * Validates a monitoring-interval change and resolves the endpoints it
   * applies to. Throws a gRPC status object naming the problem.
   */
  resolveIntervalRequest(
    service: string,
    endpointIds: readonly string[],
    seconds: number,
    missing: boolean,
  ): { ids: string[]; seconds: number } {
    const { minInterval, maxInterval } = this.deps.config;
    if (missing) throw grpcError(grpc.status.INVALID_ARGUMENT, 'monitoring_interval is required');
    if (!Number.isFinite(seconds) || seconds < minInterval || seconds > maxInterval) {
      throw grpcError(
        grpc.status.INVALID_ARGUMENT,
        `monitoring_interval must be between ${minInterval} s and ${maxInterval} s, got ${seconds} s`,
      );
    }
    let ids: string[];
    if (endpointIds.length > 0) {
      const unknown = endpointIds.filter((id) => !this.deps.store.get(id));
      if (unknown.length)
        throw grpcError(grpc.status.NOT_FOUND, `unknown endpoint_ids: ${unknown.join(', ')}`);
      ids = [...endpointIds];
    } else if (service) {
      ids = this.deps.store
        .all()
        .filter((r) => r.service === service)
        .map((r) => r.id);
      if (!ids.length)
        throw grpcError(grpc.status.NOT_FOUND, `no endpoints known for service "${service}"`);
    } else {
      throw grpcError(grpc.status.INVALID_ARGUMENT, 'give a service or endpoint_ids');
    }
    return { ids, seconds };
  }

  private watch(
    call: grpc.ServerWritableStream<{ services: string[] }, PrioritizedEndpointList>,
  ): void {
    const { maxWatchStreams, maxWatchStreamsPerClient } = this.deps.config;
    const refuse = (limit: WatchLimit, details: string): void => {
      this.deps.onWatchRefused?.(limit, details);
      call.emit('error', grpcError(grpc.status.RESOURCE_EXHAUSTED, details));
    };
    if (this.watches >= maxWatchStreams) {
      return refuse(
        'max_watch_streams',
        `the LPS has ${this.watches} Watch streams open, its limit (lps.maxWatchStreams ${maxWatchStreams}); try again later`,
      );
    }
    const client = clientOf(call);
    const ofClient = this.watchesPerClient.of(client);
    if (ofClient >= maxWatchStreamsPerClient) {
      return refuse(
        'max_watch_streams_per_client',
        `client ${client} has ${ofClient} Watch streams open, the limit (lps.maxWatchStreamsPerClient ${maxWatchStreamsPerClient}); try again later`,
      );
    }
    this.watches++;
    this.watchesPerClient.add(client);
    // Headers at once: the watcher knows the stream is open even while no service has a list.
    call.sendMetadata(new grpc.Metadata());
    const wanted = new Set(call.request.services);
    const matches = (service: string) => wanted.size === 0 || wanted.has(service);
    // A slow watcher does not grow a queue: while the socket is full only the
    // newest list per service is kept, and sent on 'drain'.
    const pending = new Map<string, PrioritizedEndpointList>();
    let blocked = false;
    const flush = () => {
      blocked = false;
      for (const [service, list] of pending) {
        pending.delete(service);
        if (!call.write(list)) {
          blocked = true;
          return;
        }
      }
    };
    const send = (list: PrioritizedEndpointList) => {
      if (!matches(list.service)) return;
      if (blocked) {
        pending.set(list.service, list);
        return;
      }
      if (!call.write(list)) blocked = true;
    };
    call.on('drain', flush);
    for (const service of this.deps.lists.services()) {
      const list = this.deps.lists.get(service);
      if (list) send(list);
    }
    const unsubscribe = this.deps.lists.subscribe(send);
    let stopped = false;
    const stop = () => {
      if (stopped) return;
      stopped = true;
      this.watches--;
      this.watchesPerClient.remove(client);
      unsubscribe();
    };
    call.on('cancelled', stop);
    call.on('close', stop);
    call.on('error', stop);
  }

  private info(r: EndpointRecord): EndpointInfo {
    const latest = r.series.latest();
    const address = this.deps.hostNames.statusOf(r.address);
    return {
      endpointId: r.id,
      service: r.service,
      address: r.address,
      port: r.port,
      locality: r.locality,
      labels: r.labels,
      capacity: r.capacity,
      state: this.deps.store.stateOf(r, Date.now()),
      connected: this.deps.isLive(r.id),
      monitoringInterval: secondsToDuration(r.interval),
      lastSequence: r.lastSequence,
      samplesStored: r.samplesStored,
      latest: latest && endpointDataOf(r.id, latest),
      lastSeen: new Date(r.lastSeenMs),
      ip: address.ip ?? '',
      addressError: address.error ?? '',
    };
  }
}
