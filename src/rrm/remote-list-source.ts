import * as grpc from '@grpc/grpc-js';
import { secondsToDuration } from '../common/duration.js';
import type { Logger } from '../common/logger.js';
import { clientChannel, type ClientSecurity } from '../common/tls.js';
import {
  LoadPredictionClient,
  type PrioritizedEndpointList,
} from '../gen/augur/v1/load_prediction.js';
import { ListStore } from '../lps/list-store.js';
import type { MonitoringIntervalSink } from './monitoring.js';

export interface RemoteListSourceOptions {
  /** The LPS's gRPC address, HOST:PORT. */
  address: string;
  /** Services to watch; empty or undefined watches all. */
  services?: string[];
  /** First reconnect delay and its cap, seconds; each delay gets up to 50 % jitter. */
  reconnectInitial: number;
  reconnectMax: number;
  logger: Logger;
  /** TLS and bearer token towards the LPS; absent: plaintext. */
  security?: ClientSecurity | undefined;
}

/**
 * A PrioritizedListSource over `LoadPrediction/WatchPrioritizedEndpoints`: the RRM's copy
 * of the LPS's lists when the two run in different processes. The stream is reopened with
 * exponential backoff and jitter whenever it ends; each reopening gets every current list
 * again (the LPS sends full state), so nothing is missed while it was down. While it is
 * down the last lists stay available: what to do with old lists is the caller's choice,
 * informed by `downSinceMs`.
 */
export class RemoteListSource extends ListStore implements MonitoringIntervalSink {
  private readonly options: RemoteListSourceOptions;
  private readonly client: LoadPredictionClient;
  private call: grpc.ClientReadableStream<PrioritizedEndpointList> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private stopped = false;
  private up = false;
  private downSince: number;

  constructor(options: RemoteListSourceOptions) {
    // A listener that throws is logged; it must not end the watch.
    super((err, list) =>
      options.logger.error({ err, service: list.service }, 'prioritized list listener failed'),
    );
    this.options = options;
    const channel = clientChannel(options.security);
    this.client = new LoadPredictionClient(options.address, channel.credentials, {
      ...channel.options,
      // Notice a silently dead LPS (a cut network sends no RST) within about 30 s.
      'grpc.keepalive_time_ms': 20_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.max_receive_message_length': 64 << 20,
    });
    this.downSince = Date.now();
  }

  /** Opens the watch stream (and keeps reopening it until `stop`). */
  start(): void {
    this.stopped = false;
    this.open();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.call?.cancel();
    this.call = undefined;
    this.client.close();
  }

  /** Whether the watch stream is open (the LPS answered it). */
  get connected(): boolean {
    return this.up;
  }

  /** When the stream went down (or when we started, if it never came up); undefined while up. */
  downSinceMs(): number | undefined {
    return this.up ? undefined : this.downSince;
  }

  setMonitoringInterval(
    service: string,
    endpointIds: string[],
    seconds: number,
  ): Promise<string[]> {
    return new Promise((resolve, reject) => {
      this.client.setMonitoringInterval(
        { service, endpointIds, monitoringInterval: secondsToDuration(seconds) },
        new grpc.Metadata(),
        { deadline: Date.now() + 5_000 },
        (err, res) => (err ? reject(err) : resolve(res.endpointIds)),
      );
    });
  }

  private open(): void {
    if (this.stopped) return;
    const call = this.client.watchPrioritizedEndpoints({ services: this.options.services ?? [] });
    this.call = call;
    call.on('metadata', () => {
      if (this.call !== call) return;
      if (!this.up)
        this.options.logger.info({ lps: this.options.address }, 'watching prioritized lists');
      this.up = true;
      this.attempt = 0;
    });
    call.on('data', (list: PrioritizedEndpointList) => {
      if (this.call !== call) return;
      this.up = true;
      this.attempt = 0;
      this.publish(list);
    });
    const ended = (detail: string) => {
      if (this.call !== call) return;
      this.call = undefined;
      if (this.up) {
        this.up = false;
        this.downSince = Date.now();
      }
      if (this.stopped) return;
      const delay = this.nextDelaySeconds();
      this.options.logger.warn(
        { lps: this.options.address, reason: detail, retryInSeconds: Number(delay.toFixed(2)) },
        'prioritized list watch is down; serving the last lists',
      );
      this.timer = setTimeout(() => this.open(), delay * 1000);
      this.timer.unref();
    };
    call.on('error', (err: grpc.ServiceError) => ended(err.details || err.message));
    call.on('end', () => ended('stream ended by the LPS'));
  }

  private nextDelaySeconds(): number {
    const { reconnectInitial, reconnectMax } = this.options;
    const base = Math.min(reconnectMax, reconnectInitial * 2 ** this.attempt);
    this.attempt++;
    return base * (0.5 + Math.random() * 0.5);
  }
}
