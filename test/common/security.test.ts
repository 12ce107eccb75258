import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { ExtProcClient, overrideHosts } from '../../src/rrm/ext-proc/client.js';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import http2 from 'node:http2';
import { PROCESS_PATH } from '../../src/rrm/ext-proc/http2-listener.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Agent } from '../../src/agent/agent.js';
import { AugurError } from '../../src/common/errors.js';
import { silentLogger } from '../../src/common/logger.js';
import { RemoteListSource } from '../../src/rrm/remote-list-source.js';
import { loadConfig } from '../../src/serve/config.js';
import { startControlPlane } from '../../src/serve/control-plane.js';
import { TestCa, type CertFiles } from '../support/certs.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';
import { RawAgentStream } from '../support/raw-agent.js';
import { captureLogger } from '../support/logs.js';

/*
 * TLS and mutual TLS on augur serve, with certificates made at test time by openssl: who is
 * refused (with which status) and who is accepted, certificate rotation without a restart, and
 * the plaintext rule.
 */

const REPO = join(import.meta.dirname, '../..');
const ca = new TestCa('augur-ca');
const otherCa = new TestCa('stranger-ca');
const pki = mkdtempSync(join(tmpdir(), 'augur-served-pki-'));
afterAll(() => {
  ca.dispose();
  otherCa.dispose();
  rmSync(pki, { recursive: true, force: true });
});

/** The server's certificate lives at fixed paths, so rotating it is copying new files there. */
const served = { cert: join(pki, 'server.crt'), key: join(pki, 'server.key') };
function serve(files: CertFiles): void {
  copyFileSync(files.key, served.key);
  copyFileSync(files.cert, served.cert);
}

const AGENT_WEB_1 = 'spiffe://augur.test/agent/web-1';
const HEALTHZ = 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n';
const principals = [
  { name: AGENT_WEB_1, roles: ['agent'], endpoints: 'web-1', services: 'web' },
  { name: 'spiffe://augur.test/rrm', roles: ['dataPlane'] },
];

function clientCredentials(files?: CertFiles, caFile = ca.cert): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(
    readFileSync(caFile),
    files ? readFileSync(files.key) : null,
    files ? readFileSync(files.cert) : null,
  );
}

/** Says hello for `id` in service web over `credentials`; the stream's end status, or 'open'. */
async function helloOutcome(
  plane: TestPlane,
  credentials: grpc.ChannelCredentials,
  id = 'web-1',
): Promise<grpc.status | 'open'> {
  const s = new RawAgentStream(plane.grpcAddress, credentials);
  try {
    s.hello({ endpointId: id, service: 'web' });
    await waitFor(() => s.status || s.received.some((m) => m.config), 10_000, 'an answer');
    return s.status ? s.status.code : 'open';
  } finally {
    s.close();
  }
}

