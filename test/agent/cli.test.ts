import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/serve/config.js';
import { startControlPlane, type ControlPlane } from '../../src/serve/control-plane.js';

/** `augur agent` as users run it: a child process, flags, JSON logs, SIGTERM. */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');

let plane: ControlPlane;
let backend: http.Server;
let backendAddr: string;
let dataDir: string;

function augur(args: string[]): {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
} {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    // 'close', not 'exit': output can still be in the pipe when the process exits.
    child.once('close', (code) => resolve(code)),
  );
  return { child, out: () => out, exited };
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'augur-agent-cli-'));
  plane = await startControlPlane({
    config: loadConfig({
      env: {},
      flags: { grpcListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', dataDir, logLevel: 'silent' },
    }),
  });
  backend = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  backendAddr = `127.0.0.1:${(backend.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((r) => backend.close(() => r()));
  await plane.stop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('augur agent', () => {
  it('reports with its flags, logs JSON naming the LPS, and says goodbye on SIGTERM', async () => {
    const run = augur([
      'agent',
      '--lps',
      plane.grpcAddress,
      '--endpoint-id',
      'cli-agent',
      '--service',
      'shop',
      '--address',
      backendAddr,
      '--health-url',
      `http://${backendAddr}/healthz`,
      '--interval',
      '0.2',
      '--locality',
      'eu-west-1/eu-west-1a',
      '--label',
      'team=core',
      '--label',
      'tier=gold',
      // the endpoint's own process: this test's, which serves the backend above
      '--process-pid',
      String(process.pid),
    ]);
    try {
      const store = plane.lps.store;
      await waitFor(
        'samples from the agent process',
        () => (store.get('cli-agent')?.samplesStored ?? 0) >= 3,
      );
      const record = store.get('cli-agent')!;
      expect(record.service).toBe('shop');
      expect(record.locality).toEqual({ region: 'eu-west-1', zone: 'eu-west-1a', subZone: '' });
      expect(record.labels).toEqual({ team: 'core', tier: 'gold' });
      expect(record.series.at('healthy')).toBe(1);
      expect(record.series.at('responseTime')).toBeGreaterThan(0);
      // its own CPU is measured (the process tree of --process-pid), within the host's
      const own = record.series.at('processCpu');
      expect(own).toBeGreaterThanOrEqual(0);
      expect(own).toBeLessThanOrEqual(record.series.at('cpu'));
      expect(record.series.at('span')).toBeGreaterThan(0);

      run.child.kill('SIGTERM');
      expect(await run.exited).toBe(0);
      expect(record.draining).toBe(true); // a goodbye, not a crash
      const logs = run
        .out()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { msg: string; lps?: string });
      expect(logs.find((l) => l.msg === 'reporting to the LPS')?.lps).toBe(plane.grpcAddress);
      expect(logs.at(-1)?.msg).toBe('stopped');
    } finally {
      run.child.kill('SIGKILL');
    }
  });

  it('refuses a bad endpoint id with a message naming the rule, and clashing probe flags', async () => {
    const bad = augur([
      'agent',
      '--lps',
      plane.grpcAddress,
      '--endpoint-id',
      'has space',
      '--service',
      'shop',
      '--address',
      backendAddr,
    ]);
    const clash = augur([
      'agent',
      '--lps',
      plane.grpcAddress,
      '--endpoint-id',
      'x',
      '--service',
      'shop',
      '--address',
      backendAddr,
      '--health-tcp',
      '--health-grpc',
    ]);
    const noProcess = augur([
      'agent',
      '--lps',
      plane.grpcAddress,
      '--endpoint-id',
      'y',
      '--service',
      'shop',
      '--address',
      backendAddr,
      '--process-pid',
      '999999999',
    ]);
    const [badCode, clashCode, noProcessCode] = await Promise.all([
      bad.exited,
      clash.exited,
      noProcess.exited,
    ]);
    expect(noProcessCode).toBe(2);
    expect(noProcess.out()).toMatch(/cannot read the CPU of process 999999999.*BAD_PROCESS/);
    expect(badCode).toBe(2);
    expect(bad.out()).toMatch(
      /endpoint id "has space" must be 1 to 128 characters.*BAD_ENDPOINT_ID/,
    );

    expect(clashCode).not.toBe(0);
    expect(clash.out()).toMatch(/'--health-grpc' cannot be used with option '--health-tcp'/);
  });
});
