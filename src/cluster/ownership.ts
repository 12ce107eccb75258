import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Logger } from '../common/logger.js';
import { ACQUIRE, Keys, RELEASE, TICK } from './scripts.js';

/** A lease this replica holds. */
export interface Held {
  service: string;
  /** Fencing token: every write for the service carries it. */
  token: number;
  /** Local clock when it was taken, ms. */
  sinceMs: number;
  /** Local clock until which the lease is surely ours (sent time of the last renewal + ttl). */
  validUntilMs: number;
}

export interface OwnershipEvents {
  /** A lease was taken: this replica now owns the service. */
  acquired: [held: Held];
  /** A lease was lost or given back: stop writing for the service. */
  lost: [service: string, reason: string];
}

export interface OwnershipOptions {
  redis: Redis;
  keys: Keys;
  replicaId: string;
  leaseTtlMs: number;
  renewIntervalMs: number;
  logger: Logger;
}

/** What the last tick saw of the cluster. */
export interface ClusterView {
  replicas: string[];
  services: string[];
  owners: Map<string, string>;
}

/**
 * This replica's part in who owns which service. Every `renewInterval` one script heartbeats,
 * renews the leases held and reads the cluster's state; then each replica works out the same
 * plan (`plan`: a fair share each, current owners kept where they fit) and acts on its own part
 * of it: takes the free services the plan gives it (or any free one left unowned for two
 * rounds, so a service never waits on a replica that is not acting), and gives back, gracefully,
 * those the plan gives to another live replica (after holding them two rounds, so a join does
 * not make leases flap).
 *
 * Takeover bound: a killed owner's leases and heartbeat expire together, at most `leaseTtl`
 * after its last renewal; the replica the plan then names takes each within one
 * `renewInterval`: at most leaseTtl + renewInterval after the kill (4 s with the defaults),
 * leaseTtl + 2 × renewInterval if that replica is itself gone.
 */
export class Ownership extends EventEmitter<OwnershipEvents> {
  private readonly held = new Map<string, Held>();
  /** Local clock when each free service was first seen free. */
  private readonly freeSince = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;
  private lastView: ClusterView | undefined;
  private lastOkMs = 0;

  constructor(private readonly options: OwnershipOptions) {
    super();
  }

  start(): void {
    const run = (): void => {
      if (this.stopped) return;
      this.ticking = this.tick().finally(() => {
        this.ticking = undefined;
        if (!this.stopped) this.timer = setTimeout(run, this.options.renewIntervalMs);
      });
    };
    run();
  }

  /** Gives every lease back (a clean stop: the others take over at once, not after the TTL). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking;
    const { redis, keys, replicaId } = this.options;
    await Promise.all(
      [...this.held.values()].map((h) =>
        RELEASE.run(redis, [keys.lease(h.service)], [replicaId, h.token]).catch(() => 0),
      ),
    );
    for (const service of [...this.held.keys()]) this.drop(service, 'replica stopping');
  }

  owned(): Held[] {
    return [...this.held.values()];
  }

  holds(service: string, token: number): boolean {
    const h = this.held.get(service);
    return h !== undefined && h.token === token && Date.now() < h.validUntilMs;
  }

  view(): ClusterView | undefined {
    return this.lastView;
  }

  /** Whether the last heartbeat reached Redis within one lease TTL. */
  get connected(): boolean {
    return Date.now() - this.lastOkMs < this.options.leaseTtlMs;
  }

