import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { loadConfig, type AugurConfig } from '../../src/serve/config.js';
import { GrpcHost } from '../../src/common/grpc-host.js';
import { createRegistry } from '../../src/common/http-host.js';
import { silentLogger } from '../../src/common/logger.js';
import { EndpointState } from '../../src/gen/augur/v1/common.js';
import {
  ResponseRouterClient,
  type RouteResponseRequest,
  type RouteResponseResponse,
} from '../../src/gen/augur/v1/response_router.js';
import { DataPlane } from '../../src/rrm/dataplane.js';
import { ListStore } from '../../src/lps/list-store.js';
import { attachRrm } from '../../src/rrm/rrm.js';
import { startControlPlane, type ControlPlane } from '../../src/serve/control-plane.js';

/*
 * End to end on loopback: three HTTP backends, a real agent for each (its CPU reading set by
 * the test, so the Load Scores are known: web-a best, then web-b, then web-c), `augur serve`
 * (LPS + RRM), and the demo data plane asking the RRM over ext_proc as Envoy would. The RRM
 * of `augur serve` is set to `dynamicPicker: highest-score`, so where a request goes is
 * known; a second RRM with the default (expected-delay) picker reads the same LPS, behind a
 * second data plane that reports each response back (the response phase), to check that the
 * RRM learns from real responses and moves real requests off a slow backend.
 *
 * The agents do not probe their backend (`none`: healthy, response time 0): so when a backend
 * dies the LPS still believes it healthy, and the requests must survive on the data plane's
 * walk of the fallback list alone (the case Envoy's override-host policy is in, as it does not
 * check health). Without a probe's response time in the scores, a busy machine's slow probes
 * cannot reorder them: the CPU the test sets is the whole of the score.
 */

interface Backend {
  id: string;
  server: Server;
  address: string;
  hits: number;
  callbacks: string[];
}

const CPU: Record<string, number> = { 'web-a': 0.1, 'web-b': 0.4, 'web-c': 0.7 };
/** How long each backend takes to answer a request, ms (set by a test). */
const DELAY_MS: Record<string, number> = {};
const backends = new Map<string, Backend>();
const agents: Agent[] = [];
let plane: ControlPlane;
let dataPlane: DataPlane;
let router: ResponseRouterClient;
let dataDir: string;
let config: AugurConfig;

async function startBackend(id: string): Promise<Backend> {
  const b: Backend = { id, server: createServer(), address: '', hits: 0, callbacks: [] };
  b.server.on('request', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/callback') b.callbacks.push(Buffer.concat(chunks).toString());
      else b.hits++;
      const answer = () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(id);
      };
      const delay = DELAY_MS[id] ?? 0;
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    });
  });
  await new Promise<void>((r) => b.server.listen(0, '127.0.0.1', r));
  b.address = `127.0.0.1:${(b.server.address() as AddressInfo).port}`;
  backends.set(id, b);
  return b;
}

async function killBackend(id: string): Promise<void> {
  const b = backends.get(id)!;
  await new Promise<void>((r) => {
    b.server.close(() => r());
    b.server.closeAllConnections();
  });
}

async function get(
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const res = await fetch(`${dataPlane.url}/hello`, { headers });
  return { status: res.status, body: await res.text() };
}

