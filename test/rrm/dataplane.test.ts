import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/serve/config.js';
import { GrpcHost } from '../../src/common/grpc-host.js';
import { createRegistry } from '../../src/common/http-host.js';
import { silentLogger } from '../../src/common/logger.js';
import { DataPlane } from '../../src/rrm/dataplane.js';
import { Rrm } from '../../src/rrm/rrm.js';
import { StaticListSource } from './support/static-list-source.js';

/*
 * The demo data plane follows override-host semantics: the metadata list in order, the next
 * entry on a 503 or a connect failure, the fallback hosts when the RRM gives no answer
 * (failure_mode_allow), and the RRM's immediate responses relayed as they are.
 */

const servers: Server[] = [];
const ports: Record<string, number> = {};
const seen: Array<{ id: string; destination: string | undefined }> = [];
let host: GrpcHost;
let rrm: Rrm;
let plane: DataPlane;
let orphan: DataPlane;
const source = new StaticListSource();

async function backend(id: string, status = 200): Promise<number> {
  const s = createServer((req, res) => {
    seen.push({
      id,
      destination: req.headers['x-gateway-destination-endpoint'] as string | undefined,
    });
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(id);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  servers.push(s);
  return (s.address() as AddressInfo).port;
}

beforeAll(async () => {
  const busy = await backend('busy', 503);
  const ok = await backend('ok');
  Object.assign(ports, { busy, ok });
  const spare = await backend('spare');
  source.set('web', [
    { endpointId: 'busy', port: busy, score: 0.9 },
    { endpointId: 'gone', port: 1, score: 0.8 }, // nothing listens on port 1
    { endpointId: 'ok', port: ok, score: 0.7 },
  ]);
  rrm = new Rrm({
    config: loadConfig({
      env: {},
      flags: { logLevel: 'silent', rrm: { fallbacks: 2, defaultService: 'web' } },
    }),
    logger: silentLogger,
    registry: createRegistry(false),
    lists: source,
    monitoring: { setMonitoringInterval: async (_s, ids) => ids },
  });
  host = new GrpcHost({ listen: '127.0.0.1:0' });
  rrm.register(host);
  const { port } = await host.start();
  plane = new DataPlane({
    listen: '127.0.0.1:0',
    rrm: `127.0.0.1:${port}`,
    messageTimeoutMs: 2000,
    logger: silentLogger,
  });
  await plane.start();
  // A data plane whose RRM does not exist: every request takes the fallback policy.
  orphan = new DataPlane({
    listen: '127.0.0.1:0',
    rrm: '127.0.0.1:1',
    messageTimeoutMs: 300,
    fallbackHosts: [`127.0.0.1:${spare}`],
    logger: silentLogger,
  });
  await orphan.start();
});

afterAll(async () => {
  await plane?.stop();
  await orphan?.stop();
  await rrm?.stop();
  await host?.stop();
  for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
});

describe('demo data plane', () => {
  it('walks the picked list past a 503 and a refused connection, forwarding the destination header', async () => {
    seen.length = 0;
    const res = await fetch(`${plane.url}/x`, {
      headers: { 'x-gateway-destination-endpoint': '6.6.6.6:1' },
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok');
    expect(seen.map((s) => s.id)).toEqual(['busy', 'ok']);
    const value = seen[0]!.destination!;
    expect(value.split(',')).toHaveLength(3);
    expect(value).not.toContain('6.6.6.6');
  });

  it("reports the response to the RRM as Envoy's response phase does: who answered, after how long", async () => {
    const busy = rrm.loads.of(`127.0.0.1:${ports.busy}`);
    const ok = rrm.loads.of(`127.0.0.1:${ports.ok}`);
    const before = { busy: busy.failures, ok: ok.responses };
    const res = await fetch(`${plane.url}/x`);
    expect(await res.text()).toBe('ok');
    // picked busy (503, retried), then the unreachable one, then ok answered: the pick failed,
    // ok's response counted; nothing is left in flight.
    expect(busy.failures).toBe(before.busy + 1);
    expect(ok.responses).toBe(before.ok + 1);
    expect(ok.latency).toBeGreaterThan(0);
    await expect.poll(() => rrm.routed.size).toBe(0);
    expect(busy.inFlight + ok.inFlight).toBe(0);
  });

  it('passes the last 503 through when every attempt is used', async () => {
    const res = await fetch(`${plane.url}/x`, { headers: { 'x-augur-endpoints': 'busy' } });
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('busy');
  });

  it("relays the RRM's immediate response", async () => {
    const res = await fetch(`${plane.url}/x`, { headers: { 'x-augur-endpoints': 'nope' } });
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    expect(await res.text()).toMatch(/none of the 1 endpoints in x-augur-endpoints/);
  });

  it('uses the fallback policy when the RRM cannot be reached (failure_mode_allow)', async () => {
    const res = await fetch(`${orphan.url}/y`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('spare');
  });
});
