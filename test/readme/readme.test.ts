import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/control-plane.js';

/**
 * Every command the README shows in a `sh` block, run exactly as written, in a fresh copy of
 * the repository (what `git clone` gives: tracked files and new ones not ignored, no
 * node_modules, no dist), the way a newcomer runs them: `npm ci && npm start` first, then the
 * walkthrough's `npx augur …` commands. A command added to the README without a way to run
 * it here fails the test, and so does a command listed here that the README no longer shows.
 */
const REPO = join(import.meta.dirname, '../..');
const README = readFileSync(join(REPO, 'README.md'), 'utf8');

/** The commands of the README's `sh` blocks, continuation lines joined. */
function readmeCommands(markdown: string): string[] {
  const out: string[] = [];
  for (const m of markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm))
    for (const line of m[1]!.replace(/\\\n\s*/g, '').split('\n'))
      if (line.trim() && !line.trim().startsWith('#')) out.push(line.trim());
  return out;
}

const NPM_START = 'npm ci && npm start';
const SERVE =
  'npx augur serve --grpc-listen 127.0.0.1:18000 --http-listen 127.0.0.1:18080 --data-dir ./.augur';
const BACKEND = 'npx augur demo-backend --id checkout-1 --listen 127.0.0.1:8080';
const AGENT =
  'npx augur agent --lps 127.0.0.1:18000 --endpoint-id checkout-1 --service checkout --address 127.0.0.1:8080 --health-url http://127.0.0.1:8080/healthz --load-url http://127.0.0.1:8080/load --interval 1';
const FORECAST =
  'npx augur forecast eval --csv data/traces/nab/ec2_cpu_utilization_24ae8d.csv --horizons 1,3 --no-lstm';
const ENVOY_CHECK =
  'npx augur envoy-check envoy/bootstrap.yaml envoy/bootstrap-static-cluster.yaml';
/** Run by CI and by whoever reads this: it is the command that runs this test. */
const NPM_TEST = 'npm test';

/** The fixed ports the README's commands use; another process on one would fail them. */
const PORTS = [18000, 18001, 18080, 18081, 8080];

