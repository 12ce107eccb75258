import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../common/logger.js';
import { isRefusal, presentedBy, type Authorizer } from '../common/auth.js';
import { quoted } from '../common/text.js';
import { secondsToDuration } from '../common/duration.js';
import { clientOf, connectionOf, OpenCounts } from '../common/peer.js';
import {
  TelemetryService,
  type AgentMessage,
  type AgentHello,
  type ControlMessage,
  type EndpointData,
  type TelemetryServer,
} from '../gen/augur/v1/telemetry.js';
import type { LpsConfig } from './config.js';
import type { LpsMetrics } from './metrics.js';
import { LimitRefusals, type LpsLimit } from './limit-refusals.js';
import type { EndpointStore } from './store.js';
import type { EndpointRecord } from './types.js';
import { validateHello } from './validate.js';

type ReportCall = grpc.ServerDuplexStream<AgentMessage, ControlMessage>;

/**
 * When an acknowledgement may go out. An ack tells the agent it may forget the samples it covers,
 * so it waits until they are on disk (src/lps/persistence) unless durability is off.
 */
export interface AckGate {
  /** Settles when everything stored so far is on disk; undefined when acks need not wait. */
  durable(): Promise<void> | undefined;
  /** Why no sample can be taken now (what is not on disk yet is over its bound), or undefined. */
  refusal(): string | undefined;
}

const IMMEDIATE: AckGate = { durable: () => undefined, refusal: () => undefined };

/**
 * Hears of what agents send, once it is accepted here (cluster mode passes it on to the replica
 * that owns the service: src/cluster). Acks wait for what `samples` and `settled` return, as
 * they wait for the disk: an agent forgets only what has been passed on.
 */
export interface IngestTap {
  /** A hello was taken (the endpoint's record exists). */
  hello(hello: AgentHello): void;
  /** Samples were stored (in sequence order, duplicates left out); settles once passed on. */
  samples(endpointId: string, service: string, samples: EndpointData[]): Promise<void> | undefined;
  /** The agent said goodbye (closed its stream on purpose). */
  goodbye(endpointId: string, service: string): void;
  /** Settles once everything handed over for the endpoint so far is passed on. */
  settled(endpointId: string): Promise<void> | undefined;
  /** Why no sample can be taken now (what is not passed on yet is over its bound), or undefined. */
  refusal(): string | undefined;
}

/** What a forwarded hello or sample became (cluster mode's owner counts them). */
export type ForwardedOutcome =
  | 'stored'
  | 'duplicate'
  /** Older than every sample held: to be merged in with `backfillForwarded`. */
  | 'older'
  | 'refused'
  | 'unknown_endpoint'
  | 'live_here';

/** Settles when both do; undefined when neither waits. */
function both(
  a: Promise<void> | undefined,
  b: Promise<void> | undefined,
): Promise<void> | undefined {
  if (!a) return b;
  if (!b) return a;
  return Promise.all([a, b]).then(() => undefined);
}

/** How long a goodbye (half-close) waits for acks whose samples are still being written. */
const GOODBYE_ACK_WAIT_MS = 5_000;

/** One open agent stream. */
class AgentStream {
  record: EndpointRecord | undefined;
  /** Samples this stream may still send now (a token bucket: lps.maxSamplesPerSecond, lps.sampleBurst). */
  tokens: number;
  refilledAtMs: number;
  /** Highest sequence acknowledged on this stream. */
  private acked = 0;
  /** Highest sequence an ack is on its way for. */
  private promised = 0;
  private ackScheduled = false;
  /** Durable acks still waiting for their write (fsync), awaited before a goodbye ends the call. */
  private readonly pending = new Set<Promise<void>>();

  constructor(
    readonly call: ReportCall,
    burst: number,
    nowMs: number,
  ) {
    this.tokens = burst;
    this.refilledAtMs = nowMs;
  }

