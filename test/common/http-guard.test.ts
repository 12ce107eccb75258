import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { hostname, networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostOfHeader } from '../../src/common/http-guard.js';
import { TestCa, type CertFiles } from '../support/certs.js';
import { startTestPlane, type TestPlane } from '../support/control-plane.js';

/*
 * The HTTP address (/metrics, /healthz, the dashboard) against a browser on a hostile page and a
 * stranger on the network, with real HTTP requests: the Host check (DNS rebinding), the security
 * headers of every answer, and identities off loopback (issue 12).
 */

const REPO = join(import.meta.dirname, '../..');

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request to `base` + `path` with these headers (Host among them, which fetch cannot set). */
function get(
  base: string,
  path: string,
  headers: Record<string, string> = {},
  tls?: { ca: string; client?: CertFiles },
): Promise<Answer> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const options = {
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      headers,
      ...(tls
        ? {
            ca: readFileSync(tls.ca),
            ...(tls.client
              ? { cert: readFileSync(tls.client.cert), key: readFileSync(tls.client.key) }
              : {}),
            servername: 'localhost',
          }
        : {}),
    };
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      // The event stream never ends: its headers and first bytes are enough.
      if (path === '/dashboard/events') {
        res.once('data', (c: string) => {
          resolve({ status: res.statusCode!, headers: res.headers, body: c });
          req.destroy();
        });
        return;
      }
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function metricValue(text: string, line: RegExp): number {
  const m = text.split('\n').find((l) => line.test(l));
  return m ? Number(m.split(' ').pop()) : 0;
}

const sha = (token: string) => createHash('sha256').update(token).digest('hex');
const TOKENS = { reader: 'reader-token-1', agent: 'agent-token-1', admin: 'admin-token-1' };
const principals = [
  { name: 'ops-reader', roles: ['reader'], tokenSha256: [sha(TOKENS.reader)] },
  { name: 'web-agent', roles: ['agent'], tokenSha256: [sha(TOKENS.agent)] },
  { name: 'ops-admin', roles: ['admin'], tokenSha256: [sha(TOKENS.admin)] },
  { name: 'spiffe://augur.test/reader', roles: ['reader'] },
];

