import { hostname } from 'node:os';
import { Redis, type RedisOptions } from 'ioredis';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { HttpHost } from '../common/http-host.js';
import { AugurError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { Lps } from '../lps/lps.js';
import type { ClusterConfig } from './config.js';
import { AgentMessage } from '../gen/augur/v1/telemetry.js';
import { Forwarder } from './forwarder.js';
import { Intake } from './intake.js';
import { ListWriter } from './list-writer.js';
import { Ownership, type Held } from './ownership.js';
import { ReplicatedLists } from './replicated-lists.js';
import { Keys, WRITE_FENCED } from './scripts.js';

export interface ClusterOptions {
  config: ClusterConfig;
  /** xds.hysteresis, applied by each service's owner for every replica. */
  hysteresis: number;
  registry: Registry;
  logger: Logger;
}

/** What /cluster answers. */
export interface ClusterStatus {
  replica: string;
  redis: 'up' | 'down';
  replicas: string[];
  services: number;
  owned: Array<{ service: string; token: number; ready: boolean; listVersion: number }>;
}

/**
 * Cluster mode: this replica's part in a group of `augur serve` replicas sharing one Redis
 * (README "Cluster mode"). Built before the LPS, which it hands `lists`/`xdsLists` (the
 * replicated lists every part serves) and `tap` (sample forwarding); started once the LPS has
 * started, with the LPS it then drives for the services it owns.
 */
export class Cluster {
  readonly replicaId: string;
  readonly replicated: ReplicatedLists;
  readonly tap: Forwarder;
  private readonly keys: Keys;
  private readonly cmd: Redis;
  private readonly fwd: Redis;
  private readonly sub: Redis;
  private readonly reader: Redis;
  private readonly ownership: Ownership;
  private readonly writer: ListWriter;
  private intake: Intake | undefined;
  private lps: Lps | undefined;
  /** Owned services whose stream is read up to date: their lists are written. */
  private readonly ready = new Set<string>();
  private unsubscribe: (() => void) | undefined;
  private readonly metrics;
  private started = false;
  private stopping = false;

  constructor(private readonly options: ClusterOptions) {
    const { config, logger, registry } = options;
    this.replicaId = config.replicaId || `${hostname()}:${process.pid}`;
    this.keys = new Keys(config.keyPrefix);
    const base: RedisOptions = {
      lazyConnect: true,
      connectionName: `augur:${this.replicaId}`,
      retryStrategy: (times) => Math.min(times * 100, 1000),
    };
    const renewMs = config.renewInterval * 1000;
    // Leases, lists, resyncs: fail at once while Redis is unreachable (a lease must not be
    // renewed late from a queue), and give up on a command after a renewal interval.
    this.cmd = new Redis(config.redis, {
      ...base,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: Math.max(500, 2 * renewMs),
    });
    // Forwarded samples wait, in order, while Redis is unreachable (Forwarder bounds them).
    this.fwd = new Redis(config.redis, { ...base, maxRetriesPerRequest: null });
    this.sub = new Redis(config.redis, { ...base, enableOfflineQueue: true });
    this.reader = new Redis(config.redis, {
      ...base,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
    });
    for (const [name, c] of [
      ['commands', this.cmd],
      ['forwarding', this.fwd],
      ['subscriber', this.sub],
      ['reader', this.reader],
    ] as const)
      c.on('error', (err: Error) =>
        logger.debug({ err: err.message, connection: name }, 'Redis connection error'),
      );

    const backlog: Gauge = new Gauge({
      name: 'augur_cluster_forward_backlog',
      help: 'Samples accepted but not yet in Redis',
      registers: [registry],
      collect: () => backlog.set(this.tap.pending),
    });
    this.metrics = {
      backlog,
      owned: new Gauge({
        name: 'augur_cluster_owned_services',
        help: 'Services whose lease this replica holds',
        registers: [registry],
      }),
      redisUp: new Gauge({
        name: 'augur_cluster_redis_up',
        help: '1 while the last heartbeat reached Redis within a lease TTL',
        registers: [registry],
      }),
      takeovers: new Counter({
        name: 'augur_cluster_leases_acquired_total',
        help: 'Leases this replica took',
        registers: [registry],
      }),
      lost: new Counter({
        name: 'augur_cluster_leases_lost_total',
        help: 'Leases this replica lost or gave back',
        registers: [registry],
      }),
      forwarded: new Counter({
        name: 'augur_cluster_forwarded_total',
        help: 'Hellos, samples and goodbyes this replica passed on to sample streams',
        labelNames: ['kind'],
        registers: [registry],
      }),
      intake: new Counter({
        name: 'augur_cluster_stream_entries_total',
        help: 'Hellos and samples read from the sample streams of owned services, by outcome',
        labelNames: ['outcome'],
        registers: [registry],
      }),
      checkpoints: new Counter({
        name: 'augur_cluster_checkpoints_total',
        help: 'Checkpoints of owned services written by this replica, by outcome',
        labelNames: ['outcome'],
        registers: [registry],
      }),
      writes: new Counter({
        name: 'augur_cluster_list_writes_total',
        help: 'Lists written to Redis by this replica as owner, by outcome',
        labelNames: ['outcome'],
        registers: [registry],
      }),
    };
    this.metrics.redisUp.set(0);

    this.replicated = new ReplicatedLists(this.keys, logger.child({ part: 'cluster' }));
    this.tap = new Forwarder({
      redis: this.fwd,
      keys: this.keys,
      replicaId: this.replicaId,
      streamMaxLen: config.streamMaxLen,
      maxBacklog: config.maxForwardBacklog,
      onForwarded: (kind, n) => this.metrics.forwarded.inc({ kind }, n),
    });
    this.ownership = new Ownership({
      redis: this.cmd,
      keys: this.keys,
      replicaId: this.replicaId,
      leaseTtlMs: config.leaseTtl * 1000,
      renewIntervalMs: renewMs,
      logger: logger.child({ part: 'cluster' }),
    });
    this.writer = new ListWriter({
      redis: this.cmd,
      keys: this.keys,
      replicaId: this.replicaId,
      replicated: this.replicated,
      hysteresis: options.hysteresis,
      logger: logger.child({ part: 'cluster' }),
      onOutcome: (outcome) => this.metrics.writes.inc({ outcome }),
      onFenced: (service) => this.release(service, 'a write was fenced'),
    });
  }

  /** Connects to Redis, loads every service's lists, and starts taking part. */
  async start(lps: Lps, http?: HttpHost): Promise<void> {
    const { config, logger } = this.options;
    this.lps = lps;
    try {
      await Promise.all([this.cmd, this.fwd, this.sub, this.reader].map((c) => c.connect()));
      const info = await this.cmd.info('server');
      const major = Number(/redis_version:(\d+)/.exec(info)?.[1] ?? 0);
      if (major < 7) throw new Error(`Redis ${major} found; cluster mode needs Redis >= 7`);
      const services = await this.replicated.resync(this.cmd);
      logger.info(
        { replica: this.replicaId, redis: redacted(config.redis), services },
        `cluster mode: replica ${this.replicaId} joined (Redis ${redacted(config.redis)}, ${services} services)`,
      );
    } catch (err) {
      this.disconnectAll();
      throw new AugurError(
        'CLUSTER_REDIS_UNREACHABLE',
        `cluster mode: cannot use Redis at ${redacted(config.redis)} (cluster.redis): ${(err as Error).message}`,
        { cause: err },
      );
    }
    this.started = true;
    this.sub.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
      void this.replicated.fetch(this.cmd, message.toString()).catch(() => undefined);
    });
    await this.sub.subscribe(this.keys.listsChannel);
    // After Redis comes back (maybe empty: restarted without persistence): read every list
    // again, and name our services again so their owners are found.
    this.cmd.on('ready', () => void this.resync());

    this.intake = new Intake({
      reader: this.reader,
      redis: this.cmd,
      keys: this.keys,
      telemetry: lps.telemetry,
      logger: logger.child({ part: 'cluster' }),
      onEntry: (outcome) => this.metrics.intake.inc({ outcome }),
    });
    this.intake.start();
    this.unsubscribe = lps.scoredLists.subscribe((list) => {
      if (this.ready.has(list.service)) void this.writer.write(list);
    });
    this.ownership.on('acquired', (held) => void this.take(held));
    this.ownership.on('lost', (service) => this.release(service));
    this.ownership.start();
    http?.route('/cluster', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(this.status()));
    });
    this.heartbeatGauge = setInterval(() => {
      this.metrics.redisUp.set(this.ownership.connected ? 1 : 0);
      this.metrics.owned.set(this.ownership.owned().length);
    }, 1000);
    this.heartbeatGauge.unref();
    if (config.checkpointInterval > 0) {
      this.checkpointTimer = setInterval(
        () => void this.checkpointAll(),
        config.checkpointInterval * 1000,
      );
      this.checkpointTimer.unref();
    }
  }

  private heartbeatGauge: NodeJS.Timeout | undefined;
  private checkpointTimer: NodeJS.Timeout | undefined;
  private checkpointing: Promise<void> | undefined;

  /**
   * Writes the learnt forecaster state of each owned, caught-up service's endpoints (fenced: a
   * replica that lost the lease writes nothing). One at a time; never throws.
   */
  private async checkpointAll(): Promise<void> {
    const scorer = this.lps?.checkpointable();
    if (!scorer || this.checkpointing) return this.checkpointing;
    const run = async (): Promise<void> => {
      const byService = new Map<string, string[]>();
      for (const r of this.lps!.store.all()) {
        if (!this.ready.has(r.service)) continue;
        const ids = byService.get(r.service) ?? [];
        ids.push(r.id);
        byService.set(r.service, ids);
      }
      for (const held of this.ownership.owned()) {
        const ids = byService.get(held.service);
        if (!ids || !this.ready.has(held.service)) continue;
        const body = JSON.stringify({ atMs: Date.now(), endpoints: scorer.checkpoint(ids) });
        try {
          const written = Number(
            await WRITE_FENCED.run(
              this.cmd,
              [this.keys.lease(held.service), this.keys.checkpoint(held.service)],
              [this.replicaId, held.token, 'd', body],
            ),
          );
          this.metrics.checkpoints.inc({ outcome: written === 1 ? 'written' : 'fenced' });
        } catch {
          this.metrics.checkpoints.inc({ outcome: 'failed' });
        }
      }
    };
    this.checkpointing = run().finally(() => (this.checkpointing = undefined));
    return this.checkpointing;
  }

  /** Restores a service's checkpoint into the scorer (applied before its next scoring pass). */
  private async restoreCheckpoint(service: string): Promise<number> {
    const scorer = this.lps?.checkpointable();
    if (!scorer) return 0;
    const body = await this.cmd.hget(this.keys.checkpoint(service), 'd');
    if (!body) return 0;
    try {
      const parsed = JSON.parse(body) as { endpoints?: Record<string, unknown> };
      return parsed.endpoints ? scorer.restore(parsed.endpoints) : 0;
    } catch {
      this.options.logger.warn({ service }, `the checkpoint of ${service} cannot be read; ignored`);
      return 0;
    }
  }

  status(): ClusterStatus {
    const view = this.ownership.view();
    return {
      replica: this.replicaId,
      redis: this.ownership.connected ? 'up' : 'down',
      replicas: view?.replicas ?? [],
      services: view?.services.length ?? 0,
      owned: this.ownership
        .owned()
        .map((h) => ({
          service: h.service,
          token: h.token,
          ready: this.ready.has(h.service),
          listVersion: this.replicated.version(h.service),
        }))
        .sort((a, b) => (a.service < b.service ? -1 : 1)),
    };
  }

  /** Gives every lease back, so the other replicas take over at once; then disconnects. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.heartbeatGauge);
    clearInterval(this.checkpointTimer);
    this.unsubscribe?.();
    if (this.started) {
      // The next owners resume from now, not from the last periodic checkpoint.
      await this.checkpointAll();
      await this.ownership.stop();
      await this.intake?.stop();
    }
    this.disconnectAll();
  }

  /** A service was taken: read its stream up to date, score, then write its lists. */
  private async take(held: Held): Promise<void> {
    const { logger } = this.options;
    const lps = this.lps!;
    const started = Date.now();
    this.metrics.takeovers.inc();
    try {
      await this.writer.begin(held.service, held.token, this.replicated.version(held.service));
      // Every endpoint of the service first (its stream may have been trimmed past their hellos),
      // then its stream from the start: the history of each.
      const hellos = await this.cmd.hgetallBuffer(this.keys.hellos(held.service));
      for (const record of Object.values(hellos)) {
        if (record.length < 8) continue;
        const hello = AgentMessage.decode(record.subarray(8)).hello;
        const atMs = Math.min(record.readDoubleBE(0), Date.now());
        if (hello)
          this.metrics.intake.inc({ outcome: lps.telemetry.ingestForwardedHello(hello, atMs) });
      }
      const hellosAt = Date.now();
      const replayed = await this.intake!.add(held.service);
      const replayedAt = Date.now();
      if (!this.ownership.holds(held.service, held.token)) return;
      // The checkpoint first (an endpoint whose scorer state does not exist yet takes it when it is
      // created, and learns its cost only from the samples the checkpoint had not), then one pass.
      const restored = await this.restoreCheckpoint(held.service);
      await lps.rescore();
      if (!this.ownership.holds(held.service, held.token)) return;
      this.ready.add(held.service);
      const list = lps.scoredLists.get(held.service);
      if (list) await this.writer.write(list);
      logger.info(
        {
          service: held.service,
          token: held.token,
          catchUpMs: Date.now() - started,
          // Where the catch-up went: the hellos, the replay of the stream, scoring and the first write.
          hellosMs: hellosAt - started,
          replayMs: replayedAt - hellosAt,
          replayedEntries: replayed,
          scoreAndWriteMs: Date.now() - replayedAt,
          restoredEndpoints: restored,
          listVersion: this.replicated.version(held.service),
        },
        `cluster: service ${held.service} taken over; its lists are written by this replica`,
      );
    } catch (err) {
      logger.warn(
        { err: (err as Error).message, service: held.service },
        'cluster: could not take over a service; giving its lease up',
      );
      this.release(held.service);
    }
  }

  private release(service: string, reason?: string): void {
    this.metrics.lost.inc();
    this.ready.delete(service);
    this.writer.end(service);
    this.intake?.remove(service);
    if (reason)
      this.options.logger.warn({ service, reason }, `cluster: stopped writing ${service}`);
  }

  private async resync(): Promise<void> {
    const { logger } = this.options;
    try {
      this.tap.reannounce(
        (id) => this.lps?.telemetry.isLive(id) ?? false,
        this.replicated.lists.services(),
      );
      const n = await this.replicated.resync(this.cmd);
      logger.info({ services: n }, 'cluster: Redis reachable again; lists resynchronised');
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'cluster: resynchronisation failed');
    }
  }

  private disconnectAll(): void {
    for (const c of [this.cmd, this.fwd, this.sub, this.reader]) c.disconnect();
  }
}

/** The Redis URL without its password, for logs. */
export function redacted(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}