  /** Takes up to `n` samples' worth from the bucket; returns how many it may store. */
  take(n: number, rate: number, burst: number, nowMs: number): number {
    this.tokens = Math.min(burst, this.tokens + ((nowMs - this.refilledAtMs) / 1000) * rate);
    this.refilledAtMs = nowMs;
    const allowed = Math.min(n, Math.floor(this.tokens));
    this.tokens -= allowed;
    return allowed;
  }

  send(msg: ControlMessage): void {
    if (!this.call.writable) return;
    this.call.write(msg);
  }

  /**
   * Acknowledges `sequence` (everything stored of the endpoint up to it) once `durable` settles;
   * with no `durable`, at the end of this turn of the event loop, however many samples arrived in
   * it. An ack never goes back, and a failed write sends none: the agent keeps the samples and
   * the ack that follows the next successful write covers them.
   */
  ackWhen(sequence: number, durable: Promise<void> | undefined): void {
    if (sequence <= this.promised && sequence !== 0) return;
    this.promised = Math.max(this.promised, sequence);
    if (durable) {
      const settled = durable.then(
        () => this.ack(sequence),
        // Not on disk: the next message (a replay of these samples, or new ones) asks again.
        () => {
          this.promised = this.acked;
        },
      );
      this.pending.add(settled);
      void settled.finally(() => this.pending.delete(settled));
      return;
    }
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    setImmediate(() => {
      this.ackScheduled = false;
      this.ack(this.promised);
    });
  }

  /**
   * Resolves once every durable ack promised so far has been sent (or its write failed), or
   * after `maxMs`: an agent that says goodbye learns which of its last samples are stored.
   */
  drained(maxMs: number): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      Promise.allSettled([...this.pending]).then(() => undefined),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, maxMs))),
    ]).finally(() => clearTimeout(timer));
  }

  private ack(sequence: number): void {
    if (sequence < this.acked || (sequence === this.acked && sequence !== 0)) return;
    this.acked = sequence;
    this.send({ ack: { lastSequence: sequence } });
  }

  fail(code: grpc.status, details: string): void {
    this.call.emit('error', { code, details });
  }
}

/** Serves augur.v1.Telemetry/Report: validates what agents send and stores it. */
export class TelemetryServiceImpl {
  private readonly live = new Map<string, AgentStream>();
  /** Open Report streams in all (lps.maxStreams). */
  private open = 0;
  /** Open streams per connection and per client (lps.maxStreamsPerConnection, ...PerClient). */
  private readonly perConnection = new OpenCounts();
  private readonly perClient = new OpenCounts();
  private closing = false;

  constructor(
    private readonly store: EndpointStore,
    private readonly config: LpsConfig,
    private readonly metrics: LpsMetrics,
    private readonly logger: Logger,
    private readonly gate: AckGate = IMMEDIATE,
    private readonly authorizer?: Authorizer,
    private readonly tap?: IngestTap,
    /** Where refusals for a limit are counted and logged (the LPS's one, shared with Watch). */
    private readonly refusals = new LimitRefusals(metrics.limitRefusals, logger),
  ) {
    store.on('interval', (record) => {
      this.live
        .get(record.id)
        ?.send({ config: { monitoringInterval: secondsToDuration(record.interval) } });
    });
  }

  register(add: (name: string, def: typeof TelemetryService, impl: TelemetryServer) => void): void {
    add('augur.v1.Telemetry', TelemetryService, { report: (call) => this.onStream(call) });
  }

  /** Report streams open now (counted against lps.maxStreams). */
  get openStreams(): number {
    return this.open;
  }

  /** Whether an agent stream for the endpoint is open now. */
  isLive(endpointId: string): boolean {
    return this.live.has(endpointId);
  }

  /** Ends every open stream (shutdown): agents see UNAVAILABLE and reconnect elsewhere or later. */
  closeAll(): void {
    // Refuse streams from now on: agents reconnect within milliseconds, and a
    // sample stored and acknowledged after the LPS saved its state would be lost
    // to the next LPS (the agent drops acknowledged samples from its buffer).
    this.closing = true;
    for (const stream of this.live.values())
      stream.fail(grpc.status.UNAVAILABLE, 'LPS is shutting down');
  }