describe('mutual TLS (client certificates optional, identities configured)', () => {
  let plane: TestPlane;
  beforeAll(async () => {
    serve(ca.issue('server', { dns: ['augur'] }));
    plane = await startTestPlane({
      rrm: { extProcListen: '127.0.0.1:0' },
      security: {
        tls: { ...served, ca: ca.cert, clientCert: 'optional', reloadInterval: 0.05 },
        principals,
      },
    });
  });
  afterAll(() => plane.dispose());

  it('refuses an agent with no certificate: UNAUTHENTICATED', async () => {
    expect(await helloOutcome(plane, clientCredentials())).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('refuses a certificate from another CA: UNAUTHENTICATED', async () => {
    const stranger = otherCa.issue('stranger', { uris: [AGENT_WEB_1] });
    expect(await helloOutcome(plane, clientCredentials(stranger))).toBe(
      grpc.status.UNAUTHENTICATED,
    );
  });

  it('refuses an expired certificate of the right CA: UNAUTHENTICATED', async () => {
    const expired = ca.issue('expired', { uris: [AGENT_WEB_1], days: -1 });
    expect(await helloOutcome(plane, clientCredentials(expired))).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('refuses a valid certificate reporting another endpoint: PERMISSION_DENIED', async () => {
    const web1 = ca.issue('web-1', { uris: [AGENT_WEB_1] });
    expect(await helloOutcome(plane, clientCredentials(web1), 'web-2')).toBe(
      grpc.status.PERMISSION_DENIED,
    );
    expect(plane.lps.store.get('web-2')).toBeUndefined();
  });

  it('accepts a valid certificate for its own endpoint and stores its samples', async () => {
    const web1 = ca.issue('web-1', { uris: [AGENT_WEB_1] });
    const s = new RawAgentStream(plane.grpcAddress, clientCredentials(web1));
    try {
      s.hello({ endpointId: 'web-1', service: 'web' });
      s.sample({ sequence: 1 });
      await s.waitMessage((m) => m.ack?.lastSequence === 1, 10_000);
      expect(plane.lps.store.get('web-1')?.samplesStored).toBe(1);
    } finally {
      s.close();
    }
    const metrics = await plane.registry.metrics();
    expect(metrics).toMatch(
      /augur_auth_refused_total\{surface="grpc",reason="no_credentials"\} \d/,
    );
    expect(metrics).toMatch(/augur_auth_refused_total\{surface="telemetry",reason="endpoint"\} 1/);
  });

  it('carries the real agent and the RRM watch client over mutual TLS', async () => {
    const backend = net.createServer((c) => c.destroy());
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const address = `127.0.0.1:${(backend.address() as AddressInfo).port}`;
    const web1 = ca.issue('web-1', { uris: [AGENT_WEB_1] });
    const agent = await Agent.start({
      lps: plane.grpcAddress,
      endpointId: 'web-1',
      service: 'web',
      address,
      intervalSeconds: 0.1,
      probe: { kind: 'tcp', address },
      healthTimeoutSeconds: 0.5,
      backoff: { initialSeconds: 0.05, maxSeconds: 0.4 },
      logger: silentLogger,
      security: { ca: ca.cert, cert: web1.cert, key: web1.key, serverName: 'augur' },
    });
    // The RRM's identity (a reader) watching the lists, as `augur rrm --lps` does.
    const rrmFiles = ca.issue('rrm', { uris: ['spiffe://augur.test/rrm'] });
    const source = new RemoteListSource({
      address: plane.grpcAddress,
      reconnectInitial: 0.05,
      reconnectMax: 0.4,
      logger: silentLogger,
      security: { ca: ca.cert, cert: rrmFiles.cert, key: rrmFiles.key },
    });
    source.start();
    try {
      await waitFor(
        () => (plane.lps.store.get('web-1')?.samplesStored ?? 0) >= 2,
        20_000,
        'samples from the agent over mTLS',
      );
      await waitFor(() => source.get('web')?.endpoints.length, 20_000, 'the web list over mTLS');
    } finally {
      source.stop();
      await agent.stop();
      backend.close();
    }
  });

  it('serves HTTPS on the HTTP address with the same certificate', async () => {
    expect(plane.httpUrl).toMatch(/^https:/);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${plane.httpUrl}/healthz`, { ca: readFileSync(ca.cert) }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(200);
  });

  it('judges each ext_proc stream by its connection’s certificate, read once per connection', async () => {
    // One HTTP/2 connection with an agent's certificate (role agent, not dataPlane): every stream
    // on it is refused, each one counted; one with the RRM's certificate is served.
    const streams = async (files: CertFiles, n: number): Promise<string[]> => {
      const session = http2.connect(`https://${plane.extProcAddress!}`, {
        ca: readFileSync(ca.cert),
        cert: readFileSync(files.cert),
        key: readFileSync(files.key),
        servername: 'localhost',
      });
      session.on('error', () => undefined);
      try {
        const codes: string[] = [];
        for (let i = 0; i < n; i++)
          codes.push(
            await new Promise<string>((resolve, reject) => {
              const stream = session.request(
                {
                  ':method': 'POST',
                  ':path': PROCESS_PATH,
                  'content-type': 'application/grpc',
                  te: 'trailers',
                },
                { endStream: true },
              );
              let code = '';
              stream.on('response', (h) => (code ||= String(h['grpc-status'] ?? '')));
              stream.on('trailers', (h) => (code ||= String(h['grpc-status'] ?? '')));
              stream.on('data', () => undefined);
              stream.on('error', reject);
              stream.on('close', () => resolve(code));
            }),
          );
        return codes;
      } finally {
        session.close();
      }
    };
    const refused = async (): Promise<number> =>
      Number(
        /augur_auth_refused_total\{surface="ext_proc",reason="role"\} (\d+)/.exec(
          await plane.registry.metrics(),
        )?.[1] ?? 0,
      );
    const before = await refused();
    const agentCert = ca.issue('web-1-on-ext-proc', { uris: [AGENT_WEB_1] });
    expect(await streams(agentCert, 3)).toEqual(
      Array(3).fill(String(grpc.status.PERMISSION_DENIED)),
    );
    expect((await refused()) - before).toBe(3);
    const rrm = ca.issue('rrm', { uris: ['spiffe://augur.test/rrm'] });
    expect(await streams(rrm, 3)).toEqual(Array(3).fill(String(grpc.status.OK)));
  });

  it('ends a connection that tries TLS renegotiation, so it keeps the identity it proved', async () => {
    // TLS 1.2 lets a client renegotiate and present another certificate on an open connection;
    // augur reads a connection's certificate once, so its HTTPS and ext_proc addresses refuse
    // renegotiation (HTTP/2 forbids it; Node's HTTP/1 server allows it unless told otherwise).
    const web1 = ca.issue('web-1-renegotiating', { uris: [AGENT_WEB_1] });
    /** Whether the renegotiation completed, and whether the request after it was answered. */
    const renegotiate = (address: string, alpn: string, after: string) =>
      new Promise<{ renegotiated: boolean; answered: boolean }>((resolve) => {
        const url = new URL(address.includes('://') ? address : `https://${address}`);
        const socket = connect({
          host: url.hostname,
          port: Number(url.port),
          servername: 'localhost',
          ca: readFileSync(ca.cert),
          cert: readFileSync(web1.cert),
          key: readFileSync(web1.key),
          maxVersion: 'TLSv1.2',
          ALPNProtocols: [alpn],
        });
        let renegotiated = false;
        let answered = false;
        const done = (): void => {
          socket.destroy();
          resolve({ renegotiated, answered });
        };
        socket.on('error', () => undefined);
        // What a refused connection may get is Node's 400 for the failed handshake, not an answer.
        socket.on('data', (d: Buffer) => (answered ||= d.toString().includes(' 200 ')));
        socket.once('secureConnect', () => {
          socket.renegotiate({ rejectUnauthorized: true }, (err) => {
            if (!err) renegotiated = true;
          });
          // Asked right behind the renegotiation: served only if the connection lives on.
          setTimeout(() => socket.write(after), 500);
          setTimeout(done, 2_500);
        });
      });
    // The control: a plain request on a connection that does not renegotiate is answered.
    const plain = await new Promise<boolean>((resolve) => {
      const url = new URL(plane.httpUrl);
      const socket = connect({
        host: url.hostname,
        port: Number(url.port),
        servername: 'localhost',
        ca: readFileSync(ca.cert),
        ALPNProtocols: ['http/1.1'],
      });
      socket.on('error', () => resolve(false));
      socket.once('secureConnect', () => socket.write(HEALTHZ));
      socket.once('data', () => {
        socket.destroy();
        resolve(true);
      });
    });
    expect(plain).toBe(true);
    expect(await renegotiate(plane.httpUrl, 'http/1.1', HEALTHZ)).toEqual({
      renegotiated: false,
      answered: false,
    });
    const h2 = await renegotiate(plane.extProcAddress!, 'h2', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    expect(h2.renegotiated).toBe(false);
  });

  it('picks up a rotated server certificate without a restart', async () => {
    const serialNow = () =>
      new Promise<string>((resolve, reject) => {
        const [host, port] = [
          '127.0.0.1',
          Number(plane.grpcAddress.slice(plane.grpcAddress.lastIndexOf(':') + 1)),
        ];
        const socket = connect({
          host,
          port,
          servername: 'localhost',
          ca: readFileSync(ca.cert),
          ALPNProtocols: ['h2'],
        });
        socket.once('secureConnect', () => {
          resolve(socket.getPeerCertificate().serialNumber);
          socket.destroy();
        });
        socket.once('error', reject);
      });
    const before = await serialNow();
    serve(ca.issue('server-rotated', { dns: ['augur'] }));
    const after = await waitFor(
      async () => {
        const s = await serialNow();
        return s !== before && s;
      },
      20_000,
      'the rotated certificate on new connections',
    );
    expect(after).not.toBe(before);
    // And the new certificate serves calls.
    const web1 = ca.issue('web-1', { uris: [AGENT_WEB_1] });
    expect(await helloOutcome(plane, clientCredentials(web1))).toBe('open');
  });
});

describe('mutual TLS required', () => {
  it('refuses the handshake of a client without a certificate (UNAVAILABLE) and accepts one with', async () => {
    const files = ca.issue('server', { dns: ['augur'] });
    const plane = await startTestPlane({
      security: { tls: { ...files, ca: ca.cert, clientCert: 'required' }, principals },
    });
    try {
      expect(await helloOutcome(plane, clientCredentials())).toBe(grpc.status.UNAVAILABLE);
      const web1 = ca.issue('web-1', { uris: [AGENT_WEB_1] });
      expect(await helloOutcome(plane, clientCredentials(web1))).toBe('open');
    } finally {
      await plane.dispose();
    }
  });
});

describe('plaintext off loopback', () => {
  it('is refused at start (PLAINTEXT_REFUSED) unless the operator says insecure, and then logged', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'augur-plain-'));
    try {
      const offLoopback = { grpcListen: '0.0.0.0:0', httpListen: '127.0.0.1:0', dataDir };
      await expect(
        startControlPlane({ config: loadConfig({ env: {}, flags: offLoopback }) }),
      ).rejects.toSatisfy((e) => e instanceof AugurError && e.code === 'PLAINTEXT_REFUSED');

      const { logger, lines } = captureLogger('info');
      const plane = await startControlPlane({
        config: loadConfig({ env: {}, flags: { ...offLoopback, security: { insecure: true } } }),
        logger,
      });
      await plane.stop();
      expect(lines.join('')).toMatch(/INSECURE: gRPC on 0\.0\.0\.0 is plaintext off loopback/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('makes `augur serve` exit 2 naming the problem', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'augur-plain-cli-'));
    try {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          'src/cli/main.ts',
          'serve',
          '--grpc-listen',
          '0.0.0.0:0',
          '--http-listen',
          '127.0.0.1:0',
          '--data-dir',
          dataDir,
        ],
        { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      expect(stderr).toMatch(/plaintext off loopback.*\(PLAINTEXT_REFUSED\)/);
      expect(code).toBe(2);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('augur serve with ext_proc workers, mutual TLS and identities', () => {
  it('lets its workers watch its lists (a token of the run) and serve Envoy over mTLS', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'augur-workers-mtls-'));
    const server = ca.issue('server', { dns: ['augur'] });
    const envoy = ca.issue('envoy', { uris: ['spiffe://augur.test/envoy'] });
    const web1 = ca.issue('web-1', { uris: [AGENT_WEB_1] });
    const configFile = join(dir, 'augur.yaml');
    writeFileSync(
      configFile,
      stringify({
        rrm: { extProcListen: '127.0.0.1:0', extProcWorkers: 2 },
        forecast: { lstm: { enabled: false } },
        security: {
          tls: { ...server, ca: ca.cert, clientCert: 'required' },
          principals: [...principals, { name: 'spiffe://augur.test/envoy', roles: ['dataPlane'] }],
        },
      }),
    );
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'serve',
        '--config',
        configFile,
        '--grpc-listen',
        '127.0.0.1:0',
        '--http-listen',
        '127.0.0.1:0',
        '--data-dir',
        join(dir, 'data'),
      ],
      { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const lines: Array<Record<string, unknown>> = [];
    let rest = '';
    const read = (d: Buffer): void => {
      rest += d.toString();
      const parts = rest.split('\n');
      rest = parts.pop()!;
      for (const line of parts) {
        try {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          lines.push({ msg: line });
        }
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    const agent = { stream: undefined as RawAgentStream | undefined };
    try {
      const ready = await waitFor(
        () => lines.find((l) => typeof l.extProc === 'string' && typeof l.grpc === 'string'),
        60_000,
        `augur serve to listen:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`,
      );
      const s = new RawAgentStream(ready.grpc as string, clientCredentials(web1));
      agent.stream = s;
      s.hello({ endpointId: 'web-1', service: 'web', port: 9001 });
      s.sample({ sequence: 1 });
      await s.waitMessage((m) => m.ack?.lastSequence === 1, 20_000);
      const tlsOptions = {
        ca: readFileSync(ca.cert),
        cert: readFileSync(envoy.cert),
        key: readFileSync(envoy.key),
        servername: 'localhost',
      };
      await waitFor(
        async () => {
          const client = new ExtProcClient(ready.extProc as string, tlsOptions);
          try {
            const stream = await client.start(
              {
                headers: [
                  [':method', 'GET'],
                  [':path', '/'],
                  [':authority', 'web'],
                ],
                endOfStream: true,
                clusterName: 'web',
              },
              5000,
            );
            stream.end();
            return overrideHosts(stream.answer).includes('127.0.0.1:9001');
          } finally {
            client.close();
          }
        },
        60_000,
        'a pick from a worker',
      );
    } finally {
      agent.stream?.close();
      child.kill('SIGTERM');
      await new Promise((r) => child.once('close', r));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