function routeResponse(req: Partial<RouteResponseRequest>): Promise<RouteResponseResponse> {
  return new Promise((resolve, reject) =>
    router.routeResponse(
      {
        payload: Buffer.alloc(0),
        contentType: '',
        endpointIds: [],
        service: '',
        maxAttempts: 0,
        ...req,
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    ),
  );
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'augur-rrm-e2e-'));
  for (const id of Object.keys(CPU)) await startBackend(id);

  config = loadConfig({
    env: {},
    flags: {
      grpcListen: '127.0.0.1:0',
      httpListen: '127.0.0.1:0',
      dataDir,
      logLevel: 'silent',
      // Agents must miss many reports before going stale: the test machine can be very busy.
      lps: { scoreInterval: 0.2, staleAfterIntervals: 20 },
      rrm: { fallbacks: 2, dynamicPicker: 'highest-score' },
    },
  });
  plane = await startControlPlane({ config, logger: silentLogger });
  for (const [id, cpu] of Object.entries(CPU)) {
    agents.push(
      await Agent.start({
        lps: plane.grpcAddress,
        endpointId: id,
        service: 'shop',
        address: backends.get(id)!.address,
        intervalSeconds: 0.25,
        probe: { kind: 'none' },
        sampler: { sample: async () => ({ cpuUsage: cpu, memoryUsage: 0.3, networkIo: 1000 }) },
        hostFacts: {
          cpuCores: 2,
          memoryBytes: 1 << 30,
          networkBytesPerSecond: 1e8,
          linkSpeedSource: 'default',
        },
        backoff: { initialSeconds: 0.05, maxSeconds: 0.4 },
      }),
    );
  }
  // Wait for the LPS to rank the three endpoints as their CPU says.
  const until = Date.now() + 15_000;
  for (;;) {
    const list = plane.lps.lists.get('shop');
    const order = list?.endpoints
      .filter((e) => e.state === EndpointState.ENDPOINT_STATE_ACTIVE && e.score > 0)
      .map((e) => e.endpointId);
    if (order?.join() === 'web-a,web-b,web-c') break;
    if (Date.now() > until)
      throw new Error(`LPS never ranked the endpoints: ${JSON.stringify(list)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  dataPlane = new DataPlane({
    listen: '127.0.0.1:0',
    rrm: plane.grpcAddress,
    routeName: 'shop-route',
    clusterName: 'shop',
    retries: 2,
    // A loaded 2-core machine can take seconds to answer an ext_proc stream; past the
    // timeout the data plane routes without augur, which these tests would misread.
    messageTimeoutMs: 10_000,
    logger: silentLogger,
  });
  await dataPlane.start();
  router = new ResponseRouterClient(plane.grpcAddress, grpc.credentials.createInsecure());
}, 30_000);

afterAll(async () => {
  router?.close();
  await dataPlane?.stop();
  await Promise.all(agents.map((a) => a.stop()));
  await plane?.stop();
  for (const b of backends.values()) {
    if (b.server.listening) await new Promise<void>((r) => b.server.close(() => r()));
  }
  await rm(dataDir, { recursive: true, force: true });
});

describe('augur serve + agents + demo data plane', () => {
  it('sends requests to the highest-scoring endpoint with dynamic routing on', async () => {
    for (let i = 0; i < 10; i++) expect(await get()).toEqual({ status: 200, body: 'web-a' });
    expect(backends.get('web-a')!.hits).toBe(10);
    expect(backends.get('web-b')!.hits + backends.get('web-c')!.hits).toBe(0);
  });

  it('with the default expected-delay picker, learns from the responses and moves requests off a slow backend', async () => {
    const defaults = loadConfig({
      env: {},
      flags: {
        grpcListen: '127.0.0.1:0',
        dataDir,
        logLevel: 'silent',
        // This RRM's data plane asks it on the ext_proc fast path (node:http2), as the Envoy
        // bootstraps do; the first one above asks on the gRPC address.
        rrm: { fallbacks: 2, extProcListen: '127.0.0.1:0' },
      },
    });
    expect(defaults.rrm.dynamicPicker).toBe('expected-delay');
    // This RRM reads a list the test publishes, with equal weights: what is checked is what
    // the picker makes of the responses, whatever weights the LPS gives three backends that
    // have had no traffic yet.
    const lists = new ListStore();
    lists.publish({
      service: 'shop',
      version: 1,
      computedAt: new Date(),
      endpoints: Object.keys(CPU).map((id) => {
        const [address, port] = backends.get(id)!.address.split(':');
        return {
          endpointId: id,
          score: 0.5,
          weight: 1 / 3,
          address: address!,
          port: Number(port),
          state: EndpointState.ENDPOINT_STATE_ACTIVE,
        };
      }),
    });
    const host = new GrpcHost({ listen: '127.0.0.1:0' });
    const attached = await attachRrm({
      config: defaults,
      logger: silentLogger,
      registry: createRegistry(false),
      grpc: host,
      lps: { lists, setMonitoringInterval: (ids) => ids },
    });
    await host.start();
    expect(attached.rrm.extProcAddress).toBeDefined();
    const picking = new DataPlane({
      listen: '127.0.0.1:0',
      rrm: attached.rrm.extProcAddress!,
      routeName: 'shop-route',
      clusterName: 'shop',
      retries: 2,
      messageTimeoutMs: 10_000,
      logger: silentLogger,
    });
    await picking.start();
    // web-b takes 200 ms per request, the others answer at once.
    DELAY_MS['web-b'] = 200;
    try {
      const before = new Map([...backends].map(([id, b]) => [id, b.hits]));
      const bodies = new Map<string, number>();
      const total = 200;
      for (let sent = 0; sent < total; sent += 10) {
        const batch = await Promise.all(
          Array.from({ length: 10 }, async () => {
            const res = await fetch(`${picking.url}/hello`);
            return { status: res.status, body: await res.text() };
          }),
        );
        for (const r of batch) {
          expect(r.status).toBe(200);
          bodies.set(r.body, (bodies.get(r.body) ?? 0) + 1);
        }
      }
      const hits = (id: string) => backends.get(id)!.hits - before.get(id)!;
      for (const id of Object.keys(CPU)) expect(hits(id)).toBe(bodies.get(id) ?? 0);
      // Every response came back through the response phase: nothing is left in flight, and
      // each backend's latency is what it took (web-b's at least its 200 ms).
      const { loads, routed } = attached.rrm;
      await expect.poll(() => routed.size).toBe(0);
      const loadOf = (id: string) => loads.of(backends.get(id)!.address);
      let responses = 0;
      for (const id of Object.keys(CPU)) {
        expect(loadOf(id).inFlight).toBe(0);
        responses += loadOf(id).responses;
      }
      expect(responses).toBe(total);
      expect(loadOf('web-b').latency).toBeGreaterThanOrEqual(0.2);
      expect(loadOf('web-a').latency).toBeLessThan(loadOf('web-b').latency / 2);
      // web-b holds its requests 200 ms: once its latency is known, the picker levels
      // (in flight + 1) × √latency, so in each batch of 10 simultaneous requests it gets fewer
      // than the fast ones by √(200 ms / their latency) (a few ms here, tens on a loaded
      // machine: 2.5× or more), but not nothing (the first batch, before any latency, spreads
      // evenly).
      expect(hits('web-b')).toBeGreaterThan(0);
      expect(hits('web-b')).toBeLessThan(0.75 * Math.min(hits('web-a'), hits('web-c')));
    } finally {
      delete DELAY_MS['web-b'];
      await picking.stop();
      await attached.stop();
      await host.stop();
    }
  });

  it("follows the caller's order with dynamic routing off", async () => {
    const headers = {
      'x-augur-dynamic-routing': 'false',
      'x-augur-endpoints': 'web-c,web-a,web-b',
    };
    for (let i = 0; i < 5; i++) expect(await get(headers)).toEqual({ status: 200, body: 'web-c' });
  });

  it('rejects a malformed routing header with 400 before any backend sees it', async () => {
    const hitsBefore = [...backends.values()].reduce((n, b) => n + b.hits, 0);
    const res = await get({ 'x-augur-dynamic-routing': 'maybe' });
    expect(res.status).toBe(400);
    expect(res.body).toMatch(/x-augur-dynamic-routing: "maybe" is not true or false/);
    expect([...backends.values()].reduce((n, b) => n + b.hits, 0)).toBe(hitsBefore);
  });

  it('keeps every request succeeding on the next endpoint when the best one dies', async () => {
    await killBackend('web-a');
    const results = await Promise.all(Array.from({ length: 20 }, () => get()));
    for (const r of results) expect(r).toEqual({ status: 200, body: 'web-b' });
  });

  it('RouteResponse delivers to the best reachable endpoint of a list whose first entries are down', async () => {
    await killBackend('web-b');
    const res = await routeResponse({
      payload: Buffer.from('{"order":42,"status":"shipped"}'),
      contentType: 'application/json',
      endpointIds: ['web-a', 'web-b', 'web-c'],
      dynamicRoutingEnabled: true,
      http: { path: '/callback', method: 'POST', headers: {} },
      attemptTimeout: { seconds: 1, nanos: 0 },
    });
    expect(res.endpointId).toBe('web-c');
    expect(res.address).toBe(backends.get('web-c')!.address);
    expect(res.statusCode).toBe(200);
    expect(res.responseBody.toString()).toBe('web-c');
    expect(res.attempts.map((a) => a.endpointId)).toEqual(['web-a', 'web-b', 'web-c']);
    expect(res.attempts[0]!.error).toMatch(/ECONNREFUSED/);
    expect(res.attempts[1]!.error).toMatch(/ECONNREFUSED/);
    expect(res.attempts[2]!.error).toBe('');
    expect(backends.get('web-c')!.callbacks).toEqual(['{"order":42,"status":"shipped"}']);
  });

  it('RouteResponse says which argument is wrong', async () => {
    await expect(routeResponse({ endpointIds: ['web a'] })).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/endpoint_ids: entry 1 "web a" is not an endpoint id/),
    });
    await expect(routeResponse({ service: 'nope' })).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
    });
  });
});
