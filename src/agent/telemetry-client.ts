import { clientChannel, type ClientSecurity } from '../common/tls.js';
import * as grpc from '@grpc/grpc-js';
import {
  TelemetryClient,
  type AgentHello,
  type AgentMessage,
  type ControlMessage,
  type EndpointData,
} from '../gen/augur/v1/telemetry.js';
import { formatHostPort, parseHostPort } from '../common/address.js';
import { durationToSeconds, secondsToDuration } from '../common/duration.js';
import type { Logger } from '../common/logger.js';
import { SampleBuffer } from './sample-buffer.js';

/** Reconnect timing: exponential backoff with full jitter. */
export interface BackoffOptions {
  /** Ceiling of the first delay, seconds. */
  initialSeconds: number;
  /** Ceiling no delay exceeds, seconds. */
  maxSeconds: number;
  multiplier: number;
  /**
   * A stream that got its config from the LPS and stayed up this long counts as
   * healthy: the next reconnect starts again from `initialSeconds`.
   */
  resetAfterSeconds: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  initialSeconds: 0.25,
  // Low, so an agent is back within a few seconds of an LPS restart (the channel's own
  // reconnect backoff is capped at the same value); full jitter spreads a fleet's retries.
  maxSeconds: 2,
  multiplier: 2,
  resetAfterSeconds: 10,
};

/**
 * Delay before reconnect attempt `attempt` (0-based), in seconds: uniformly
 * random in [0, min(max, initial × multiplier^attempt)) ("full jitter"), so
 * agents cut off together by an LPS restart do not come back in lockstep.
 */
export function backoffDelaySeconds(
  attempt: number,
  b: BackoffOptions,
  random: () => number,
): number {
  const ceiling = Math.min(b.maxSeconds, b.initialSeconds * Math.pow(b.multiplier, attempt));
  return random() * ceiling;
}

export interface TelemetryReporterOptions {
  /** The LPS gRPC address, HOST:PORT. */
  lps: string;
  /** Sent first on every stream; `requestedInterval` is filled in with the current interval. */
  hello: Omit<AgentHello, 'requestedInterval'>;
  /** Monitoring interval until the LPS says otherwise, seconds. */
  intervalSeconds: number;
  /** Unacknowledged samples kept for replay; beyond it the oldest are dropped. Default 600. */
  bufferSize?: number;
  /** Most samples in one replay `SampleBatch`. Default 500. */
  replayBatchSize?: number;
  backoff?: Partial<BackoffOptions>;
  /** Seconds `stop()` waits for the LPS to end the stream after the half-close. Default 2. */
  closeTimeoutSeconds?: number;
  logger: Logger;
  /** Called when the LPS sets a monitoring interval different from the current one. */
  onInterval?: (seconds: number) => void;
  /** Source of jitter, [0,1); tests pass a fixed one. */
  random?: () => number;
  /** TLS (mutual TLS with a certificate) and bearer token towards the LPS; absent: plaintext. */
  security?: ClientSecurity | undefined;
}

export interface ReporterStats {
  /** Sequence of the newest sample (0 before the first). */
  sequence: number;
  /** Highest sequence the LPS acknowledged. */
  lastAcked: number;
  /** Samples waiting for an ack (and replayed on reconnect). */
  buffered: number;
  /** Samples dropped unacknowledged because the buffer was full. */
  dropped: number;
  /** Samples the LPS rejected with a SampleError. */
  rejected: number;
  /** Streams opened, the first included. */
  streams: number;
  /** The LPS accepted the current stream (it answered the hello with its config). */
  connected: boolean;
  intervalSeconds: number;
}

/**
 * The agent's side of `augur.v1.Telemetry/Report`. One stream at a time: hello
 * first, then the unacknowledged buffer as `SampleBatch`es, then live samples.
 * Sequences start at 1 and keep increasing across reconnects, so the LPS can
 * drop what it already stored. `stop()` half-closes the stream, which the LPS
 * reads as a goodbye, unlike a dropped connection.
 */
export class TelemetryReporter {
  private readonly opts: TelemetryReporterOptions;
  private readonly backoff: BackoffOptions;
  private readonly buffer: SampleBuffer;
  private readonly logger: Logger;
  private readonly random: () => number;
  private readonly target: string;
  private client: TelemetryClient | undefined;
  private call: grpc.ClientDuplexStream<AgentMessage, ControlMessage> | undefined;
  private openedAt = 0;
  private gotConfig = false;
  /** Samples replayed when the current stream opened. */
  private replayed = 0;
  /** When the last connected stream was lost (performance.now()); 0 while connected or never. */
  private lostAt = 0;
  /** A stream ever got its config: later ones are reconnections. */
  private everConnected = false;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private callEnded: (() => void) | undefined;
  private interval: number;
  private sequence = 0;
  private lastAcked = 0;
  private rejected = 0;
  private streams = 0;
  private droppedSinceLog = 0;
  private errorCodesLogged = new Set<string>();

