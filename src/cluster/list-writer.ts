import type { Redis } from 'ioredis';
import type { Logger } from '../common/logger.js';
import { PrioritizedEndpointList } from '../gen/augur/v1/load_prediction.js';
import { publishedEndpoints, samePlace, type PublishedEndpoint } from '../xds/resources.js';
import { trafficMoved } from '../xds/publisher.js';
import type { ReplicatedLists } from './replicated-lists.js';
import { WRITE_LIST, type Keys } from './scripts.js';

/** What an owner knows of a service it writes. */
interface Writing {
  token: number;
  /** Version of the last list written (versions continue across owners: read from Redis). */
  version: number;
  /** Endpoints of the last list pushed to xDS clients. */
  pushed: PublishedEndpoint[] | undefined;
  /** Writes of this service, one after another (versions in order). */
  chain: Promise<void>;
}

export type WriteOutcome = 'written' | 'fenced' | 'stale' | 'failed';

export interface ListWriterOptions {
  redis: Redis;
  keys: Keys;
  replicaId: string;
  replicated: ReplicatedLists;
  /** xds.hysteresis: the fraction of traffic that must move for a push to xDS clients. */
  hysteresis: number;
  logger: Logger;
  onOutcome: (outcome: WriteOutcome) => void;
  /** A write was fenced: this replica does not own the service any more. */
  onFenced: (service: string) => void;
}

/**
 * The owner's side of replicated lists: each list the owner's scoring publishes for a service it
 * owns is stamped with the service's next version (continuing the previous owner's), marked for
 * xDS clients when it should be pushed to them (its membership changed, or at least
 * `hysteresis` of the traffic moves, against the last list pushed, whoever pushed it), and
 * written to Redis by a fenced script, which tells every replica. The owner applies what it
 * wrote as every other replica does.
 */
export class ListWriter {
  private readonly writing = new Map<string, Writing>();

  constructor(private readonly options: ListWriterOptions) {}

  /**
   * Starts writing a service this replica now owns (with `token`): its versions continue from
   * the one in Redis or the one this replica serves (`served`), whichever is higher (Redis may
   * have restarted empty).
   */
  async begin(service: string, token: number, served = 0): Promise<void> {
    const { redis, keys } = this.options;
    const [v, x] = await redis.hmgetBuffer(keys.list(service), 'v', 'x');
    let pushed: PublishedEndpoint[] | undefined;
    if (x && x.length > 0) {
      try {
        pushed = publishedEndpoints(PrioritizedEndpointList.decode(x)).endpoints;
      } catch {
        pushed = undefined;
      }
    }
    this.writing.set(service, {
      token,
      version: Math.max(Number(v?.toString() ?? 0) || 0, served),
      pushed,
      chain: Promise.resolve(),
    });
  }

  end(service: string): void {
    this.writing.delete(service);
  }

  writes(service: string): boolean {
    return this.writing.has(service);
  }

  /** Writes a list of a service this replica writes; others are ignored. Settles when done. */
  write(list: PrioritizedEndpointList): Promise<void> {
    const w = this.writing.get(list.service);
    if (!w) return Promise.resolve();
    w.chain = w.chain.then(() => this.writeNow(w, list));
    return w.chain;
  }

  private async writeNow(w: Writing, list: PrioritizedEndpointList): Promise<void> {
    if (this.writing.get(list.service) !== w) return;
    const { redis, keys, replicaId, replicated, logger } = this.options;
    const version = w.version + 1;
    const stamped: PrioritizedEndpointList = { ...list, version };
    const endpoints = publishedEndpoints(stamped).endpoints;
    const push =
      !w.pushed ||
      list.endpoints.length === 0 ||
      !sameMembership(w.pushed, endpoints) ||
      trafficMoved(w.pushed, endpoints) >= this.options.hysteresis;
    const bytes = Buffer.from(PrioritizedEndpointList.encode(stamped).finish());
    let result: number;
    try {
      result = Number(
        await WRITE_LIST.run(
          redis,
          [keys.lease(list.service), keys.list(list.service)],
          [replicaId, w.token, version, bytes, push ? bytes : '', keys.listsChannel, list.service],
        ),
      );
    } catch (err) {
      this.options.onOutcome('failed');
      logger.warn(
        { err: (err as Error).message, service: list.service },
        'could not write a list to Redis; the next one will be',
      );
      return;
    }
    if (result === 1) {
      w.version = version;
      if (push) w.pushed = endpoints;
      this.options.onOutcome('written');
      replicated.apply(stamped, push ? stamped : undefined);
    } else if (result === -1) {
      // Someone wrote a newer version (this replica's view is behind): catch up and go on.
      this.options.onOutcome('stale');
      await this.begin(list.service, w.token, w.version);
    } else {
      this.options.onOutcome('fenced');
      this.writing.delete(list.service);
      this.options.onFenced(list.service);
    }
  }
}

function sameMembership(a: readonly PublishedEndpoint[], b: readonly PublishedEndpoint[]): boolean {
  if (a.length !== b.length) return false;
  const byId = new Map(a.map((e) => [e.id, e]));
  return b.every((e) => {
    const k = byId.get(e.id);
    return k !== undefined && samePlace(k, e);
  });
}
