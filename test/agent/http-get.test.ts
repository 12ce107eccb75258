import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AugurError } from '../../src/common/errors.js';
import { KeptAliveGetter } from '../../src/agent/http-get.js';

/** A port nothing listens on: bound once, then closed. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function rejection(p: Promise<unknown>): Promise<AugurError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AugurError);
    return err as AugurError;
  }
  throw new Error('expected a rejection');
}

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('KeptAliveGetter against a real HTTP server', () => {
  let server: http.Server;
  let base: string;
  /** Remote ports of the connections the server accepted, in order. */
  const connections: number[] = [];
  const hung: http.ServerResponse[] = [];
  const getters: KeptAliveGetter[] = [];
  const getter = (
    path: string,
    opts: Partial<ConstructorParameters<typeof KeptAliveGetter>[1]>,
  ) => {
    const g = new KeptAliveGetter(`${base}${path}`, { what: 'test URL', timeoutMs: 2000, ...opts });
    getters.push(g);
    return g;
  };

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/metrics') res.end(`requests_total ${connections.length}\n`);
      else if (req.url === '/big')
        res.end('x'.repeat(5000)); // with a content-length
      else if (req.url === '/big-chunked') {
        // No content-length: the size is only known by reading.
        res.write('y'.repeat(600));
        setImmediate(() => res.end('y'.repeat(600)));
      } else if (req.url === '/hang') hung.push(res);
      else if (req.url === '/down') res.writeHead(503).end('overloaded, try later');
      else res.writeHead(404).end();
    });
    server.on('connection', (s) => connections.push(s.remotePort!));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    getters.forEach((g) => g.close());
    hung.forEach((r) => r.destroy());
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('reuses one kept-alive connection across GETs', async () => {
    const before = connections.length;
    const g = getter('/metrics', {});
    const bodies: string[] = [];
    for (let i = 0; i < 5; i++) bodies.push(await g.getOk());
    expect(connections.length - before).toBe(1);
    // The server counted one connection for all five answers.
    expect(new Set(bodies)).toEqual(new Set([`requests_total ${before + 1}\n`]));
  });

  it('opens a new connection when the server closed the idle one', async () => {
    const before = connections.length;
    const g = getter('/metrics', {});
    await g.getOk();
    server.closeIdleConnections();
    await until(
      () => new Promise<boolean>((r) => server.getConnections((_e, n) => r(n === 0))),
      'the server to close its idle connections',
    );
    await g.getOk();
    expect(connections.length - before).toBe(2);
  });

  it('rejects an answer that does not come within the timeout, and recovers', async () => {
    const g = getter('/hang', { timeoutMs: 150 });
    const start = performance.now();
    const err = await rejection(g.get());
    expect(err.code).toBe('HTTP_TIMEOUT');
    expect(err.message).toMatch(
      /test URL http:\/\/127\.0\.0\.1:\d+\/hang: no answer within 0\.15 s/,
    );
    expect(performance.now() - start).toBeGreaterThanOrEqual(140);
    // The timed-out connection is not reused: the next GET gets its own answer.
    const ok = getter('/metrics', { timeoutMs: 150 });
    expect(await ok.getOk()).toMatch(/^requests_total/);
  });

  it('rejects a body over the cap, declared or streamed, and keeps working after', async () => {
    const declared = await rejection(getter('/big', { maxBodyBytes: 1000 }).get());
    expect(declared.code).toBe('HTTP_BODY_TOO_LARGE');
    expect(declared.message).toMatch(/larger than 1000 bytes \(5000 bytes declared\)/);
    const g = getter('/big-chunked', { maxBodyBytes: 1000 });
    const streamed = await rejection(g.get());
    expect(streamed.code).toBe('HTTP_BODY_TOO_LARGE');
    expect(streamed.message).toMatch(/big-chunked/);
    // Under the cap the same body is read whole, on the same getter's next connection.
    const roomy = getter('/big-chunked', { maxBodyBytes: 2000 });
    expect(await roomy.getOk()).toBe('y'.repeat(1200));
  });

  it('resolves any status with get(); getOk() rejects a non-2xx naming the status and body', async () => {
    const g = getter('/down', {});
    expect(await g.get()).toEqual({ status: 503, body: 'overloaded, try later' });
    const err = await rejection(g.getOk());
    expect(err.code).toBe('HTTP_STATUS');
    expect(err.message).toMatch(
      /test URL http:\/\/127\.0\.0\.1:\d+\/down answered HTTP 503: overloaded/,
    );
  });

  it('drops the body when asked to, still reading it to the end', async () => {
    const g = getter('/big', { discardBody: true });
    expect(await g.get()).toEqual({ status: 200, body: '' });
    expect(await g.get()).toEqual({ status: 200, body: '' });
  });

  it('names the URL when nothing listens, and refuses a URL that is not http(s)', async () => {
    const port = await closedPort();
    const g = new KeptAliveGetter(`http://127.0.0.1:${port}/metrics`, {
      what: 'metrics URL',
      timeoutMs: 2000,
    });
    getters.push(g);
    const err = await rejection(g.get());
    expect(err.code).toBe('HTTP_UNREACHABLE');
    expect(err.message).toContain(`metrics URL http://127.0.0.1:${port}/metrics`);
    expect(err.message).toMatch(/ECONNREFUSED/);
    expect(() => new KeptAliveGetter('ftp://x/', { what: 'metrics URL', timeoutMs: 1 })).toThrow(
      /metrics URL "ftp:\/\/x\/" must be http:\/\/ or https:\/\//,
    );
    expect(() => new KeptAliveGetter('not a url', { what: 'load URL', timeoutMs: 1 })).toThrow(
      /load URL "not a url" is not a URL/,
    );
  });
});