describe('Host header check (DNS rebinding)', () => {
  let plane: TestPlane;
  beforeAll(async () => {
    plane = await startTestPlane({
      http: { allowedHosts: ['augur.example.org', '*.corp.test'] },
    });
  });
  afterAll(() => plane?.dispose());

  it('answers loopback names, the listen address and the allow-list, and 421 to any other name, counted', async () => {
    const port = new URL(plane.httpUrl).port;
    for (const host of [
      `127.0.0.1:${port}`,
      `localhost:${port}`,
      'LOCALHOST',
      `[::1]:${port}`,
      `augur.example.org:${port}`,
      'augur.example.org.',
      `dash.corp.test:${port}`,
    ]) {
      const a = await get(plane.httpUrl, '/dashboard/state.json', { host });
      expect([host, a.status]).toEqual([host, 200]);
    }
    const refusedBefore = metricValue(
      (await get(plane.httpUrl, '/metrics')).body,
      /^augur_http_refused_total\{reason="host"\}/,
    );
    for (const host of [
      `evil.example:${port}`,
      'corp.test',
      'augur.example.org.evil.example',
      '127.0.0.1.evil.example',
      'bad host',
    ]) {
      for (const path of ['/dashboard/state.json', '/metrics', '/dashboard', '/nowhere']) {
        const a = await get(plane.httpUrl, path, { host });
        expect([host, path, a.status]).toEqual([host, path, 421]);
        expect(a.body).toContain('DNS rebinding');
        expect(a.body).toContain('http.allowedHosts');
        expect(a.body).not.toContain('"services"');
      }
    }
    const metrics = (await get(plane.httpUrl, '/metrics')).body;
    expect(metricValue(metrics, /^augur_http_refused_total\{reason="host"\}/)).toBe(
      refusedBefore + 20,
    );
  });

  it('carries the security headers on every answer, and no-store on state, /metrics and /healthz', async () => {
    const csp = /default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'/;
    const answers: Record<string, Answer> = {};
    for (const path of [
      '/dashboard',
      '/dashboard/app.js',
      '/dashboard/vendor/uplot.js',
      '/dashboard/state.json',
      '/dashboard/events',
      '/metrics',
      '/healthz',
      '/nowhere',
    ])
      answers[path] = await get(plane.httpUrl, path);
    answers['421'] = await get(plane.httpUrl, '/dashboard', { host: 'evil.example' });
    for (const [what, a] of Object.entries(answers)) {
      expect([what, a.headers['content-security-policy']]).toEqual([
        what,
        expect.stringMatching(csp),
      ]);
      expect(a.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect([what, a.headers['x-frame-options']]).toEqual([what, 'DENY']);
      expect([what, a.headers['x-content-type-options']]).toEqual([what, 'nosniff']);
      expect([what, a.headers['referrer-policy']]).toEqual([what, 'no-referrer']);
    }
    for (const path of ['/dashboard/state.json', '/metrics', '/healthz', '/dashboard/events'])
      expect([path, answers[path]!.headers['cache-control']]).toEqual([
        path,
        expect.stringMatching(/^no-store/),
      ]);
    expect(answers['/dashboard']!.status).toBe(200);
    expect(answers['/dashboard/state.json']!.status).toBe(200);
    expect(answers['/dashboard/events']!.status).toBe(200);
  });
});

describe('hostOfHeader', () => {
  it('takes the name out of name, name:port and [v6]:port, and nothing else', () => {
    expect(hostOfHeader('Example.ORG:8080')).toBe('example.org');
    expect(hostOfHeader('example.org.')).toBe('example.org');
    expect(hostOfHeader('[::1]:80')).toBe('::1');
    expect(hostOfHeader('10.0.0.5')).toBe('10.0.0.5');
    for (const bad of ['', 'a b', '[::1', '[evil]:80', 'a:b:c', 'x@y', 'name:99999999'])
      expect([bad, hostOfHeader(bad)]).toEqual([bad, undefined]);
  });
});

describe('the HTTP address off loopback with identities', () => {
  const dirs: string[] = [];
  let plane: TestPlane;
  let base: string;
  beforeAll(async () => {
    plane = await startTestPlane({
      httpListen: '0.0.0.0:0',
      security: { insecure: true, principals },
    });
    base = `http://127.0.0.1:${new URL(plane.httpUrl).port}`;
  });
  afterAll(async () => {
    await plane?.dispose();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('serves /metrics and the dashboard only to a reader (bearer or Basic), /healthz to anyone', async () => {
    const refusedBefore = (await get(base, '/metrics', { authorization: `Bearer ${TOKENS.admin}` }))
      .body;
    const count = (text: string, reason: string) =>
      metricValue(
        text,
        new RegExp(`^augur_auth_refused_total\\{surface="http",reason="${reason}"\\}`),
      );

    for (const path of ['/dashboard', '/dashboard/state.json', '/dashboard/events', '/metrics']) {
      const none = await get(base, path);
      expect([path, none.status]).toEqual([path, 401]);
      expect(none.body).toMatch(/no credentials/);
      expect(String(none.headers['www-authenticate'])).toContain('Basic realm="augur"');
      expect(none.headers['x-frame-options']).toBe('DENY');

      const bad = await get(base, path, { authorization: 'Bearer not-a-token' });
      expect([path, bad.status]).toEqual([path, 401]);
      expect(bad.body).toMatch(/bearer token is not one augur knows/);

      const agent = await get(base, path, { authorization: `Bearer ${TOKENS.agent}` });
      expect([path, agent.status]).toEqual([path, 403]);
      expect(agent.body).toMatch(/"web-agent" \(roles agent\) may not call \/.*: it needs reader/);

      const reader = await get(base, path, { authorization: `Bearer ${TOKENS.reader}` });
      expect([path, reader.status]).toEqual([path, 200]);
      const basic = Buffer.from(`ops:${TOKENS.reader}`).toString('base64');
      const browser = await get(base, path, { authorization: `Basic ${basic}` });
      expect([path, browser.status]).toEqual([path, 200]);
    }
    const state = await get(base, '/dashboard/state.json', {
      authorization: `Bearer ${TOKENS.admin}`,
    });
    expect(state.status).toBe(200);
    expect(state.headers['cache-control']).toBe('no-store');
    expect((await get(base, '/healthz')).status).toBe(200);

    const after = (await get(base, '/metrics', { authorization: `Bearer ${TOKENS.admin}` })).body;
    expect(count(after, 'no_credentials') - count(refusedBefore, 'no_credentials')).toBe(4);
    expect(count(after, 'bad_token') - count(refusedBefore, 'bad_token')).toBe(4);
    expect(count(after, 'role') - count(refusedBefore, 'role')).toBe(4);
  });

  it("answers this machine's own addresses and host name when listening on every interface", async () => {
    const port = new URL(base).port;
    const own = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a !== undefined && a.family === 'IPv4')
      .map((a) => a!.address);
    for (const host of [...own, hostname()]) {
      const a = await get(base, '/healthz', { host: `${host}:${port}` });
      expect([host, a.status]).toEqual([host, 200]);
    }
    expect((await get(base, '/healthz', { host: 'rebound.evil.example' })).status).toBe(421);
  });

  it('takes a client certificate with a reader identity over HTTPS, and names in the certificate as hosts', async () => {
    const ca = new TestCa('http-ca');
    dirs.push(ca.dir);
    const server = ca.issue('server', { dns: ['augur.internal.test'] });
    const reader = ca.issue('reader', { uris: ['spiffe://augur.test/reader'] });
    const stranger = ca.issue('stranger', { uris: ['spiffe://augur.test/nobody'] });
    const tlsPlane = await startTestPlane({
      httpListen: '0.0.0.0:0',
      security: {
        tls: { ...server, ca: ca.cert, clientCert: 'optional' },
        principals,
      },
    });
    try {
      const url = `https://127.0.0.1:${new URL(tlsPlane.httpUrl).port}`;
      const tls = { ca: ca.cert };
      expect((await get(url, '/dashboard/state.json', {}, tls)).status).toBe(401);
      const refused = await get(url, '/dashboard/state.json', {}, { ...tls, client: stranger });
      expect(refused.status).toBe(401);
      expect(refused.body).toMatch(/spiffe:\/\/augur\.test\/nobody.*matches no identity/);
      const ok = await get(url, '/dashboard/state.json', {}, { ...tls, client: reader });
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.body)).toHaveProperty('services');
      const named = await get(
        url,
        '/dashboard/state.json',
        { host: 'augur.internal.test' },
        { ...tls, client: reader },
      );
      expect(named.status).toBe(200);
      const other = await get(
        url,
        '/dashboard/state.json',
        { host: 'other.internal.test' },
        { ...tls, client: reader },
      );
      expect(other.status).toBe(421);
    } finally {
      await tlsPlane.dispose();
    }
  });
});

