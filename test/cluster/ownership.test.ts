import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plan, type ClusterView } from '../../src/cluster/ownership.js';
import { ACQUIRE, Keys, RELEASE, TICK, WRITE_LIST } from '../../src/cluster/scripts.js';
import { loadConfig } from '../../src/serve/config.js';
import { startTestPlane } from '../support/control-plane.js';
import { RedisServer } from '../support/redis-server.js';

/*
 * Ownership's parts on their own: the plan every replica works out, the configuration's checks,
 * a Redis that cannot be reached, and the Lua scripts' fencing against a real redis-server.
 */

const view = (
  replicas: string[],
  owners: Record<string, string>,
  more: string[] = [],
): ClusterView => ({
  replicas,
  services: [...Object.keys(owners), ...more],
  owners: new Map(Object.entries(owners)),
});

const counts = (p: Map<string, string>): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const r of p.values()) out[r] = (out[r] ?? 0) + 1;
  return out;
};

describe('the ownership plan', () => {
  it('gives each replica its fair share and keeps current owners where they fit', () => {
    const p = plan(view(['a', 'b', 'c'], { s1: '', s2: '', s3: '', s4: '' }));
    expect(Object.values(counts(p)).sort()).toEqual([1, 1, 2]);
    // Current owners keep theirs.
    const kept = plan(view(['a', 'b', 'c'], { s1: 'c', s2: 'b', s3: 'a' }));
    expect(Object.fromEntries(kept)).toEqual({ s1: 'c', s2: 'b', s3: 'a' });
  });

  it('moves the extras of a replica to one that joined, and the services of one that left', () => {
    const joined = plan(view(['a', 'b', 'c'], { s1: 'a', s2: 'a', s3: 'b', s4: 'b' }));
    // a and b hold two each: one of them (a, first by name) keeps the remainder.
    expect(counts(joined)).toEqual({ a: 2, b: 1, c: 1 });
    expect(joined.get('s3')).toBe('b');
    expect(joined.get('s4')).toBe('c');
    const left = plan(view(['a', 'b'], { s1: 'a', s2: 'b', s3: 'gone', s4: 'gone' }));
    expect(counts(left)).toEqual({ a: 2, b: 2 });
    expect(left.get('s1')).toBe('a');
    expect(left.get('s2')).toBe('b');
  });

  it('is the same on every replica whatever order they list things in', () => {
    const owners = { s1: 'b', s2: '', s3: '', s4: 'x', s5: '' };
    const one = plan(view(['a', 'b', 'c'], owners));
    const two = plan({
      replicas: ['c', 'a', 'b'],
      services: Object.keys(owners).reverse(),
      owners: new Map(Object.entries(owners)),
    });
    expect(Object.fromEntries(two)).toEqual(Object.fromEntries(one));
  });
});

describe('cluster configuration', () => {
  it('names a bad Redis address and a renewal too slow for the lease', () => {
    expect(() => loadConfig({ env: {}, flags: { cluster: { redis: 'localhost:6379' } } })).toThrow(
      /cluster\.redis/,
    );
    expect(() =>
      loadConfig({ env: {}, flags: { cluster: { redis: '', leaseTtl: 3, renewInterval: 2 } } }),
    ).toThrow(/renewInterval/);
    expect(loadConfig({ env: {}, flags: {} }).cluster.redis).toBe('');
  });

  it('refuses to start when Redis cannot be reached, saying where it looked', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    await expect(
      startTestPlane({ cluster: { redis: `redis://127.0.0.1:${port}` }, xds: { warmup: 0 } }),
    ).rejects.toMatchObject({
      code: 'CLUSTER_REDIS_UNREACHABLE',
      message: expect.stringContaining(`redis://127.0.0.1:${port}`),
    });
  });
});

describe('the lease scripts on a real redis-server', () => {
  let server: RedisServer;
  let redis: Redis;
  const keys = new Keys('t');
  beforeAll(async () => {
    server = await RedisServer.start();
    redis = new Redis(server.url);
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  it('fences a stale owner: its token is refused once another replica took the lease', async () => {
    const lease = [keys.lease('svc'), keys.fence('svc')];
    const a = Number(await ACQUIRE.run(redis, lease, ['a', 150]));
    expect(a).toBe(1);
    expect(Number(await ACQUIRE.run(redis, lease, ['b', 150]))).toBe(0);
    const write = (replica: string, token: number, version: number): Promise<unknown> =>
      WRITE_LIST.run(
        redis,
        [keys.lease('svc'), keys.list('svc')],
        [replica, token, version, Buffer.from('list'), '', keys.listsChannel, 'svc'],
      );
    expect(Number(await write('a', a, 1))).toBe(1);
    expect(Number(await write('a', a, 1))).toBe(-1); // a version is never written twice
    // a's lease runs out (it stopped renewing); b takes it with a higher token.
    await new Promise((r) => setTimeout(r, 300));
    const b = Number(await ACQUIRE.run(redis, lease, ['b', 5000]));
    expect(b).toBe(2);
    expect(Number(await write('a', a, 2))).toBe(0);
    expect(Number(await RELEASE.run(redis, [keys.lease('svc')], ['a', a]))).toBe(0);
    expect(Number(await write('b', b, 2))).toBe(1);
    // The tick renews b's lease and reports the cluster as it is.
    await redis.sadd(keys.services, 'svc');
    const [renewed, replicas, services, owners] = (await TICK.run(
      redis,
      [keys.replicas, keys.services],
      ['b', 5000, keys.leasePrefix, 'svc', b],
    )) as [number[], string[], string[], string[]];
    expect(renewed).toEqual([1]);
    expect(replicas).toEqual(['b']);
    expect(services).toEqual(['svc']);
    expect(owners).toEqual([`b ${b}`]);
    expect(Number(await RELEASE.run(redis, [keys.lease('svc')], ['b', b]))).toBe(1);
  });
});
