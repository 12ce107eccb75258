/**
 * bench:cluster's harness, run small: a real redis-server, 3 real `augur serve --cluster`
 * replicas, 3 services × 4 endpoints, 6 ADS clients spread over the replicas, one kill -9 of an
 * owner; then one replica alone under the same load. It checks that the figures are measured
 * (samples flow and are stored by owners, each replica's clients received pushes, the takeover
 * was seen) and that every process it started has gone; it asserts no speed beyond the
 * documented takeover bound.
 */
import { describe, expect, it } from 'vitest';
import { clusterSection, parseClusterOptions, runClusterBench } from '../../bench/cluster.js';

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('bench:cluster harness', () => {
  it('rejects unknown and malformed flags with a clear error', () => {
    expect(() => parseClusterOptions(['--replicas', '5'])).toThrow(/unknown option --replicas/);
    expect(() => parseClusterOptions(['--endpoints', 'many'])).toThrow(
      /--endpoints must be a whole number/,
    );
    expect(() => parseClusterOptions(['--endpoints', '2', '--services', '3'])).toThrow(
      /--endpoints \(2\) must be >= --services/,
    );
    expect(parseClusterOptions([])).toMatchObject({
      endpoints: 15_000,
      clients: 100,
      kills: 5,
      services: 30,
    });
  });

  it('measures cluster and single-replica figures over real processes', async () => {
    const lines: string[] = [];
    const options = {
      ...parseClusterOptions([
        '--endpoints=12',
        '--services=3',
        '--clients=6',
        '--kills=1',
        '--duration=8',
        '--no-write',
      ]),
      log: (l: string) => lines.push(l),
    };
    const r = await runClusterBench(options);
    const { cluster, single } = r;

    for (const m of [cluster, single]) {
      expect(m.openStreams, m.mode).toBe(12);
      // 12 endpoints at 1 s: about 12 samples/s offered, and stored (an 8 s window on a loaded
      // machine: loose bounds, but samples flow end to end).
      expect(m.offeredPerSecond, m.mode).toBeGreaterThan(4);
      expect(m.offeredPerSecond, m.mode).toBeLessThan(20);
      expect(m.ackedPerSecond, m.mode).toBeGreaterThan(0);
      expect(m.storedPerSecond, m.mode).toBeGreaterThan(0);
      expect(m.pushesMeasured, m.mode).toBeGreaterThan(0);
      // Latencies are measured, not bounded here (a loaded machine): present and ordered.
      expect(m.pushP50Ms, m.mode).toBeGreaterThanOrEqual(0);
      expect(m.pushP99Ms, m.mode).toBeGreaterThanOrEqual(m.pushP50Ms);
      expect(m.pushMaxMs, m.mode).toBeGreaterThanOrEqual(m.pushP99Ms);
      expect(Number.isFinite(m.pushMaxMs), m.mode).toBe(true);
      for (const p of m.replicas) {
        expect(p.rssMb, `${m.mode} ${p.id}`).toBeGreaterThan(20);
        expect(p.cpuPercent, `${m.mode} ${p.id}`).toBeGreaterThan(0);
      }
    }
    expect(cluster.replicas.map((p) => p.id)).toEqual(['r1', 'r2', 'r3']);
    expect(single.replicas).toHaveLength(1);
    // Every replica's ADS clients received the owners' lists as EDS (their first answer, then the
    // pushes of the lists the owners marked for xDS: whether a service's weights moved enough in
    // a few seconds is up to its load, so pushes are counted over all replicas), and owners read
    // samples from the streams.
    for (const p of cluster.replicas) {
      expect(p.clients, p.id).toBe(2);
      expect(p.answered, p.id).toBe(p.clients);
    }
    expect(cluster.replicas.reduce((s, p) => s + p.pushes, 0)).toBeGreaterThan(0);
    expect(cluster.replicas.reduce((s, p) => s + p.services, 0)).toBe(3);
    expect(cluster.replicas.reduce((s, p) => s + p.ownedPerSecond, 0)).toBeGreaterThan(0);
    expect(cluster.redisCpuPercent).toBeGreaterThanOrEqual(0);

    // The takeover was seen: the lease within the documented bound (leaseTtl + 2 × renew, and
    // 1 s for a loaded machine), then the new owner's first list.
    expect(r.takeovers).toHaveLength(1);
    const t = r.takeovers[0]!;
    expect(t.leaseMs).toBeGreaterThan(0);
    expect(t.leaseMs).toBeLessThan(6000);
    expect(t.listMs).toBeGreaterThanOrEqual(t.leaseMs - 50);

    const section = clusterSection(r);
    expect(section).toMatch(/lease acquired by a survivor p50 \d+ ms, max \d+ ms/);
    expect(section).toContain('| cluster | r3 |');
    expect(section).toMatch(/load average at the end of the run: [\d.]+, /);
    expect(lines.some((l) => l.startsWith('kill 1/1:'))).toBe(true);

    // Nothing it started is left running.
    for (const pid of r.pids) expect(running(pid), `pid ${pid}`).toBe(false);
  }, 240_000);
});
