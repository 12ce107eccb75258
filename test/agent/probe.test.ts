import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProbeHealth, createProbe, type Probe } from '../../src/agent/probe.js';

const SERVING = ProbeHealth.PROBE_HEALTH_SERVING;
const FAILING = ProbeHealth.PROBE_HEALTH_FAILING;

/** A port nothing listens on: bound once, then closed. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const probes: Probe[] = [];
function probe(...args: Parameters<typeof createProbe>): Probe {
  const p = createProbe(...args);
  probes.push(p);
  return p;
}
afterAll(() => probes.forEach((p) => p.close()));

describe('HTTP probe', () => {
  let server: http.Server;
  let base: string;
  const hung: http.ServerResponse[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/ok') res.end('ok');
      else if (req.url === '/redirect') res.writeHead(302, { location: '/ok' }).end();
      else if (req.url === '/slow') setTimeout(() => res.end('late'), 80);
      else if (req.url === '/hang') hung.push(res);
      else res.writeHead(503).end('down');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    hung.forEach((r) => r.destroy());
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('counts 2xx and 3xx as serving and measures the response time', async () => {
    const ok = await probe({ kind: 'http', url: `${base}/ok` }, { timeoutSeconds: 2 }).check();
    expect(ok.health).toBe(SERVING);
    expect(ok.responseTime).toBeGreaterThan(0);
    expect(ok.responseTime).toBeLessThan(2);
    const redirect = await probe(
      { kind: 'http', url: `${base}/redirect` },
      { timeoutSeconds: 2 },
    ).check();
    expect(redirect.health).toBe(SERVING);
    const slow = await probe({ kind: 'http', url: `${base}/slow` }, { timeoutSeconds: 2 }).check();
    expect(slow.health).toBe(SERVING);
    expect(slow.responseTime).toBeGreaterThanOrEqual(0.075);
  });

  it('keeps working over repeated checks on a kept-alive connection', async () => {
    const p = probe({ kind: 'http', url: `${base}/ok` }, { timeoutSeconds: 2 });
    for (let i = 0; i < 5; i++) expect((await p.check()).health).toBe(SERVING);
  });

  it('counts a 5xx as failing with the timeout as response time', async () => {
    const r = await probe({ kind: 'http', url: `${base}/down` }, { timeoutSeconds: 0.7 }).check();
    expect(r).toMatchObject({ health: FAILING, responseTime: 0.7 });
    expect(r.error).toMatch(/503/);
  });

  it('fails a request that does not answer within the timeout', async () => {
    const p = probe({ kind: 'http', url: `${base}/hang` }, { timeoutSeconds: 0.2 });
    const start = performance.now();
    const r = await p.check();
    expect(r).toMatchObject({ health: FAILING, responseTime: 0.2 });
    expect(r.error).toMatch(/within/);
    expect(performance.now() - start).toBeGreaterThanOrEqual(190);
  });

  it('fails on a closed port', async () => {
    const port = await closedPort();
    const r = await probe(
      { kind: 'http', url: `http://127.0.0.1:${port}/` },
      { timeoutSeconds: 1 },
    ).check();
    expect(r).toMatchObject({ health: FAILING, responseTime: 1 });
    expect(r.error).toMatch(/ECONNREFUSED/);
  });

  it('refuses a URL that is not http(s)', () => {
    expect(() => createProbe({ kind: 'http', url: 'ftp://x/' }, { timeoutSeconds: 1 })).toThrow(
      /http/,
    );
    expect(() => createProbe({ kind: 'http', url: 'nope' }, { timeoutSeconds: 1 })).toThrow(
      /not a URL/,
    );
    expect(() =>
      createProbe({ kind: 'tcp', address: '127.0.0.1:1' }, { timeoutSeconds: 0 }),
    ).toThrow(/> 0/);
  });
});

describe('gRPC health probe', () => {
  let server: grpc.Server;
  let address: string;
  const health = new HealthImplementation({ '': 'SERVING', 'shop.Cart': 'NOT_SERVING' });

  beforeAll(async () => {
    server = new grpc.Server();
    health.addToServer(server);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    address = `127.0.0.1:${port}`;
  });
  afterAll(() => server.forceShutdown());

  it('is serving when grpc.health.v1.Health/Check says SERVING', async () => {
    const p = probe({ kind: 'grpc', address }, { timeoutSeconds: 2 });
    const r = await p.check();
    expect(r.error).toBeUndefined();
    expect(r.health).toBe(SERVING);
    expect(r.responseTime).toBeGreaterThan(0);
    expect(r.responseTime).toBeLessThan(2);
  });

  it('follows the status of a named service as it changes', async () => {
    const p = probe({ kind: 'grpc', address, service: 'shop.Cart' }, { timeoutSeconds: 2 });
    expect(await p.check()).toMatchObject({ health: FAILING, responseTime: 2 });
    health.setStatus('shop.Cart', 'SERVING');
    expect((await p.check()).health).toBe(SERVING);
  });

  it('fails for a service the server does not know (NOT_FOUND)', async () => {
    const r = await probe(
      { kind: 'grpc', address, service: 'no.Such' },
      { timeoutSeconds: 1 },
    ).check();
    expect(r).toMatchObject({ health: FAILING, responseTime: 1 });
    expect(r.error).toMatch(/NOT_FOUND/);
  });

  it('fails on a closed port within the timeout', async () => {
    const port = await closedPort();
    const start = performance.now();
    const r = await probe(
      { kind: 'grpc', address: `127.0.0.1:${port}` },
      { timeoutSeconds: 0.5 },
    ).check();
    expect(r).toMatchObject({ health: FAILING, responseTime: 0.5 });
    expect(performance.now() - start).toBeLessThan(3000);
  });
});

describe('TCP probe', () => {
  let server: net.Server;
  let port: number;
  beforeAll(async () => {
    server = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('is serving when the connection is accepted', async () => {
    const r = await probe(
      { kind: 'tcp', address: `127.0.0.1:${port}` },
      { timeoutSeconds: 1 },
    ).check();
    expect(r.health).toBe(SERVING);
    expect(r.responseTime).toBeGreaterThan(0);
    expect(r.responseTime).toBeLessThan(1);
  });

  it('fails on a closed port', async () => {
    const closed = await closedPort();
    const r = await probe(
      { kind: 'tcp', address: `127.0.0.1:${closed}` },
      { timeoutSeconds: 0.4 },
    ).check();
    expect(r).toMatchObject({ health: FAILING, responseTime: 0.4 });
    expect(r.error).toMatch(/ECONNREFUSED/);
  });

  it('fails when the connection does not complete within the timeout', async () => {
    // A listener that never accepts, with a backlog of 0: once one connection
    // waits in its queue, the kernel drops further SYNs and connect() hangs.
    // Node accepts by itself, so the listener is a tiny Python process.
    const py = spawn(
      '/usr/bin/python3',
      [
        '-c',
        'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(30)',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const fillers: net.Socket[] = [];
    try {
      const port = await new Promise<number>((resolve) =>
        py.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))),
      );
      for (let i = 0; i < 3; i++) {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', () => {});
        fillers.push(s);
      }
      await new Promise((r) => setTimeout(r, 100));
      const start = performance.now();
      const r = await probe(
        { kind: 'tcp', address: `127.0.0.1:${port}` },
        { timeoutSeconds: 0.3 },
      ).check();
      expect(r).toMatchObject({ health: FAILING, responseTime: 0.3 });
      expect(r.error).toMatch(/within 0.3 s/);
      expect(performance.now() - start).toBeGreaterThanOrEqual(290);
    } finally {
      fillers.forEach((s) => s.destroy());
      py.kill();
    }
  });
});
