import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent, type AgentOptions } from '../../src/agent/agent.js';
import { PrometheusRequests } from '../../src/agent/request-metrics.js';
import { loadConfig } from '../../src/serve/config.js';
import { startControlPlane, type ControlPlane } from '../../src/serve/control-plane.js';
import type { EndpointRecord } from '../../src/lps/types.js';
import { waitWithProgress } from '../support/progress.js';

/** Real LPS, real agents, real gRPC on loopback; intervals of 0.1 s keep it quick. */

let dataDir: string;
let backend: net.Server;
let backendAddress: string;
let planes: ControlPlane[] = [];
let agents: Agent[] = [];

async function startLps(grpcListen = '127.0.0.1:0'): Promise<ControlPlane> {
  const config = loadConfig({
    env: {},
    flags: { grpcListen, httpListen: '127.0.0.1:0', dataDir, logLevel: 'silent' },
  });
  const plane = await startControlPlane({ config });
  planes.push(plane);
  return plane;
}

async function startAgent(
  lps: string,
  id: string,
  extra: Partial<AgentOptions> = {},
): Promise<Agent> {
  const agent = await Agent.start({
    lps,
    endpointId: id,
    service: 'shop',
    address: backendAddress,
    intervalSeconds: 0.1,
    probe: { kind: 'tcp', address: backendAddress },
    healthTimeoutSeconds: 0.5,
    backoff: { initialSeconds: 0.05, maxSeconds: 0.4 },
    ...extra,
  });
  agents.push(agent);
  return agent;
}

/**
 * Waits for `cond` as long as the agents keep ticking: it fails after 80 ticks per agent
 * (8 s of their time at 0.1 s, on a quiet machine) without `cond`, or after 30 s without a
 * tick. A busy machine ticks less often, and gets as many ticks to get there.
 */
async function waitFor(what: string, cond: () => boolean, ticks = 80): Promise<void> {
  await waitWithProgress({
    what,
    check: cond,
    progress: () =>
      agents.length === 0 ? 0 : agents.reduce((n, a) => n + a.stats().ticks, 0) / agents.length,
    budget: ticks,
    stallMs: 30_000,
    pollMs: 20,
  });
}

const sequences = (r: EndpointRecord | undefined): number[] =>
  r ? Array.from(r.series.column('sequence')) : [];
const range = (from: number, to: number): number[] =>
  Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'augur-agent-lps-'));
  backend = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  backendAddress = `127.0.0.1:${(backend.address() as AddressInfo).port}`;
});

afterEach(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await Promise.all(planes.map((p) => p.stop()));
  agents = [];
  planes = [];
  await new Promise<void>((r) => backend.close(() => r()));
  await rm(dataDir, { recursive: true, force: true });
});

