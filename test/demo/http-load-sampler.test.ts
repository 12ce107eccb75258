import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { HttpLoadSampler, parseHostLoad } from '../../src/agent/http-sampler.js';
import { AugurError } from '../../src/common/errors.js';
import { DemoBackend } from '../../src/demo/backend.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';

/** The agent's --load-url path: real DemoBackend, real HTTP, real LPS on loopback. */

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

async function backend(background: (t: number) => number, capacityRps = 200): Promise<DemoBackend> {
  const b = new DemoBackend({ id: 'b1', capacityRps, background });
  await b.start();
  stops.push(() => b.stop());
  return b;
}

async function get(url: string): Promise<number> {
  const res = await fetch(url);
  await res.text();
  return res.status;
}

async function server(answer: (path: string) => [number, string]): Promise<string> {
  const s: Server = createServer((req, res) => {
    const [status, body] = answer(req.url ?? '/');
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  stops.push(() => new Promise<void>((r) => s.close(() => r())));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

async function rejection(p: Promise<unknown>): Promise<AugurError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AugurError);
  return err as AugurError;
}

describe('DemoBackend /load + HttpLoadSampler', () => {
  it("reads the backend's own load: background, served requests, rate since the last read", async () => {
    const b = await backend(() => 0.4);
    const sampler = new HttpLoadSampler({ url: `http://${b.address}/load` });
    const idle = await sampler.sample();
    expect(idle.cpuUsage).toBeCloseTo(0.4, 5); // background only, nothing served yet
    expect(idle.requestRate).toBe(0);

    const t0 = performance.now();
    const statuses = await Promise.all(
      Array.from({ length: 20 }, () => get(`http://${b.address}/`)),
    );
    const seconds = (performance.now() - t0) / 1000;
    expect(statuses.every((s) => s === 200)).toBe(true);
    const busy = await sampler.sample();
    // 20 requests were served since the previous read (the /load calls themselves do not count).
    expect(busy.requestRate! * seconds).toBeGreaterThan(5);
    expect(busy.cpuUsage).toBeGreaterThan(0.4);
    expect(busy.cpuUsage).toBeLessThanOrEqual(1);
    expect(busy.networkIo).toBeGreaterThan(0);
    expect(b.stats().served).toBe(20);
    // Its own signals: the CPU it used (host − own is the background), the requests and their latency.
    expect(busy.requestsCompleted).toBe(20);
    expect(busy.cpuUsage - busy.processCpuUsage!).toBeCloseTo(0.4, 5);
    expect(busy.processCpuUsage).toBeGreaterThan(0);
    expect(busy.latencySumSeconds! / 20).toBeGreaterThanOrEqual(1 / (200 * 0.6) - 1e-3);

    const after = await sampler.sample();
    expect(after.requestRate).toBe(0);
    expect(after.requestsCompleted).toBe(0); // a real zero, not "unknown"
    expect(after.processCpuUsage).toBe(0);
  });

  it('follows a ramping background', async () => {
    let level = 0.1;
    const b = await backend(() => level);
    const sampler = new HttpLoadSampler({ url: `http://${b.address}/load` });
    expect((await sampler.sample()).cpuUsage).toBeCloseTo(0.1, 5);
    level = 0.85;
    expect((await sampler.sample()).cpuUsage).toBeCloseTo(0.85, 5);
  });

  it('rejects, with the URL in the message, when the endpoint is unreachable, fails or answers junk', async () => {
    const base = await server((path) => {
      if (path === '/fail') return [500, 'boom'];
      if (path === '/text') return [200, 'not json'];
      if (path === '/range')
        return [200, JSON.stringify({ cpuUsage: 1.5, memoryUsage: 0.1, networkIo: 0 })];
      return [200, JSON.stringify({ cpuUsage: 0.2, memoryUsage: 0.3 })];
    });
    expect((await rejection(new HttpLoadSampler({ url: `${base}/fail` }).sample())).code).toBe(
      'LOAD_URL_FAILED',
    );
    expect((await rejection(new HttpLoadSampler({ url: `${base}/text` }).sample())).code).toBe(
      'BAD_LOAD_REPORT',
    );
    const range = await rejection(new HttpLoadSampler({ url: `${base}/range` }).sample());
    expect(range.message).toContain('cpuUsage');
    const missing = await rejection(new HttpLoadSampler({ url: `${base}/missing` }).sample());
    expect(missing.message).toContain('networkIo');
    expect(missing.message).toContain(`${base}/missing`);

    const closed = await server(() => [200, '{}']);
    await Promise.all(stops.splice(-1).map((s) => s())); // its port is now closed
    expect((await rejection(new HttpLoadSampler({ url: `${closed}/load` }).sample())).code).toBe(
      'LOAD_URL_UNREACHABLE',
    );
  });

  it('refuses a URL that is not http(s)', () => {
    expect(() => new HttpLoadSampler({ url: 'backend:8080/load' })).toThrow(AugurError);
    expect(() => new HttpLoadSampler({ url: 'ftp://backend/load' })).toThrow(/http/);
  });

  it('validates reports like the LPS: fractions in [0,1], rates >= 0, requestRate optional', () => {
    expect(parseHostLoad({ cpuUsage: 0, memoryUsage: 1, networkIo: 5 }, 'x')).toEqual({
      cpuUsage: 0,
      memoryUsage: 1,
      networkIo: 5,
    });
    expect(
      parseHostLoad({ cpuUsage: 0.5, memoryUsage: 0.5, networkIo: 0, requestRate: 3 }, 'x'),
    ).toMatchObject({ requestRate: 3 });
    expect(() => parseHostLoad([], 'x')).toThrow(AugurError);
    expect(() => parseHostLoad({ cpuUsage: -0.1, memoryUsage: 0, networkIo: 0 }, 'x')).toThrow(
      /cpuUsage/,
    );
    expect(() =>
      parseHostLoad({ cpuUsage: 0, memoryUsage: 0, networkIo: 0, requestRate: 'many' }, 'x'),
    ).toThrow(/requestRate/);
  });

  it('validates the endpoint signals of the contract: own CPU within host CPU, whole request counts', () => {
    const base = { cpuUsage: 0.5, memoryUsage: 0.2, networkIo: 0 };
    expect(
      parseHostLoad(
        { ...base, processCpuUsage: 0.3, requestsCompleted: 0, latencySumSeconds: 0 },
        'x',
      ),
    ).toEqual({ ...base, processCpuUsage: 0.3, requestsCompleted: 0, latencySumSeconds: 0 });
    // read a moment apart: a little more own than host is clamped, much more is refused
    expect(parseHostLoad({ ...base, processCpuUsage: 0.52 }, 'x').processCpuUsage).toBe(0.5);
    expect(() => parseHostLoad({ ...base, processCpuUsage: 0.7 }, 'u')).toThrow(
      /u: "processCpuUsage" 0.7 exceeds "cpuUsage" 0.5/,
    );
    expect(() => parseHostLoad({ ...base, requestsCompleted: 2.5 }, 'x')).toThrow(/whole number/);
    expect(() => parseHostLoad({ ...base, requestsCompleted: -1 }, 'x')).toThrow(
      /requestsCompleted/,
    );
    expect(() => parseHostLoad({ ...base, latencySumSeconds: 1 }, 'x')).toThrow(
      /needs "requestsCompleted"/,
    );
  });
});

describe('augur agent with an HTTP load source', () => {
  let plane: TestPlane | undefined;
  afterEach(async () => {
    await plane?.dispose();
    plane = undefined;
  });

  it("streams the backend's simulated load, not the host's, to a real LPS", async () => {
    plane = await startTestPlane();
    let level = 0.2;
    const b = await backend(() => level);
    const agent = await Agent.start({
      lps: plane.grpcAddress,
      endpointId: 'demo-b1',
      service: 'demo',
      address: b.address,
      intervalSeconds: 0.1,
      probe: { kind: 'http', url: `http://${b.address}/healthz` },
      healthTimeoutSeconds: 0.5,
      // A generous timeout: on a busy machine a read can take seconds, and a failed tick
      // here must mean a fault, not a slow machine.
      sampler: new HttpLoadSampler({ url: `http://${b.address}/load`, timeoutSeconds: 20 }),
    });
    stops.push(() => agent.stop());
    const store = plane.lps.store;
    await waitFor(() => (store.get('demo-b1')?.samplesStored ?? 0) >= 3, 8000, 'first samples');
    expect(store.get('demo-b1')!.series.latest()!.cpu).toBeCloseTo(0.2, 3);
    level = 0.9;
    const high = await waitFor(
      () => {
        const cpu = store.get('demo-b1')!.series.latest()!.cpu;
        return cpu > 0.85 ? cpu : undefined;
      },
      8000,
      'the ramped background to reach the LPS',
    );
    expect(high).toBeCloseTo(0.9, 3);
    // The endpoint's signals reach the LPS: own CPU, a count (0 when idle), the span covered.
    await Promise.all(Array.from({ length: 10 }, () => get(`http://${b.address}/`)));
    const served = await waitFor(
      () => {
        const r = store.get('demo-b1')!;
        for (let back = 0; back < r.series.size; back++)
          if (r.series.at('completed', back) > 0) return r.series.get(back);
        return undefined;
      },
      8000,
      'a sample with completed requests',
    );
    expect(served.processCpu).toBeGreaterThan(0);
    expect(served.processCpu).toBeLessThanOrEqual(served.cpu);
    expect(served.latencySum).toBeGreaterThan(0);
    // The time since the previous sample: short when a slow read was followed by a quick one.
    expect(served.span).toBeGreaterThan(0);
    expect(served.span).toBeLessThan(5);
    const latest = store.get('demo-b1')!.series.latest()!;
    expect(Number.isFinite(latest.completed)).toBe(true);
    expect(agent.stats().failedTicks).toBe(0);
  });
});
