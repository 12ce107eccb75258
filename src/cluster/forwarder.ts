import type { Redis } from 'ioredis';
import { AgentMessage, type AgentHello, type EndpointData } from '../gen/augur/v1/telemetry.js';
import type { IngestTap } from '../lps/telemetry-service.js';
import type { Keys } from './scripts.js';

/** Kinds of entries in a service's sample stream (field `t`). */
export const ENTRY = { hello: 'h', samples: 's', goodbye: 'b' } as const;

export interface ForwarderOptions {
  /** A connection whose commands wait while Redis is unreachable (offline queue, no retry limit). */
  redis: Redis;
  keys: Keys;
  replicaId: string;
  streamMaxLen: number;
  maxBacklog: number;
  onForwarded: (kind: keyof typeof ENTRY, count: number) => void;
}

/**
 * Passes what this replica's agents send on to the owner of their service: every accepted
 * hello, stored batch and goodbye becomes an entry of the service's bounded Redis Stream (XADD
 * MAXLEN ~), the owner's included (its own agents' entries are duplicates it skips), so the
 * stream holds the service's recent history for whoever owns it next. Entries of one replica
 * keep their order (one connection); an ack to the agent waits for the XADD (IngestTap), so what
 * an agent forgets is in Redis. While Redis is unreachable the entries wait, in order, up to
 * `maxBacklog` samples; past it agents are refused (UNAVAILABLE) and keep their samples.
 */
export class Forwarder implements IngestTap {
  private backlog = 0;
  private readonly tails = new Map<string, Promise<void>>();
  private readonly knownServices = new Set<string>();
  /** The hello of each endpoint whose agent said hello here (until its goodbye). */
  private readonly hellos = new Map<string, AgentHello>();

  constructor(private readonly options: ForwarderOptions) {}

  hello(hello: AgentHello): void {
    const { redis, keys } = this.options;
    this.hellos.set(hello.endpointId, hello);
    const message = AgentMessage.encode({ hello }).finish();
    // The service's hellos are kept apart from its stream, which MAXLEN trims: whoever owns the
    // service next knows every endpoint, however long ago it said hello.
    const record = Buffer.alloc(8 + message.length);
    record.writeDoubleBE(Date.now(), 0);
    record.set(message, 8);
    void redis.hset(keys.hellos(hello.service), hello.endpointId, record).catch(() => undefined);
    if (!this.knownServices.has(hello.service)) {
      this.knownServices.add(hello.service);
      void redis.sadd(keys.services, hello.service).catch(() => {
        this.knownServices.delete(hello.service);
      });
    }
    void this.add(
      hello.endpointId,
      hello.service,
      ENTRY.hello,
      AgentMessage.encode({ hello }).finish(),
      1,
      'hello',
    ).catch(() => undefined);
  }

  samples(endpointId: string, service: string, samples: EndpointData[]): Promise<void> {
    return this.add(
      endpointId,
      service,
      ENTRY.samples,
      AgentMessage.encode({ batch: { samples } }).finish(),
      samples.length,
      'samples',
    );
  }

  goodbye(endpointId: string, service: string): void {
    this.hellos.delete(endpointId);
    void this.options.redis
      .hdel(this.options.keys.hellos(service), endpointId)
      .catch(() => undefined);
    void this.add(endpointId, service, ENTRY.goodbye, new Uint8Array(), 1, 'goodbye').catch(
      () => undefined,
    );
  }

  settled(endpointId: string): Promise<void> | undefined {
    return this.tails.get(endpointId);
  }

  refusal(): string | undefined {
    if (this.backlog < this.options.maxBacklog) return undefined;
    return `cluster mode: ${this.backlog} samples wait to be passed on (Redis unreachable), the limit (cluster.maxForwardBacklog ${this.options.maxBacklog}); send them again later`;
  }

  /**
   * Passes on again the hello of every endpoint whose agent is still connected here (`isLive`),
   * and names their services and `services` (Redis came back, maybe empty). On this connection, after the
   * entries waiting for Redis, so a service is named only once its hellos are in.
   */
  reannounce(isLive: (endpointId: string) => boolean, services: Iterable<string>): void {
    this.knownServices.clear();
    for (const [id, hello] of [...this.hellos]) {
      if (isLive(id)) this.hello(hello);
      else this.hellos.delete(id);
    }
    const rest = [...services].filter((s) => !this.knownServices.has(s));
    if (rest.length > 0)
      void this.options.redis.sadd(this.options.keys.services, ...rest).catch(() => undefined);
  }

  /** Samples accepted but not yet in Redis. */
  get pending(): number {
    return this.backlog;
  }

  private add(
    endpointId: string,
    service: string,
    kind: string,
    data: Uint8Array,
    count: number,
    label: keyof typeof ENTRY,
  ): Promise<void> {
    const { redis, keys, replicaId, streamMaxLen } = this.options;
    this.backlog += count;
    const sent = redis
      .xadd(
        keys.samples(service),
        'MAXLEN',
        '~',
        streamMaxLen,
        '*',
        't',
        kind,
        'r',
        replicaId,
        'e',
        endpointId,
        'd',
        Buffer.from(data.buffer, data.byteOffset, data.byteLength),
      )
      .then(() => {
        this.options.onForwarded(label, count);
      });
    const done = (): void => {
      this.backlog -= count;
      if (this.tails.get(endpointId) === sent) this.tails.delete(endpointId);
    };
    sent.then(done, done);
    this.tails.set(endpointId, sent);
    return sent;
  }
}
