import type { Redis } from 'ioredis';
import type { Logger } from '../common/logger.js';
import { PrioritizedEndpointList } from '../gen/augur/v1/load_prediction.js';
import { ListStore } from '../lps/list-store.js';
import type { Keys } from './scripts.js';

/**
 * The lists every service's owner wrote to Redis, as this replica serves them: `lists` (every
 * version: LoadPrediction Get/Watch, the RRM, the dashboard) and `xdsLists` (the versions the
 * owner decided to push to xDS clients). Both are applied in version order only (an older or
 * equal version is ignored), so every replica holds the same list under the same version, and
 * xDS builds the same resources with the same versions everywhere.
 *
 * Kept when Redis is unreachable (replicas serve the last lists); `resync` reads every service's
 * current lists again when it is back.
 */
export class ReplicatedLists {
  readonly lists: ListStore;
  readonly xdsLists: ListStore;
  private readonly versions = new Map<string, number>();
  private readonly xdsVersions = new Map<string, number>();

  constructor(
    private readonly keys: Keys,
    private readonly logger: Logger,
  ) {
    const onError = (err: unknown, list: PrioritizedEndpointList): void =>
      logger.error({ err, service: list.service }, 'prioritized list listener failed');
    this.lists = new ListStore(onError);
    this.xdsLists = new ListStore(onError);
  }

  /** The version of a service's list served here (0: none yet). */
  version(service: string): number {
    return this.versions.get(service) ?? 0;
  }

  /** Applies a list and, if given, an xDS list, each only if newer than what is held. */
  apply(list: PrioritizedEndpointList | undefined, xds: PrioritizedEndpointList | undefined): void {
    if (list && list.version > this.version(list.service)) {
      this.versions.set(list.service, list.version);
      this.lists.publish(list);
    }
    if (xds && xds.version > (this.xdsVersions.get(xds.service) ?? 0)) {
      this.xdsVersions.set(xds.service, xds.version);
      this.xdsLists.publish(xds);
    }
  }

  /** Reads a service's current lists from Redis and applies them. */
  async fetch(redis: Redis, service: string): Promise<void> {
    const [l, x] = await redis.hmgetBuffer(this.keys.list(service), 'l', 'x');
    this.apply(decode(l, service, this.logger), decode(x, service, this.logger));
  }

  /** Reads every service's current lists (at start, and when Redis is reachable again). */
  async resync(redis: Redis): Promise<number> {
    const services = await redis.smembers(this.keys.services);
    await Promise.all(services.map((s) => this.fetch(redis, s)));
    return services.length;
  }
}

function decode(
  bytes: Buffer | null | undefined,
  service: string,
  logger: Logger,
): PrioritizedEndpointList | undefined {
  if (!bytes || bytes.length === 0) return undefined;
  try {
    const list = PrioritizedEndpointList.decode(bytes);
    if (list.service !== service) throw new Error(`it names service ${list.service}`);
    return list;
  } catch (err) {
    logger.error(
      { err: (err as Error).message, service },
      `the list of service ${service} in Redis cannot be read; keeping the one held`,
    );
    return undefined;
  }
}