  private onStream(call: ReportCall): void {
    if (this.closing) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'LPS is shutting down' });
      return;
    }
    // Checked when the stream starts, before any of its messages is read: an open stream costs
    // its HTTP/2 and gRPC state (about 75 KB measured) whether or not its hello is ever taken.
    if (this.open >= this.config.maxStreams) {
      return this.refuse(
        call,
        'max_streams',
        `the LPS has ${this.open} Report streams open, its limit (lps.maxStreams ${this.config.maxStreams}); try again later`,
      );
    }
    const connection = connectionOf(call);
    const client = clientOf(call);
    const onConnection = this.perConnection.of(connection);
    const ofClient = this.perClient.of(client);
    if (onConnection >= this.config.maxStreamsPerConnection) {
      return this.refuse(
        call,
        'max_streams_per_connection',
        `this connection has ${onConnection} Report streams open, the limit (lps.maxStreamsPerConnection ${this.config.maxStreamsPerConnection})`,
      );
    }
    if (ofClient >= this.config.maxStreamsPerClient) {
      return this.refuse(
        call,
        'max_streams_per_client',
        `client ${client} has ${ofClient} Report streams open, the limit (lps.maxStreamsPerClient ${this.config.maxStreamsPerClient})`,
      );
    }
    this.open += 1;
    this.perConnection.add(connection);
    this.perClient.add(client);
    const stream = new AgentStream(call, this.config.sampleBurst, Date.now());
    this.metrics.streams.inc();
    let closed = false;
    const close = (goodbye: boolean) => {
      if (closed) return;
      closed = true;
      this.metrics.streams.dec();
      this.open -= 1;
      this.perConnection.remove(connection);
      this.perClient.remove(client);
      const record = stream.record;
      if (record && this.live.get(record.id) === stream) {
        this.live.delete(record.id);
        this.store.disconnect(record, goodbye);
        if (goodbye) this.tap?.goodbye(record.id, record.service);
        this.logger.info(
          { endpoint: record.id, goodbye },
          goodbye
            ? `agent of ${record.id} disconnected: goodbye`
            : `agent of ${record.id} disconnected without a goodbye (process or connection lost)`,
        );
      }
    };
    call.on('data', (msg: AgentMessage) => this.onMessage(stream, msg));
    // A half-close is a goodbye; a connection that died (the agent's process killed, its
    // host gone) also ends the stream, with the call cancelled at once after. Only the
    // first drains the endpoint; the second leaves it to go stale.
    // Acks still waiting for the sample log's fsync are sent before the call ends.
    call.on('end', () => {
      void stream.drained(GOODBYE_ACK_WAIT_MS).then(() =>
        setImmediate(() => {
          close(!call.cancelled);
          if (!call.cancelled) call.end();
        }),
      );
    });
    call.on('error', () => close(false));
    call.on('cancelled', () => close(false));
    call.on('close', () => close(false));
  }

  private onMessage(stream: AgentStream, msg: AgentMessage): void {
    if (this.closing) return; // unacknowledged: the agent replays it to the next LPS
    const now = Date.now();
    if (msg.hello) {
      if (stream.record)
        return this.violation(
          stream,
          grpc.status.FAILED_PRECONDITION,
          'hello sent twice on one stream',
        );
      const bad = validateHello(msg.hello);
      if (bad) {
        return this.violation(
          stream,
          grpc.status.INVALID_ARGUMENT,
          `hello.${bad.field}: ${bad.message}`,
        );
      }
      const id = msg.hello.endpointId;
      // Who says hello: with identities configured, the caller's (the interceptor already
      // refused a caller with none); each may report only the ids and services its principal
      // allows, and an id stays with the identity that holds its record.
      let owner: string | undefined;
      if (this.authorizer?.enabled) {
        const identity = this.authorizer.identify(presentedBy(stream.call, stream.call.metadata));
        if (isRefusal(identity)) {
          this.authorizer.refuse('telemetry', identity);
          return this.violation(stream, identity.code, identity.message);
        }
        const refused = this.authorizer.mayReport(identity, id, msg.hello.service);
        if (refused) return this.violation(stream, refused.code, refused.message);
        owner = identity?.name;
        const holder = this.store.ownerOf(id);
        if (owner !== undefined && holder !== undefined && holder !== owner) {
          const refusal = this.authorizer.refuse('telemetry', {
            code: grpc.status.PERMISSION_DENIED,
            reason: 'owner',
            message: `endpoint ${quoted(id)} is held by another identity; ${quoted(owner)} may not take it over while its record exists`,
          });
          return this.violation(stream, refusal.code, refusal.message);
        }
      }
      if (this.live.has(id)) {
        return this.violation(
          stream,
          grpc.status.ALREADY_EXISTS,
          `endpoint "${id}" is already reported by another live stream; each endpoint has one agent`,
        );
      }
      const full = this.store.admits(msg.hello);
      if (full) return this.refuse(stream.call, full.limit, full.message);
      const record = this.store.upsertFromHello(msg.hello, now, owner);
      stream.record = record;
      this.live.set(id, stream);
      this.tap?.hello(msg.hello);
      this.logger.info(
        { endpoint: id, service: record.service, address: `${record.address}:${record.port}` },
        `agent of ${id} connected (service ${record.service}, ${record.address}:${record.port})`,
      );
      stream.send({ config: { monitoringInterval: secondsToDuration(record.interval) } });
      // After an LPS restart this tells the agent which buffered samples are already stored;
      // some may have come on a stream that just broke and not be on disk yet.
      stream.ackWhen(record.lastSequence, both(this.gate.durable(), this.tap?.settled(id)));
      return;
    }
    const samples = msg.sample ? [msg.sample] : msg.batch?.samples;
    if (!samples) {
      stream.send({
        error: {
          sequence: 0,
          field: 'message',
          code: 'MISSING',
          message: 'AgentMessage has none of hello, sample, batch',
        },
      });
      return;
    }
    if (!stream.record) {
      return this.violation(
        stream,
        grpc.status.FAILED_PRECONDITION,
        'samples sent before the hello: send AgentHello first',
      );
    }
    if (samples.length > this.config.maxBatchSamples) {
      this.metrics.rejected.inc(
        { reason: 'BATCH_TOO_LARGE', field: 'batch.samples' },
        samples.length,
      );
      stream.send({
        error: {
          sequence: samples[0]?.sequence ?? 0,
          field: 'batch.samples',
          code: 'BATCH_TOO_LARGE',
          message: `a batch holds at most ${this.config.maxBatchSamples} samples, got ${samples.length}`,
        },
      });
      return;
    }
    const refusal = this.gate.refusal() ?? this.tap?.refusal();
    if (refusal) return this.violation(stream, grpc.status.UNAVAILABLE, refusal);
    const allowed = stream.take(
      samples.length,
      this.config.maxSamplesPerSecond,
      this.config.sampleBurst,
      now,
    );
    const stored: EndpointData[] = [];
    for (let i = 0; i < allowed; i++)
      if (this.ingest(stream, stream.record, samples[i]!, now)) stored.push(samples[i]!);
    if (allowed < samples.length) this.rateLimited(stream, samples, allowed);
    const record = stream.record;
    const passed =
      this.tap && stored.length > 0
        ? this.tap.samples(record.id, record.service, stored)
        : this.tap?.settled(record.id);
    stream.ackWhen(record.lastSequence, both(this.gate.durable(), passed));
  }

  /**
   * A hello another replica took (cluster mode: this replica owns the service), checked as the
   * wire's are. `atMs` is when that replica passed it on. An endpoint whose agent is connected
   * here is left as it is.
   */
  ingestForwardedHello(hello: AgentHello, atMs: number): ForwardedOutcome {
    if (this.live.has(hello.endpointId)) return 'live_here';
    if (validateHello(hello) || this.store.admits(hello)) {
      this.metrics.rejected.inc({ reason: 'FORWARDED_HELLO', field: 'hello' });
      return 'refused';
    }
    // A hello older than what is known of the endpoint must not make it look silent.
    const known = this.store.get(hello.endpointId);
    const record = this.store.upsertFromHello(hello, Math.max(atMs, known?.lastSeenMs ?? 0));
    // Its stream is on another replica: here it is known by its samples, as after a restart.
    this.store.disconnect(record, false);
    return 'stored';
  }

  /** A sample another replica stored and passed on, checked and stored as the wire's are. */
  ingestForwardedSample(endpointId: string, sample: EndpointData, atMs: number): ForwardedOutcome {
    const record = this.store.get(endpointId);
    if (!record) return 'unknown_endpoint';
    const outcome = this.store.accept(record, sample, atMs);
    if (outcome === 'stored') {
      this.metrics.samples.inc();
      return 'stored';
    }
    if (outcome === 'duplicate') {
      const { series } = record;
      const oldest = series.size > 0 ? series.at('sequence', series.size - 1) : 0;
      return sample.sequence < oldest ? 'older' : 'duplicate';
    }
    this.metrics.rejected.inc({ reason: outcome.code, field: outcome.field });
    return 'refused';
  }

  /**
   * Merges samples `ingestForwardedSample` found older than an endpoint's history (this replica
   * stored the agent's newer samples itself before it owned the service). Returns how many.
   */
  backfillForwarded(
    endpointId: string,
    older: ReadonlyArray<{ sample: EndpointData; atMs: number }>,
  ): number {
    const record = this.store.get(endpointId);
    const n = record ? this.store.backfill(record, older) : 0;
    if (n > 0) this.metrics.samples.inc(n);
    return n;
  }

  /** The agent said goodbye to another replica: the endpoint drains. */
  ingestForwardedGoodbye(endpointId: string): void {
    const record = this.store.get(endpointId);
    if (record && !this.live.has(endpointId)) this.store.disconnect(record, true);
  }

  private ingest(
    stream: AgentStream,
    record: EndpointRecord,
    sample: EndpointData,
    now: number,
  ): boolean {
    const outcome = this.store.accept(record, sample, now);
    if (outcome === 'stored') {
      this.metrics.samples.inc();
      return true;
    } else if (outcome === 'duplicate') {
      this.metrics.duplicates.inc();
    } else {
      this.metrics.rejected.inc({ reason: outcome.code, field: outcome.field });
      stream.send({
        error: {
          sequence: sample.sequence,
          field: outcome.field,
          code: outcome.code,
          message: outcome.message,
        },
      });
    }
    return false;
  }

  /**
   * Refuses samples past the stream's rate (the stream stays open): one error message names the
   * first refused sequence and how many were refused; the ack covers only what was stored.
   */
  private rateLimited(
    stream: AgentStream,
    samples: readonly EndpointData[],
    allowed: number,
  ): void {
    const refused = samples.length - allowed;
    const { maxSamplesPerSecond, sampleBurst } = this.config;
    this.metrics.rejected.inc({ reason: 'RATE_LIMITED', field: 'sample' }, refused);
    this.refusals.note('max_samples_per_second', refused, stream.record?.id);
    stream.send({
      error: {
        sequence: samples[allowed]!.sequence,
        field: 'sample',
        code: 'RATE_LIMITED',
        message:
          `${refused} sample(s) from sequence ${samples[allowed]!.sequence} refused: a stream may send ` +
          `lps.maxSamplesPerSecond (${maxSamplesPerSecond}) samples a second, in bursts of up to ` +
          `lps.sampleBurst (${sampleBurst}); send them again later`,
      },
    });
  }

  /** Ends a stream with RESOURCE_EXHAUSTED for a configured limit, counted and logged (throttled). */
  private refuse(call: ReportCall, limit: LpsLimit, details: string): void {
    this.refusals.note(limit, 1, undefined, details);
    call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details });
  }

  private violation(stream: AgentStream, code: grpc.status, details: string): void {
    this.metrics.protocolErrors.inc({ code: grpc.status[code] });
    this.logger.warn(
      { endpoint: stream.record?.id, code: grpc.status[code], details },
      'agent stream ended',
    );
    stream.fail(code, details);
  }
}
