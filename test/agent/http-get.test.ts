import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AugurError } from '../../src/common/errors.js';
import { KeptAliveGetter } from '../../src/agent/http-get.js';
import { TestCa } from '../support/certs.js';

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

/**
 * A server that answers each request with scripted bytes, written in the pieces
 * given (each piece its own write, a macrotask apart), so the reader meets
 * answers split anywhere: in the status line, in a chunk size, between CR and LF.
 */
async function scriptedServer(answer: (n: number) => string[]): Promise<{
  url: string;
  connections: () => number;
  requests: string[];
  close: () => Promise<void>;
}> {
  let conns = 0;
  let served = 0;
  const sockets = new Set<net.Socket>();
  const requests: string[] = [];
  const server = net.createServer((socket) => {
    conns++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buf = '';
    socket.on('data', async (d: Buffer) => {
      buf += d.toString('latin1');
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        requests.push(buf.slice(0, end));
        buf = buf.slice(end + 4);
        const pieces = answer(served++);
        for (const piece of pieces) {
          if (piece === '<close>') {
            socket.end();
            return;
          }
          socket.write(piece);
          await new Promise((r) => setTimeout(r, 2));
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => conns,
    requests,
    close: async () => {
      sockets.forEach((s) => s.destroy());
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('KeptAliveGetter reading HTTP/1.1 answers split across writes (raw sockets)', () => {
  const opened: Array<{ close: () => Promise<void> }> = [];
  const getters: KeptAliveGetter[] = [];
  const getter = (
    url: string,
    opts: Partial<ConstructorParameters<typeof KeptAliveGetter>[1]> = {},
  ) => {
    const g = new KeptAliveGetter(url, { what: 'test URL', timeoutMs: 2000, ...opts });
    getters.push(g);
    return g;
  };
  afterAll(async () => {
    getters.forEach((g) => g.close());
    await Promise.all(opened.map((s) => s.close()));
  });
  const serve = async (answer: (n: number) => string[]) => {
    const s = await scriptedServer(answer);
    opened.push(s);
    return s;
  };

  it('reads chunked bodies split anywhere, with extensions and trailers, on one connection', async () => {
    const s = await serve((n) => [
      'HTTP/1.1 200 OK\r\nTransfer-Enc',
      'oding: chunked\r\n\r\n5;ext=1\r',
      '\nhello\r\n',
      `${(7 + n).toString(16)}\r\n, wor${'l'.repeat(n + 1)}d`,
      '\r\n0\r\nX-Trailer: 1\r\n',
      '\r\n',
    ]);
    const g = getter(`${s.url}/metrics`);
    expect(await g.getOk()).toBe('hello, world');
    expect(await g.getOk()).toBe('hello, worlld');
    expect(s.connections()).toBe(1);
    expect(s.requests[0]).toMatch(/^GET \/metrics HTTP\/1\.1\r\nHost: 127\.0\.0\.1:\d+\r\n/);
  });

  it('reads a content-length body split across writes, after an interim 100 answer', async () => {
    const s = await serve(() => [
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 20',
      '0 OK\r\nContent-Length: 11\r\n\r\nhello',
      ' world',
    ]);
    const g = getter(`${s.url}/`);
    expect(await g.get()).toEqual({ status: 200, body: 'hello world' });
    expect(await g.get()).toEqual({ status: 200, body: 'hello world' });
    expect(s.connections()).toBe(1);
  });

  it('reads a body without a length to the close, and opens a new connection after', async () => {
    const s = await serve((n) => [`HTTP/1.0 200 OK\r\n\r\nanswer ${n}`, '<close>']);
    const g = getter(`${s.url}/`);
    expect(await g.getOk()).toBe('answer 0');
    expect(await g.getOk()).toBe('answer 1');
    expect(s.connections()).toBe(2);
  });

  it('does not reuse a connection the answer says is closing', async () => {
    const s = await serve(() => [
      'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok',
    ]);
    const g = getter(`${s.url}/`);
    expect(await g.getOk()).toBe('ok');
    expect(await g.getOk()).toBe('ok');
    expect(s.connections()).toBe(2);
  });

  it('rejects what is not an HTTP/1.x answer, naming the URL, and recovers', async () => {
    const s = await serve((n) =>
      n === 0 ? ['SSH-2.0-OpenSSH_9.6\r\n\r\n'] : ['HTTP/1.1 204 No Content\r\n\r\n'],
    );
    const g = getter(`${s.url}/healthz`);
    const err = await rejection(g.get());
    expect(err.code).toBe('HTTP_BAD_ANSWER');
    expect(err.message).toMatch(
      /test URL http:\/\/127\.0\.0\.1:\d+\/healthz: not an HTTP\/1\.x status line: "SSH-2\.0/,
    );
    expect(await g.get()).toEqual({ status: 204, body: '' });
  });

  it('rejects a bad chunk size and a connection closed mid-body', async () => {
    const s = await serve((n) =>
      n === 0
        ? ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n']
        : ['HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part', '<close>'],
    );
    const g = getter(`${s.url}/`);
    expect((await rejection(g.get())).message).toMatch(/a bad chunk size "zz"/);
    const cut = await rejection(g.get());
    expect(cut.code).toBe('HTTP_UNREACHABLE');
    expect(cut.message).toMatch(/the server closed the connection/);
  });

  it('keeps every byte of a body spread over many reads into its one reused read buffer', async () => {
    // Larger than the 64 KiB the getter reads into, in pieces a macrotask apart: each read
    // overwrites that buffer, so whatever is kept of the one before must have been copied.
    const piece = (n: number, i: number) =>
      `<${n}:${i}>`.padEnd(40_000, String.fromCharCode(97 + ((n * 4 + i) % 26)));
    const body = (n: number) => [0, 1, 2, 3, 4].map((i) => piece(n, i));
    const s = await serve((n) => [
      `HTTP/1.1 200 OK\r\nContent-Length: ${body(n).join('').length}\r\n\r\n`,
      ...body(n),
    ]);
    const g = getter(`${s.url}/metrics`);
    const first = await g.getOk();
    const second = await g.getOk();
    expect(first).toBe(body(0).join(''));
    expect(second).toBe(body(1).join(''));
    expect(s.connections()).toBe(1);
  });

  it('runs a second GET after the first, on the same connection, when asked at once', async () => {
    const s = await serve((n) => [`HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n`, String(n)]);
    const g = getter(`${s.url}/`);
    expect(await Promise.all([g.getOk(), g.getOk(), g.getOk()])).toEqual(['0', '1', '2']);
    expect(s.connections()).toBe(1);
  });

  it('sends the URL credentials as basic authorization', async () => {
    const s = await serve(() => ['HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n']);
    const g = getter(s.url.replace('http://', 'http://scraper:s%40cret@') + '/metrics?x=1');
    await g.getOk();
    expect(s.requests[0]).toMatch(/^GET \/metrics\?x=1 HTTP\/1\.1\r\n/);
    expect(s.requests[0]).toContain(
      `Authorization: Basic ${Buffer.from('scraper:s@cret').toString('base64')}`,
    );
  });
});

describe('KeptAliveGetter over https (a real TLS server)', () => {
  const ca = new TestCa('augur-http-get-ca');
  const leaf = ca.issue('metrics-server');
  let server: https.Server;
  let url: string;
  beforeAll(async () => {
    server = https.createServer(
      { cert: readFileSync(leaf.cert), key: readFileSync(leaf.key) },
      (_req, res) => res.end('tls ok'),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    ca.dispose();
  });

  it('reads over TLS with the CA given, and names the certificate problem without it', async () => {
    const trusting = new KeptAliveGetter(url, {
      what: 'metrics URL',
      timeoutMs: 2000,
      ca: readFileSync(ca.cert),
    });
    expect(await trusting.getOk()).toBe('tls ok');
    expect(await trusting.getOk()).toBe('tls ok');
    trusting.close();
    const stranger = new KeptAliveGetter(url, { what: 'metrics URL', timeoutMs: 2000 });
    const err = await rejection(stranger.get());
    stranger.close();
    expect(err.code).toBe('HTTP_UNREACHABLE');
    expect(err.message).toMatch(/metrics URL https:\/\/127\.0\.0\.1:\d+\/metrics: .*certificate/i);
  });
});