  /** One round: heartbeat, renew, rebalance. Never throws. */
  async tick(): Promise<void> {
    const { redis, keys, replicaId, leaseTtlMs, logger } = this.options;
    const sentAt = Date.now();
    const held = [...this.held.values()];
    let reply: [number[], string[], string[], string[]];
    try {
      reply = (await TICK.run(
        redis,
        [keys.replicas, keys.services],
        [replicaId, leaseTtlMs, keys.leasePrefix, ...held.flatMap((h) => [h.service, h.token])],
      )) as typeof reply;
    } catch (err) {
      // Redis unreachable: a lease is ours only until its last renewal's TTL runs out.
      for (const h of held)
        if (Date.now() >= h.validUntilMs) this.drop(h.service, 'lease expired: Redis unreachable');
      logger.warn({ err: (err as Error).message }, 'cluster heartbeat failed (Redis unreachable?)');
      return;
    }
    this.lastOkMs = Date.now();
    const [renewed, replicas, services, owners] = reply;
    held.forEach((h, i) => {
      if (!this.held.has(h.service)) return;
      if (renewed[i] === 1) h.validUntilMs = sentAt + leaseTtlMs;
      else this.drop(h.service, 'lease lost (expired and taken, or deleted)');
    });
    const view: ClusterView = {
      replicas,
      services,
      owners: new Map(services.map((s, i) => [s, (owners[i] ?? '').split(' ')[0]!])),
    };
    this.lastView = view;
    const target = plan(view);
    const now = Date.now();
    for (const h of [...this.held.values()]) {
      const to = target.get(h.service);
      if (to === undefined || to === replicaId) continue;
      if (now - h.sinceMs < 2 * this.options.renewIntervalMs) continue;
      await this.release(h, to);
    }
    for (const service of services) {
      if (view.owners.get(service)) {
        this.freeSince.delete(service);
        continue;
      }
      const since = this.freeSince.get(service) ?? now;
      this.freeSince.set(service, since);
      const mine = target.get(service) === replicaId;
      if (mine || now - since >= 2 * this.options.renewIntervalMs) await this.acquire(service);
    }
  }

  private async acquire(service: string): Promise<void> {
    const { redis, keys, replicaId, leaseTtlMs, logger } = this.options;
    const sentAt = Date.now();
    let token: number;
    try {
      token = Number(
        await ACQUIRE.run(
          redis,
          [keys.lease(service), keys.fence(service)],
          [replicaId, leaseTtlMs],
        ),
      );
    } catch (err) {
      logger.warn({ err: (err as Error).message, service }, 'could not take a lease');
      return;
    }
    if (!token) return;
    this.freeSince.delete(service);
    const h: Held = { service, token, sinceMs: Date.now(), validUntilMs: sentAt + leaseTtlMs };
    this.held.set(service, h);
    logger.info({ service, token }, `cluster: this replica now owns service ${service}`);
    this.emit('acquired', h);
  }

  private async release(h: Held, to: string): Promise<void> {
    const { redis, keys, replicaId } = this.options;
    // Stop writing first: nothing of ours may land after the next owner's first write.
    this.drop(h.service, `handed back for ${to}`);
    await RELEASE.run(redis, [keys.lease(h.service)], [replicaId, h.token]).catch(() => 0);
  }

  private drop(service: string, reason: string): void {
    if (!this.held.delete(service)) return;
    this.options.logger.info(
      { service, reason },
      `cluster: this replica no longer owns service ${service}: ${reason}`,
    );
    this.emit('lost', service, reason);
  }
}

/**
 * Who should own each service: the same answer on every replica that sees the same state. Each
 * live replica gets its fair share (services / replicas, the remainder one each to the replicas
 * that hold most now); a current owner keeps what fits in its share; the rest go, one at a time
 * in name order, to the replica with most room left (ties: a hash of service and replica, so
 * they spread evenly).
 */
export function plan(view: ClusterView): Map<string, string> {
  const replicas = [...view.replicas].sort();
  const out = new Map<string, string>();
  if (replicas.length === 0) return out;
  const services = [...view.services].sort();
  const holding = new Map<string, string[]>(replicas.map((r) => [r, []]));
  for (const s of services) holding.get(view.owners.get(s) ?? '')?.push(s);
  const base = Math.floor(services.length / replicas.length);
  const extra = services.length % replicas.length;
  const byHolding = [...replicas].sort(
    (a, b) => holding.get(b)!.length - holding.get(a)!.length || (a < b ? -1 : 1),
  );
  const room = new Map<string, number>(byHolding.map((r, i) => [r, base + (i < extra ? 1 : 0)]));
  const rest: string[] = [];
  for (const s of services) {
    const owner = view.owners.get(s) ?? '';
    const left = room.get(owner);
    if (left !== undefined && left > 0) {
      out.set(s, owner);
      room.set(owner, left - 1);
    } else rest.push(s);
  }
  for (const s of rest) {
    let best: string | undefined;
    for (const r of replicas) {
      if (
        best === undefined ||
        room.get(r)! > room.get(best)! ||
        (room.get(r) === room.get(best) && spread(s, r) > spread(s, best))
      )
        best = r;
    }
    out.set(s, best!);
    room.set(best!, room.get(best!)! - 1);
  }
  return out;
}

/** FNV-1a of service and replica: a tie-break that differs per service. */
function spread(service: string, replica: string): number {
  let h = 0x811c9dc5;
  for (const c of `${service}\0${replica}`) {
    h ^= c.charCodeAt(0);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