  constructor(options: TelemetryReporterOptions) {
    this.opts = options;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.buffer = new SampleBuffer(options.bufferSize ?? 600);
    this.logger = options.logger;
    this.random = options.random ?? Math.random;
    this.interval = options.intervalSeconds;
    this.target = formatHostPort(parseHostPort(options.lps, 'LPS address'));
  }

  /** Opens the first stream; later ones open by themselves after a loss. */
  start(): void {
    if (this.client || this.stopped) return;
    const b = this.backoff;
    const channel = clientChannel(this.opts.security);
    this.client = new TelemetryClient(this.target, channel.credentials, {
      ...channel.options,
      // Keep the channel's own reconnect backoff within ours, so a retry after
      // our delay is not refused by a channel still waiting out grpc-js's default 120 s cap.
      'grpc.initial_reconnect_backoff_ms': Math.max(100, Math.round(b.initialSeconds * 1000)),
      'grpc.max_reconnect_backoff_ms': Math.max(100, Math.round(b.maxSeconds * 1000)),
      // Notice an LPS host that vanished without closing the connection.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    });
    this.logger.info({ lps: this.target }, 'reporting to the LPS');
    this.connect();
  }

  /** Numbers the sample, keeps it until acknowledged, and sends it if a stream is open. */
  submit(sample: Omit<EndpointData, 'sequence'>): EndpointData {
    const data = sample as EndpointData;
    data.sequence = ++this.sequence;
    if (this.buffer.push(data)) this.droppedSinceLog++;
    if (this.call) this.call.write({ sample: data });
    return data;
  }

  get intervalSeconds(): number {
    return this.interval;
  }

  /** The monitoring interval in force; sent as `requested_interval` in the next hello. */
  set intervalSeconds(seconds: number) {
    this.interval = seconds;
  }

  /** The LPS accepted the current stream (answered its hello); an attempt in flight is not. */
  get connected(): boolean {
    return this.call !== undefined && this.gotConfig;
  }

  stats(): ReporterStats {
    return {
      sequence: this.sequence,
      lastAcked: this.lastAcked,
      buffered: this.buffer.size,
      dropped: this.buffer.dropped,
      rejected: this.rejected,
      streams: this.streams,
      connected: this.connected,
      intervalSeconds: this.interval,
    };
  }

  /** Sequences waiting for an ack, oldest first. */
  bufferedSequences(): number[] {
    return this.buffer.sequences();
  }

  /**
   * Half-closes the stream and waits (bounded) for the LPS to end it, then
   * closes the channel. Unacknowledged samples are lost with the process.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    const call = this.call;
    if (call) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(
          () => {
            this.logger.warn('the LPS did not end the stream after our goodbye; cancelling it');
            call.cancel();
            resolve();
          },
          (this.opts.closeTimeoutSeconds ?? 2) * 1000,
        );
        this.callEnded = () => {
          clearTimeout(timer);
          resolve();
        };
        call.end();
      });
    }
    this.client?.close();
    this.logger.info({ ...this.stats() }, 'telemetry stream closed');
  }

  private connect(): void {
    if (this.stopped || !this.client) return;
    const call = this.client.report();
    this.call = call;
    this.streams++;
    this.openedAt = performance.now();
    this.gotConfig = false;
    this.errorCodesLogged.clear();
    call.on('data', (msg: ControlMessage) => this.onMessage(msg));
    // 'status' always follows, and is where the end of the stream is handled.
    call.on('error', () => {});
    call.on('status', (status: grpc.StatusObject) => this.onStatus(call, status));

    call.write({
      hello: { ...this.opts.hello, requestedInterval: secondsToDuration(this.interval) },
    });
    let replayed = 0;
    for (const samples of this.buffer.chunks(this.opts.replayBatchSize ?? 500)) {
      call.write({ batch: { samples } });
      replayed += samples.length;
    }
    this.replayed = replayed;
    this.logger.debug(
      { lps: this.target, stream: this.streams, replayed },
      'stream to the LPS opening',
    );
  }

  /** The LPS answered the hello: the stream is up. */
  private onConnected(): void {
    const fields = {
      lps: this.target,
      stream: this.streams,
      intervalSeconds: this.interval,
      replayed: this.replayed,
      dropped: this.droppedSinceLog,
    };
    if (!this.everConnected) {
      this.logger.info(fields, `connected to the LPS at ${this.target}`);
    } else {
      const down = this.lostAt > 0 ? (performance.now() - this.lostAt) / 1000 : 0;
      this.logger.info(
        { ...fields, downSeconds: Number(down.toFixed(1)) },
        `reconnected to the LPS at ${this.target} after ${down.toFixed(1)} s; replayed ${this.replayed} samples`,
      );
    }
    this.everConnected = true;
    this.lostAt = 0;
    this.droppedSinceLog = 0;
  }

  private onMessage(msg: ControlMessage): void {
    if (msg.config) {
      if (!this.gotConfig) this.onConnected();
      this.gotConfig = true;
      const seconds = durationToSeconds(msg.config.monitoringInterval);
      if (seconds > 0 && seconds !== this.interval) {
        this.logger.info(
          { from: this.interval, to: seconds },
          'monitoring interval set by the LPS',
        );
        this.interval = seconds;
        this.opts.onInterval?.(seconds);
      }
    } else if (msg.ack) {
      const last = msg.ack.lastSequence;
      if (last > this.sequence) return this.continueAfter(last);
      if (last < this.lastAcked) {
        // Only the first ack of a stream can go back: the LPS lost samples it had acknowledged.
        this.logger.warn(
          { acknowledgedBefore: this.lastAcked, holdsNow: last },
          'the LPS no longer holds samples it acknowledged (restarted without saving them?)',
        );
        this.lastAcked = last;
      }
      if (last > this.lastAcked) this.lastAcked = last;
      this.buffer.ackThrough(last);
    } else if (msg.error) {
      const e = msg.error;
      this.rejected++;
      // A rejected sample would be rejected again: do not replay it.
      this.buffer.remove(e.sequence);
      // One warning per error code per stream; a replay of stale samples would otherwise flood the log.
      const level = this.errorCodesLogged.has(e.code) ? 'debug' : 'warn';
      this.errorCodesLogged.add(e.code);
      this.logger[level](
        { sequence: e.sequence, field: e.field, code: e.code, reason: e.message },
        'the LPS rejected a sample',
      );
    }
  }

  /**
   * The LPS acknowledged a sequence we never sent: it stored samples of this
   * endpoint from an earlier run of the agent (sequences restart at 1 with the
   * process). It dropped what we sent as duplicates, so renumber the buffered
   * samples after its last one, send them again, and continue from there.
   */
  private continueAfter(lastStored: number): void {
    this.logger.info(
      { lastStored, ourLast: this.sequence, renumbered: this.buffer.size },
      'the LPS holds newer samples of this endpoint from an earlier agent run; continuing after them',
    );
    this.sequence = lastStored;
    this.lastAcked = lastStored;
    for (const samples of this.buffer.chunks(this.opts.replayBatchSize ?? 500)) {
      for (const s of samples) s.sequence = ++this.sequence;
      this.call?.write({ batch: { samples } });
    }
  }

  private onStatus(
    call: grpc.ClientDuplexStream<AgentMessage, ControlMessage>,
    status: grpc.StatusObject,
  ): void {
    if (call !== this.call) return;
    this.call = undefined;
    if (this.stopped) {
      this.callEnded?.();
      return;
    }
    const upSeconds = (performance.now() - this.openedAt) / 1000;
    if (this.gotConfig && upSeconds >= this.backoff.resetAfterSeconds) this.attempt = 0;
    const delay = backoffDelaySeconds(this.attempt++, this.backoff, this.random);
    const fields = {
      lps: this.target,
      code: grpc.status[status.code],
      details: status.details,
      retryInSeconds: Number(delay.toFixed(3)),
      buffered: this.buffer.size,
    };
    // Refusals that a retry cannot fix deserve an error; a lost connection is said once,
    // and each failed attempt to get it back only at debug level.
    if (
      status.code === grpc.status.ALREADY_EXISTS ||
      status.code === grpc.status.FAILED_PRECONDITION ||
      status.code === grpc.status.INVALID_ARGUMENT
    ) {
      this.logger.error(fields, 'the LPS refused the stream; retrying');
    } else if (this.gotConfig) {
      this.lostAt = performance.now();
      this.logger.warn(
        fields,
        `disconnected from the LPS at ${this.target} (${fields.code}: ${status.details}); reconnecting, ` +
          `samples are kept and replayed`,
      );
    } else if (!this.everConnected && this.attempt === 1) {
      this.lostAt = performance.now();
      this.logger.warn(fields, `cannot reach the LPS at ${this.target} (${fields.code}); retrying`);
    } else {
      this.logger.debug(fields, 'the LPS is still unreachable; retrying');
    }
    this.reconnectTimer = setTimeout(() => this.connect(), delay * 1000);
  }
}
