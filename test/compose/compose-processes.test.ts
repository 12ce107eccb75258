import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { waitWithProgress } from '../support/progress.js';
import {
  REPO,
  cliOptions,
  composeConfig,
  hostPort,
  parseCommand,
  readBootstrap,
} from './compose-support.js';

/**
 * The compose file's augur commands, run for real on loopback: the same argv, with each
 * container's host:port mapped to a free local port and the data dir to a temp folder. Envoy
 * cannot run here, so `augur dataplane` (the RRM's stand-in that asks the picker over ext_proc
 * as Envoy does) takes its listener. Proves the commands start and work together: the agents
 * read their backends' /load and register them, and the load generator's requests reach all
 * three backends through the picker.
 */

const children: ChildProcess[] = [];
const dataDir = mkdtempSync(join(tmpdir(), 'augur-compose-'));

afterAll(async () => {
  for (const child of children) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(dataDir, { recursive: true, force: true });
}, 30_000);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

interface LogLine {
  name?: string;
  msg?: string;
  byBackend?: Record<string, number>;
  completed?: number;
  p50Ms?: number;
  p99Ms?: number;
}

describe('docker-compose.yml commands, as processes', () => {
  it("start, and carry the load generator's traffic to every backend", async () => {
    const compose = await composeConfig();
    const bootstrap = readBootstrap();
    const options = cliOptions();
    const services = Object.entries(compose.services).filter(([, s]) => s.image === 'augur:local');

    // Container address -> local address, for every address a command listens on; a listen
    // address (0.0.0.0:8080 in three containers) maps per service.
    const local = new Map<string, string>();
    const listens = new Map<string, Map<string, string>>();
    const ipOf = (name: string) =>
      Object.values(compose.services[name]?.networks ?? {}).find((n) => n?.ipv4_address)
        ?.ipv4_address;
    for (const [name, s] of services) {
      const { flags } = parseCommand(s.command!, options);
      // Every listen address, so nothing here binds a fixed port another test may hold.
      for (const f of ['--listen', '--grpc-listen', '--http-listen', '--ext-proc-listen']) {
        const value = flags.get(f);
        if (typeof value !== 'string') continue;
        const { port } = hostPort(value);
        const mapped = `127.0.0.1:${await freePort()}`;
        listens.set(name, (listens.get(name) ?? new Map<string, string>()).set(value, mapped));
        local.set(`${name}:${port}`, mapped);
        const ip = ipOf(name);
        if (ip) local.set(`${ip}:${port}`, mapped);
      }
    }
    const proxy = `127.0.0.1:${await freePort()}`;
    for (const port of bootstrap.listenerPorts) local.set(`envoy:${port}`, proxy);
    const mapArg = (service: string) => (arg: string) => {
      const own = listens.get(service)?.get(arg);
      if (own) return own;
      for (const [from, to] of local) {
        if (arg === from) return to;
        if (arg.includes(`//${from}/`) || arg.endsWith(`//${from}`)) return arg.replace(from, to);
      }
      return arg;
    };

    const order = ['serve', 'demo-backend', 'agent', 'loadgen'];
    const commands = services
      .map(([name, s]) => s.command!.map(mapArg(name)))
      .sort((a, b) => order.indexOf(a[0]!) - order.indexOf(b[0]!))
      .map((argv) => {
        if (argv[0] === 'serve') argv[argv.indexOf('--data-dir') + 1] = dataDir;
        if (argv[0] === 'agent') argv.push('--interval', '0.5');
        if (argv[0] === 'loadgen') argv[argv.indexOf('--report-every') + 1] = '1s';
        return argv;
      });
    // Unmapped container names would mean a command reaches a host that is not started here.
    for (const argv of commands)
      for (const arg of argv)
        expect(arg, argv.join(' ')).not.toMatch(/\/\/(augur|backend-\d|envoy)\b|^augur:/);
    const serve = commands.find((c) => c[0] === 'serve')!;
    const grpc = serve[serve.indexOf('--grpc-listen') + 1]!;
    const http = serve[serve.indexOf('--http-listen') + 1]!;
    const dataplane = [
      'dataplane',
      '--rrm',
      grpc,
      '--listen',
      proxy,
      '--cluster',
      bootstrap.routeClusters[0]!,
    ];
    commands.splice(commands.length - 1, 0, dataplane);

    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/compose/local-compose.ts', JSON.stringify(commands)],
      {
        cwd: REPO,
        // Only the flags configure it, as in the containers.
        env: Object.fromEntries(
          Object.entries(process.env).filter(([k]) => !k.startsWith('AUGUR_')),
        ),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.push(child);
    const lines: LogLine[] = [];
    let stderr = '';
    let partial = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop() ?? '';
      for (const p of parts) {
        try {
          lines.push(JSON.parse(p) as LogLine);
        } catch {
          // not a log line
        }
      }
    });

    const backendIds = services
      .filter(([, s]) => s.command![0] === 'demo-backend')
      .map(([, s]) => parseCommand(s.command!, options).flags.get('--id'));
    // Waits as long as the processes keep logging (start-up takes 20 s on a busy machine),
    // and fails once the load generator has reported 30 times (30 s of its own running
    // time) without every backend having answered.
    const t0 = Date.now();
    const reports = () => lines.filter((l) => l.msg === 'load report').length;
    const everyBackend = await waitWithProgress({
      what: 'a load report that reached every backend',
      progress: () => {
        if (child.exitCode !== null)
          throw new Error(`the commands exited ${child.exitCode}:\n${stderr}`);
        return lines.length + 1000 * reports();
      },
      budget: 30 * 1000,
      stallMs: 60_000,
      pollMs: 200,
      check: () => {
        // Answers per backend over every report so far.
        const served = new Map<string, number>();
        for (const l of lines)
          if (l.msg === 'load report')
            for (const [id, n] of Object.entries(l.byBackend ?? {}))
              served.set(id, (served.get(id) ?? 0) + n);
        return backendIds.every((id) => (served.get(String(id)) ?? 0) > 0)
          ? { byBackend: Object.fromEntries(served) }
          : undefined;
      },
    }).catch((err: Error) => {
      throw new Error(
        `${err.message}\nlast lines:\n${lines
          .slice(-15)
          .map((l) => JSON.stringify(l))
          .join('\n')}\n${stderr}`,
      );
    });
    expect(lines.some((l) => l.msg === 'local compose started')).toBe(true);
    // The load generator's reports carry latency percentiles of what was answered.
    const answered = lines.filter((l) => l.msg === 'load report' && (l.completed ?? 0) > 0);
    expect(answered.length).toBeGreaterThan(0);
    for (const r of answered) {
      expect(r.p50Ms).toBeGreaterThan(0);
      expect(r.p99Ms).toBeGreaterThanOrEqual(r.p50Ms!);
    }
    console.log(`every backend served after ${Date.now() - t0} ms:`, everyBackend.byBackend);

    // augur has the three endpoints, and their agents read the backends' /load without a failure.
    const metrics = await (await fetch(`http://${http}/metrics`)).text();
    const endpoints = [...metrics.matchAll(/^augur_lps_endpoints(?:\{[^}]*\})? (\d+)/gm)].reduce(
      (n, m) => n + Number(m[1]),
      0,
    );
    expect(endpoints).toBe(backendIds.length);
    // A read of /load that timed out is a busy machine; any other failure is a fault.
    expect(
      lines.filter(
        (l) =>
          l.msg === 'cannot read the host load; sample skipped' &&
          !/timeout|timed out|aborted/i.test(JSON.stringify(l)),
      ),
    ).toEqual([]);
  }, 240_000);
});
