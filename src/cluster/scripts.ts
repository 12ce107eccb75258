import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/*
 * The Lua scripts that make ownership safe: each runs atomically in Redis, so a lease is taken,
 * renewed or given back, and a list or checkpoint written, only by the replica that holds the
 * service's lease with the newest fencing token. A stale owner (paused past its lease, then
 * woken) carries an older token and its writes are refused.
 *
 * A lease key holds `<replica> <token>`; tokens come from INCR on the service's fence key, so
 * they only grow. Keys of services are built inside the scripts from a prefix: augur needs a
 * single Redis server (not Redis Cluster, where every key must be declared).
 */

/** A script called by its SHA1, loaded again if Redis forgot it (a restart). */
export class Script {
  private readonly sha: string;

  constructor(
    readonly name: string,
    private readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(
    redis: Redis,
    keys: readonly string[],
    args: ReadonlyArray<string | number | Buffer>,
  ): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/**
 * Heartbeat, renewal of every lease this replica holds, and what it needs to rebalance, in one
 * round trip. KEYS: replicas (sorted set, score = expiry in Redis's clock), services (set).
 * ARGV: replica, ttl ms, lease key prefix, then service, token pairs of the leases held.
 * Returns { renewed (1/0 per pair), live replicas, services, owner of each service ('' none) }.
 */
export const TICK = new Script(
  'tick',
  `${NOW}
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local renewed = {}
for i = 4, #ARGV, 2 do
  local key = ARGV[3] .. ARGV[i]
  if redis.call('GET', key) == ARGV[1] .. ' ' .. ARGV[i + 1] then
    redis.call('PEXPIRE', key, ttl)
    renewed[#renewed + 1] = 1
  else
    renewed[#renewed + 1] = 0
  end
end
local services = redis.call('SMEMBERS', KEYS[2])
local owners = {}
for i, s in ipairs(services) do
  owners[i] = redis.call('GET', ARGV[3] .. s) or ''
end
return { renewed, redis.call('ZRANGE', KEYS[1], 0, -1), services, owners }
`,
);

/**
 * Takes a free lease. KEYS: lease, fence. ARGV: replica, ttl ms.
 * Returns the new fencing token, or 0 if the lease is held.
 */
export const ACQUIRE = new Script(
  'acquire',
  `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', ARGV[2])
return token
`,
);

/** Gives a lease back if it is still this holder's. KEYS: lease. ARGV: replica, token. Returns 1/0. */
export const RELEASE = new Script(
  'release',
  `
if redis.call('GET', KEYS[1]) == ARGV[1] .. ' ' .. ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`,
);

/**
 * Writes a service's list (and, when it is to be pushed to xDS clients, its xDS list) and tells
 * every replica. KEYS: lease, list hash. ARGV: replica, token, version, list bytes, xDS list
 * bytes ('' none), channel, service. Returns 1 written, 0 fenced (not the holder, or a newer
 * token wrote), -1 the version is not above the stored one.
 */
export const WRITE_LIST = new Script(
  'write-list',
  `
if redis.call('GET', KEYS[1]) ~= ARGV[1] .. ' ' .. ARGV[2] then return 0 end
local k = tonumber(redis.call('HGET', KEYS[2], 'k') or '0')
if k > tonumber(ARGV[2]) then return 0 end
local v = tonumber(redis.call('HGET', KEYS[2], 'v') or '0')
if v >= tonumber(ARGV[3]) then return -1 end
redis.call('HSET', KEYS[2], 'v', ARGV[3], 'k', ARGV[2], 'l', ARGV[4])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[2], 'x', ARGV[5]) end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
`,
);

/**
 * Writes a fenced blob (a checkpoint) under a hash field. KEYS: lease, hash. ARGV: replica,
 * token, field, bytes. Returns 1 written, 0 fenced.
 */
export const WRITE_FENCED = new Script(
  'write-fenced',
  `
if redis.call('GET', KEYS[1]) ~= ARGV[1] .. ' ' .. ARGV[2] then return 0 end
local k = tonumber(redis.call('HGET', KEYS[2], 'k') or '0')
if k > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], 'k', ARGV[2], ARGV[3], ARGV[4])
return 1
`,
);

/** Every Redis key and channel of one augur cluster. */
export class Keys {
  constructor(readonly prefix: string) {}
  get replicas(): string {
    return `${this.prefix}:replicas`;
  }
  get services(): string {
    return `${this.prefix}:services`;
  }
  get leasePrefix(): string {
    return `${this.prefix}:lease:`;
  }
  get listsChannel(): string {
    return `${this.prefix}:lists`;
  }
  lease(service: string): string {
    return `${this.leasePrefix}${service}`;
  }
  fence(service: string): string {
    return `${this.prefix}:fence:${service}`;
  }
  list(service: string): string {
    return `${this.prefix}:list:${service}`;
  }
  /** Hash: endpoint id → its last hello (8 bytes: ms as a float64, then the AgentMessage). */
  hellos(service: string): string {
    return `${this.prefix}:hellos:${service}`;
  }
  samples(service: string): string {
    return `${this.prefix}:samples:${service}`;
  }
  checkpoint(service: string): string {
    return `${this.prefix}:checkpoint:${service}`;
  }
}
