/**
 * The child processes of a run: `augur serve` exactly as a user starts it (with
 * serve-preload.ts, which changes nothing in augur), the fleet of backends and agents, and the
 * data planes of the augur-rrm arm. Each has an IPC channel to the harness; each is stopped with
 * SIGTERM and, if that fails within ten seconds, killed; and each stops itself if the harness dies.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './clock.js';
import { IpcClient } from './ipc.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const SERVE_PRELOAD = new URL('./serve-preload.ts', import.meta.url).href;
const FLEET = fileURLToPath(new URL('./fleet.ts', import.meta.url));
const DATA_PLANES = fileURLToPath(new URL('./dataplane-host.ts', import.meta.url));

export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  readonly ipc: IpcClient;
  /** The last lines it wrote, for error messages. */
  tail(): string;
  stop(): Promise<void>;
}

export interface ServeChild extends Child {
  grpcAddress: string;
  httpUrl: string;
  /** The ext_proc fast path (`--ext-proc-listen`), the address Envoy's ext_proc filter would use. */
  extProcAddress: string;
}

/** A warning or error line as one short line (a pino record's level, message and error), or ''. */
function condensed(line: string): string {
  if (!line.startsWith('{')) return /^\s*(\w*Error|at )/.test(line) ? line : '';
  try {
    const log = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string } };
    if ((log.level ?? 0) < 40) return '';
    const level = (log.level ?? 0) >= 50 ? 'error' : 'warn';
    return `${level}: ${log.msg ?? ''}${log.err?.message ? ` (${log.err.message})` : ''}`;
  } catch {
    return line;
  }
}

function startChild(name: string, args: string[], env: Record<string, string>): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const lines: string[] = [];
  const keep = (chunk: Buffer): void => {
    for (const line of chunk.toString().split('\n')) {
      if (line.trim() === '') continue;
      lines.push(line);
      if (lines.length > 40) lines.shift();
      // Errors and warnings of the children are the user's to see (one line each); info is not.
      const seen = condensed(line);
      if (seen) process.stderr.write(`[${name}] ${seen}\n`);
    }
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stopping: Promise<void> | undefined;
  return {
    name,
    process: child,
    ipc: new IpcClient(child, name),
    tail: () => lines.join('\n'),
    stop: () =>
      (stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(killer);
      })()),
  };
}

/** `augur serve` on free loopback ports with its ext_proc fast path, the agents' interval as default. */
export async function startServe(
  reportInterval: number,
  env: Record<string, string> = {},
): Promise<ServeChild> {
  const dataDir = mkdtempSync(join(tmpdir(), 'augur-e2e-'));
  const child = startChild(
    'augur serve',
    [
      '--import',
      SERVE_PRELOAD,
      MAIN,
      'serve',
      '--grpc-listen',
      '127.0.0.1:0',
      '--http-listen',
      '127.0.0.1:0',
      '--ext-proc-listen',
      '127.0.0.1:0',
      '--data-dir',
      dataDir,
    ],
    { AUGUR_LOG_LEVEL: 'info', AUGUR_LPS__DEFAULT_INTERVAL: String(reportInterval), ...env },
  );
  const stop = async (): Promise<void> => {
    await child.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  let listening: { grpc: string; http: string; extProc?: string } | undefined;
  let pending = '';
  const findListening = (chunk: Buffer): void => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      if (line.includes('augur control plane listening')) listening = JSON.parse(line);
    }
    if (listening) child.process.stdout!.off('data', findListening);
  };
  child.process.stdout!.on('data', findListening);
  try {
    const found = await waitFor(
      'augur serve to say where it listens',
      () => {
        if (child.process.exitCode !== null) {
          throw new Error(`augur serve exited with ${child.process.exitCode}:\n${child.tail()}`);
        }
        return listening;
      },
      60_000,
    );
    if (!found.extProc) throw new Error('augur serve did not start its ext_proc fast path');
    return {
      ...child,
      stop,
      grpcAddress: found.grpc,
      httpUrl: found.http,
      extProcAddress: found.extProc,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The fleet process (bench/e2e/fleet.ts), ready for its `start` message. */
export function startFleet(): Child {
  return startChild('fleet', [FLEET], {});
}

/** The data-plane process (bench/e2e/dataplane-host.ts), ready for its `open` messages. */
export function startDataPlaneHost(): Child {
  return startChild('data planes', [DATA_PLANES], {});
}