describe('agents streaming to the LPS', () => {
  it("sends the probe's request before the metrics scrape, so the endpoint answers the probe first", async () => {
    const paths: string[] = [];
    const web = http.createServer((req, res) => {
      paths.push(req.url ?? '');
      res.setHeader('content-type', 'text/plain');
      res.end(req.url === '/metrics' ? `http_requests_total ${paths.length}\n` : 'ok');
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
    try {
      const lps = await startLps();
      const agent = await startAgent(lps.grpcAddress, 'ordered', {
        probe: { kind: 'http', url: `${base}/healthz` },
        requests: new PrometheusRequests({
          url: `${base}/metrics`,
          requests: 'http_requests_total',
        }),
      });
      await waitFor('5 ticks', () => agent.stats().ticks >= 5);
      await agent.stop();
      // Each tick's two GETs arrive probe first: /healthz, /metrics, /healthz, /metrics, ...
      const pairs = paths.slice(0, 10);
      expect(pairs.length).toBe(10);
      for (let i = 0; i < pairs.length; i += 2)
        expect(pairs.slice(i, i + 2)).toEqual(['/healthz', '/metrics']);
    } finally {
      web.closeAllConnections();
      await new Promise<void>((r) => web.close(() => r()));
    }
  });

  it('delivers the samples of several agents, each stored in order with none missing', async () => {
    const lps = await startLps();
    const ids = ['shop-a', 'shop-b', 'shop-c'];
    const started = await Promise.all(ids.map((id) => startAgent(lps.grpcAddress, id)));
    const store = lps.lps.store;
    await waitFor('10 samples from every agent', () =>
      ids.every((id) => (store.get(id)?.samplesStored ?? 0) >= 10),
    );
    await Promise.all(started.map((a) => a.stop()));

    for (const [i, id] of ids.entries()) {
      const record = store.get(id)!;
      const sent = started[i]!.stats().sequence;
      expect(record.service).toBe('shop');
      expect(`${record.address}:${record.port}`).toBe(backendAddress);
      expect(record.capacity.cpuCores).toBeGreaterThanOrEqual(1);
      // Every sample the agent sent is stored once, in sequence order.
      expect(sequences(record)).toEqual(range(1, sent));
      expect(record.samplesStored).toBe(sent);
      const timestamps = Array.from(record.series.column('timestamp'));
      expect(timestamps).toEqual([...timestamps].sort((a, b) => a - b));
      for (const cpu of record.series.column('cpu')) expect(cpu).toBeGreaterThanOrEqual(0);
      expect(record.series.at('healthy')).toBe(1); // the TCP probe of the backend succeeds
      // The agent closed its stream on purpose: a goodbye, not a crash.
      expect(record.draining).toBe(true);
      expect(record.connected).toBe(false);
    }
  });

  it('samples at whole multiples of its interval on the host clock, or every interval from its start with alignToClock false', async () => {
    const lps = await startLps();
    const store = lps.lps.store;
    const phaseOf = (ms: number) => ms % 500;
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    // Start half an interval off the clock's multiples of 0.5 s.
    await new Promise((r) => setTimeout(r, (750 - phaseOf(Date.now())) % 500));
    await startAgent(lps.grpcAddress, 'aligned', { intervalSeconds: 0.5 });
    const free = await startAgent(lps.grpcAddress, 'free', {
      intervalSeconds: 0.5,
      alignToClock: false,
    });
    const startPhase = phaseOf(Date.now());
    await waitFor(
      '6 samples from each agent',
      () => ['aligned', 'free'].every((id) => (store.get(id)?.samplesStored ?? 0) >= 6),
      40,
    );
    expect(free.intervalSeconds).toBe(0.5);
    const phases = (id: string) =>
      Array.from(store.get(id)!.series.column('timestamp')).map(phaseOf);
    // A timer fires a little late (more on a busy machine), never early by much: the phases sit
    // just past 0, or a millisecond before it (Node's timers run on a monotonic clock in whole
    // milliseconds, so one can fire at 499 on the wall clock), hence the phase signed around 0.
    // The free agent's stay near its start's, 250 ms off, plus its timers' lateness, which adds
    // up from tick to tick.
    const signed = (phase: number) => (phase >= 250 ? phase - 500 : phase);
    const aligned = median(phases('aligned').map(signed));
    expect(aligned).toBeGreaterThan(-20);
    expect(aligned).toBeLessThan(150);
    const drift = Math.abs(median(phases('free')) - startPhase);
    expect(Math.min(drift, 500 - drift)).toBeLessThan(200);
  });

  it('follows a monitoring interval set by the LPS within one tick', async () => {
    const lps = await startLps();
    const ids = ['iv-a', 'iv-b'];
    const started = await Promise.all(ids.map((id) => startAgent(lps.grpcAddress, id)));
    const store = lps.lps.store;
    await waitFor('first samples', () =>
      ids.every((id) => (store.get(id)?.samplesStored ?? 0) >= 3),
    );

    const changedAt = Date.now();
    expect(lps.lps.setMonitoringInterval(ids, 0.4).sort()).toEqual(ids);
    await waitFor('agents to take the new interval', () =>
      started.every((a) => a.intervalSeconds === 0.4),
    );
    await waitFor('4 samples at the new interval', () =>
      ids.every(
        (id) =>
          Array.from(store.get(id)!.series.column('timestamp')).filter((t) => t > changedAt)
            .length >= 4,
      ),
    );

    for (const id of ids) {
      const ts = Array.from(store.get(id)!.series.column('timestamp'));
      const firstAfter = ts.findIndex((t) => t > changedAt);
      // At most one tick at the old interval may follow the change (one that was
      // due before the config reached the agent); from there on every gap is the
      // new interval.
      const after = ts.slice(firstAfter);
      const gaps = after.slice(1).map((t, k) => t - after[k]!);
      expect(gaps.length).toBeGreaterThanOrEqual(3);
      for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(350);
    }

    // And back to a short interval: applied at once too.
    lps.lps.setMonitoringInterval(ids, 0.1);
    await waitFor('agents to speed up', () => started.every((a) => a.intervalSeconds === 0.1));
    const before = store.get(ids[0]!)!.samplesStored;
    await waitFor('samples at 0.1 s', () => store.get(ids[0]!)!.samplesStored >= before + 5, 30);
  });

  it('reconnects after an LPS restart on the same port and replays the buffer: none lost, none twice', async () => {
    const first = await startLps();
    const port = first.grpcAddress.split(':')[1]!;
    const ids = ['rs-a', 'rs-b', 'rs-c'];
    const started = await Promise.all(
      ids.map((id) => startAgent(first.grpcAddress, id, { bufferSize: 1000 })),
    );
    // An agent whose buffer is too small for the outage: it must drop its oldest samples.
    const small = await startAgent(first.grpcAddress, 'rs-small', { bufferSize: 4 });
    await waitFor('samples before the restart', () =>
      [...ids, 'rs-small'].every((id) => (first.lps.store.get(id)?.samplesStored ?? 0) >= 5),
    );

    await first.stop();
    const storedByFirst = new Map(ids.map((id) => [id, first.lps.store.get(id)!.lastSequence]));
    await waitFor(
      'agents to buffer during the outage',
      () =>
        started.every((a) => !a.stats().connected && a.stats().buffered >= 8) &&
        small.stats().dropped >= 3,
    );
    const smallStoredByFirst = first.lps.store.get('rs-small')!.lastSequence;
    expect(small.stats().dropped).toBeGreaterThan(0);

    const second = await startLps(`127.0.0.1:${port}`);
    expect(second.grpcAddress).toBe(first.grpcAddress);
    await waitFor('every agent to reconnect and be acknowledged', () =>
      [...started, small].every((a) => a.stats().connected && a.stats().buffered <= 2),
    );
    // A few more samples over the new stream, then a clean stop.
    const resumedAt = started.map((a) => a.stats().sequence);
    await waitFor('samples after the reconnect', () =>
      started.every((a, i) => a.stats().lastAcked >= resumedAt[i]! + 3),
    );
    await Promise.all([...started, small].map((a) => a.stop()));

    for (const [i, id] of ids.entries()) {
      const record = second.lps.store.get(id)!;
      const stats = started[i]!.stats();
      expect(stats.streams).toBeGreaterThanOrEqual(2);
      expect(stats.dropped).toBe(0);
      // The restarted LPS restored what the first one stored (data dir) and got the
      // rest by replay: every sequence exactly once, strictly increasing.
      expect(record.lastSequence).toBe(stats.sequence);
      expect(sequences(record)).toEqual(range(1, stats.sequence));
      expect(record.samplesStored).toBe(stats.sequence);
      expect(stats.sequence).toBeGreaterThan(storedByFirst.get(id)! + 8);
    }

    // The small-buffer agent lost the oldest samples of the outage, one block right
    // after what the first LPS stored, and counted them as dropped. (It may count a
    // sample or two more: ones the first LPS stored just before stopping but never
    // got to acknowledge.)
    const smallRecord = second.lps.store.get('rs-small')!;
    const smallStats = small.stats();
    const got = sequences(smallRecord);
    const missing = range(1, smallStats.sequence).filter((s) => !got.includes(s));
    expect(missing.length).toBeGreaterThan(0);
    expect(missing.length).toBeLessThanOrEqual(smallStats.dropped);
    expect(missing).toEqual(range(smallStoredByFirst + 1, smallStoredByFirst + missing.length));
    expect(new Set(got).size).toBe(got.length);
    expect(got).toEqual([...got].sort((a, b) => a - b));
  });

  it('a second agent for a live endpoint is refused, backs off (bounded), and takes over when the first leaves', async () => {
    const lps = await startLps();
    const store = lps.lps.store;
    const first = await startAgent(lps.grpcAddress, 'dup');
    await waitFor('the first agent to report', () => (store.get('dup')?.samplesStored ?? 0) >= 3);

    // Jitter pinned to its top, so the delays are the ceilings: 0.05, 0.1, 0.2, 0.2, ...
    const second = await startAgent(lps.grpcAddress, 'dup', {
      backoff: { initialSeconds: 0.05, maxSeconds: 0.2 },
      random: () => 0.999,
    });
    await new Promise((r) => setTimeout(r, 1500));
    const refused = second.stats();
    expect(refused.connected).toBe(false);
    // Each refusal waited its backoff: about 9 attempts in 1.5 s, not hundreds.
    expect(refused.streams).toBeGreaterThanOrEqual(2);
    expect(refused.streams).toBeLessThanOrEqual(12);
    expect(refused.buffered).toBeGreaterThanOrEqual(5);

    await first.stop();
    const firstLast = store.get('dup')!.lastSequence;
    await waitFor('the second agent to take over', () => second.stats().connected);
    await waitFor('its buffered samples to be stored', () => second.stats().buffered <= 1);
    await waitFor(
      'live samples from it',
      () => store.get('dup')!.lastSequence >= firstLast + refused.buffered + 3,
    );
    await second.stop();

    // Its sequences restarted at 1 in a new agent; it continued after the first one's
    // instead. What it buffered while refused covers a time the first agent already
    // reported, so the LPS rejects those samples (timestamps not increasing) with a
    // SampleError each; everything else is stored once, in order.
    const record = store.get('dup')!;
    const got = sequences(record);
    const stats = second.stats();
    expect(record.lastSequence).toBe(stats.sequence);
    expect(got).toEqual([...new Set(got)].sort((a, b) => a - b));
    expect(got.length + stats.rejected).toBe(record.lastSequence);
    expect(stats.dropped).toBe(0);
  });

  it('continues after the sequences an earlier run of the same endpoint left in the LPS', async () => {
    const lps = await startLps();
    const store = lps.lps.store;
    const before = await startAgent(lps.grpcAddress, 'again');
    await waitFor(
      'samples from the first run',
      () => (store.get('again')?.samplesStored ?? 0) >= 5,
    );
    await before.stop();
    const last = store.get('again')!.lastSequence;

    // A new agent process for the same endpoint starts its sequences at 1 again.
    const after = await startAgent(lps.grpcAddress, 'again');
    await waitFor(
      'samples from the second run',
      () => store.get('again')!.samplesStored >= last + 5,
    );
    await after.stop();
    expect(after.stats().sequence).toBe(store.get('again')!.lastSequence);
    expect(sequences(store.get('again'))).toEqual(range(1, store.get('again')!.lastSequence));
  });
});
