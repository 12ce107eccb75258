import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../support/control-plane.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/stop-on-signals.ts', import.meta.url));

interface Child {
  proc: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

const started: ChildProcess[] = [];
afterEach(() => {
  for (const p of started.splice(0)) if (p.exitCode === null) p.kill('SIGKILL');
});

async function startFixture(env: Record<string, string>): Promise<Child> {
  // Straight under node (no wrapper that relays signals of its own).
  const proc = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(proc);
  let text = '';
  proc.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  await waitFor(() => text.includes('ready'), 60_000, 'the fixture to start');
  return { proc, out: () => text, exited };
}

describe('stopOnSignals', () => {
  it('takes a Ctrl-C passed on again by a wrapper as the same one and stops cleanly', async () => {
    const child = await startFixture({ STOP_MS: '1500' });
    child.proc.kill('SIGINT');
    // npm and tsx forward the terminal's signal to a child that already has it.
    await new Promise((r) => setTimeout(r, 50));
    child.proc.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 200));
    child.proc.kill('SIGTERM');
    expect(await child.exited).toBe(0);
    expect(child.out()).toContain('stop finished');
    expect(child.out()).not.toContain('exiting at once');
  });

  it('exits at once on a signal that comes after the grace, without waiting for the stop', async () => {
    const child = await startFixture({ STOP_MS: '60000', GRACE_MS: '300' });
    child.proc.kill('SIGINT');
    await waitFor(() => child.out().includes('shutting down'), 30_000, 'the first signal');
    await new Promise((r) => setTimeout(r, 500));
    child.proc.kill('SIGINT');
    expect(await child.exited).toBe(1);
    expect(child.out()).toContain('exiting at once');
    expect(child.out()).not.toContain('stop finished');
  });
});