let copy: string;
const running: ChildProcess[] = [];

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function start(command: string): Run {
  const child = spawn('/bin/sh', ['-c', command], {
    cwd: copy,
    // Its own process group, as a terminal's foreground job: Ctrl-C goes to all of it.
    detached: true,
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AUGUR_'))),
      // npm's own settings, not the command: use this machine's cache, say nothing extra.
      npm_config_prefer_offline: 'true',
      npm_config_audit: 'false',
      npm_config_fund: 'false',
      npm_config_update_notifier: 'false',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.push(child);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, output: () => output, exited };
}

/** Waits for `pattern` in the output; the command exiting first is a failure. */
async function waitForOutput(
  run: Run,
  pattern: RegExp,
  what: string,
  timeoutMs: number,
): Promise<void> {
  let exitCode: number | null | undefined;
  void run.exited.then((c) => (exitCode = c));
  try {
    await waitFor(
      () => {
        if (exitCode !== undefined) throw new Error(`exited with ${exitCode} before ${what}`);
        return pattern.test(run.output());
      },
      timeoutMs,
      what,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}\noutput:\n${run.output().slice(-4000)}`);
  }
}

/**
 * Ctrl-C (SIGINT) or SIGTERM to the command's process group, as a terminal sends it to its
 * foreground job. The `sh -c` that stands for the user's shell dies of it at once (an
 * interactive shell would not); what must stop cleanly is augur, which says so.
 */
async function stopCleanly(run: Run, signal: NodeJS.Signals, said: RegExp): Promise<void> {
  if (run.child.exitCode === null && run.child.pid) process.kill(-run.child.pid, signal);
  await waitFor(() => said.test(run.output()), 60_000, `${said} after ${signal}`);
  await run.exited;
}

async function finite(command: string, timeoutMs: number): Promise<string> {
  const run = start(command);
  const code = await Promise.race([
    run.exited,
    new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref()),
  ]);
  if (code !== 0) throw new Error(`"${command}" ended with ${code}:\n${run.output().slice(-4000)}`);
  return run.output();
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

beforeAll(() => {
  // What a clone has: tracked files and new ones git does not ignore.
  copy = mkdtempSync(join(tmpdir(), 'augur-readme-'));
  const files = execFileSync(
    'git',
    ['ls-files', '-z', '--cached', '--others', '--exclude-standard'],
    {
      cwd: REPO,
      encoding: 'utf8',
    },
  )
    .split('\0')
    .filter(Boolean);
  for (const f of files) {
    const from = join(REPO, f);
    if (!existsSync(from) || !statSync(from).isFile()) continue;
    mkdirSync(dirname(join(copy, f)), { recursive: true });
    copyFileSync(from, join(copy, f));
  }
  expect(existsSync(join(copy, 'node_modules'))).toBe(false);
  expect(existsSync(join(copy, 'dist'))).toBe(false);
});

afterAll(async () => {
  for (const c of running)
    if (c.exitCode === null && c.pid) {
      try {
        process.kill(-c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  rmSync(copy, { recursive: true, force: true });
}, 120_000);

describe('the README, followed word for word on a fresh copy', () => {
  it('shows only commands this test runs, and the test command is the one CI runs', () => {
    expect(readmeCommands(README).sort()).toEqual(
      [NPM_START, NPM_TEST, SERVE, BACKEND, AGENT, FORECAST, ENVOY_CHECK].sort(),
    );
    // `npm test` cannot run inside itself: CI runs it, the same command, after `npm ci`.
    const ci = readFileSync(join(REPO, '.ci/run'), 'utf8').split('\n');
    expect(ci).toContain(NPM_TEST);
    expect(ci).toContain('npm ci --no-audit --no-fund');
    const scripts = (
      JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
        scripts: Record<string, string>;
      }
    ).scripts;
    expect(scripts.test).toBe('tsx test/support/setup.ts && vitest run');
    expect(scripts.prepare).toBe('npm run build');
  });

  it('runs them: the demo, then serve, a backend and its agent, a forecast evaluation, the Envoy check', async () => {
    for (const port of PORTS)
      if (!(await portFree(port)))
        throw new Error(
          `port ${port} on 127.0.0.1 is in use by another process; the README's commands need it (another augur demo?)`,
        );

    // `npm ci` (which builds dist/ through `prepare`), then the demo, until its first table.
    const demo = start(NPM_START);
    await waitForOutput(demo, /augur demo: predictive load balancing/, 'the demo banner', 540_000);
    await waitForOutput(
      demo,
      /dashboard\s+http:\/\/127\.0\.0\.1:18080\/dashboard/,
      'the dashboard address',
      60_000,
    );
    await waitForOutput(demo, /service demo, list v\d+/, 'the first table', 120_000);
    expect(existsSync(join(copy, 'dist/src/cli/main.js'))).toBe(true);
    const root = await fetch('http://127.0.0.1:18080/', { redirect: 'manual' });
    expect(root.headers.get('location')).toBe('/dashboard');
    await root.text();
    // Ctrl-C stops it cleanly: the demo says so and lets go of its ports.
    await stopCleanly(demo, 'SIGINT', /augur demo stopped/);
    await waitFor(
      async () => (await Promise.all(PORTS.map(portFree))).every(Boolean),
      60_000,
      'the demo to free its ports',
    );

    // The walkthrough: the control plane, an endpoint and its agent, each in its terminal.
    const serve = start(SERVE);
    await waitForOutput(serve, /augur control plane listening/, 'augur serve to listen', 120_000);
    const backend = start(BACKEND);
    await waitForOutput(backend, /demo backend listening/, 'the backend to listen', 120_000);
    const agent = start(AGENT);
    await waitForOutput(
      agent,
      /connected to the LPS at 127\.0\.0\.1:18000/,
      'the agent to connect',
      120_000,
    );
    await waitFor(
      async () => {
        const state = (await (
          await fetch('http://127.0.0.1:18080/dashboard/state.json')
        ).json()) as {
          endpoints: Array<{ id: string; state: string; weight: number | null }>;
        };
        return state.endpoints.find(
          (e) => e.id === 'checkout-1' && e.state === 'active' && e.weight === 1,
        );
      },
      60_000,
      'checkout-1 active with all the traffic on the dashboard',
    );
    // Each stops on SIGTERM and logs that it stopped (pino's JSON line "stopped").
    for (const run of [agent, backend, serve]) await stopCleanly(run, 'SIGTERM', /"msg":"stopped"/);

    const evaluation = await finite(FORECAST, 180_000);
    expect(evaluation).toMatch(/^selected\s+\d\.\d{3}\s+\d\.\d{3}/m);
    const check = await finite(ENVOY_CHECK, 120_000);
    expect(check).toMatch(/envoy\/bootstrap\.yaml/);
  }, 900_000);
});