describe('the HTTP address on loopback with identities', () => {
  it('keeps the dashboard and /metrics open to local browsers (the Host check still applies)', async () => {
    const plane = await startTestPlane({ security: { principals } });
    try {
      expect((await get(plane.httpUrl, '/dashboard/state.json')).status).toBe(200);
      expect((await get(plane.httpUrl, '/metrics')).status).toBe(200);
      expect((await get(plane.httpUrl, '/metrics', { host: 'evil.example' })).status).toBe(421);
    } finally {
      await plane.dispose();
    }
  });
});

describe('--http-listen :PORT (every interface) in plaintext', () => {
  it('is refused at start like the gRPC addresses (exit 2, PLAINTEXT_REFUSED naming HTTP)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'augur-http-any-'));
    try {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          'src/cli/main.ts',
          'serve',
          '--grpc-listen',
          '127.0.0.1:0',
          '--http-listen',
          ':0',
          '--data-dir',
          dataDir,
        ],
        { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      expect(stderr).toMatch(
        /HTTP on 0\.0\.0\.0 would be plaintext off loopback.*PLAINTEXT_REFUSED/,
      );
      expect(code).toBe(2);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('--allowed-hosts (http.allowedHosts from the command line)', () => {
  /** `augur ARGS` in a child process; resolves with it once it logged its HTTP address. */
  function serve(args: string[]): Promise<{ child: ChildProcess; http: string }> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new Promise((resolve, reject) => {
      let out = '';
      let err = '';
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const line = out.split('\n').find((l) => l.includes('"http":"http://'));
        if (line) resolve({ child, http: (JSON.parse(line) as { http: string }).http });
      });
      child.on('exit', (code) => reject(new Error(`augur exited with ${code}: ${err}`)));
    });
  }

  /** `augur ARGS` that must refuse to start: its exit code and stderr. */
  async function refused(args: string[]): Promise<{ code: number | null; stderr: string }> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: REPO,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    return { code, stderr };
  }

  it('answers the names it lists (exact and *.domain) and 421 to others, on augur serve', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'augur-allowed-hosts-'));
    let child: ChildProcess | undefined;
    try {
      const started = await serve([
        'serve',
        '--grpc-listen',
        '127.0.0.1:0',
        '--http-listen',
        '127.0.0.1:0',
        '--data-dir',
        dataDir,
        '--log-level',
        'info',
        '--allowed-hosts',
        'dash.example.org, *.corp.test',
      ]);
      child = started.child;
      for (const host of ['dash.example.org', 'x.corp.test:18080', 'localhost']) {
        const a = await get(started.http, '/healthz', { host });
        expect([host, a.status]).toEqual([host, 200]);
      }
      for (const host of ['example.org', 'corp.test', 'dash.example.org.evil.example']) {
        const a = await get(started.http, '/healthz', { host });
        expect([host, a.status]).toEqual([host, 421]);
      }
    } finally {
      if (child && child.exitCode === null) {
        const exited = new Promise((resolve) => child!.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses a bad name at start (exit 2) naming http.allowedHosts, on augur serve and augur rrm', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'augur-allowed-hosts-'));
    try {
      const bad = await refused([
        'serve',
        '--grpc-listen',
        '127.0.0.1:0',
        '--http-listen',
        '127.0.0.1:0',
        '--data-dir',
        dataDir,
        '--allowed-hosts',
        'ok.example,,bad host',
      ]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('http.allowedHosts.1');
      expect(bad.stderr).toContain('http.allowedHosts.2: must be a host name');
      const rrm = await refused(['rrm', '--lps', '127.0.0.1:1', '--allowed-hosts', 'a b']);
      expect(rrm.code).toBe(2);
      expect(rrm.stderr).toContain('http.allowedHosts.0: must be a host name');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
