import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './control-plane.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');

export type LogLine = Record<string, unknown> & { msg?: string; time?: number };

/** `augur serve` as a real child process, its JSON log lines kept. */
export class ServeProcess {
  readonly lines: LogLine[] = [];
  readonly exited: Promise<number | null>;
  grpcAddress = '';
  httpUrl = '';
  private readonly dataDir: string;

  private constructor(
    readonly child: ChildProcess,
    dataDir: string,
  ) {
    this.dataDir = dataDir;
    let rest = '';
    const read = (d: Buffer): void => {
      rest += d.toString();
      const parts = rest.split('\n');
      rest = parts.pop()!;
      for (const line of parts) {
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          this.lines.push({ msg: line });
        }
      }
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    this.exited = new Promise((resolve) => child.once('close', resolve));
  }

  /** Starts `augur serve` with `args` and `env` (AUGUR_* keys) on loopback ports chosen at run time. */
  static async start(
    args: string[],
    env: Record<string, string>,
    timeoutMs = 60_000,
  ): Promise<ServeProcess> {
    const dataDir = mkdtempSync(join(tmpdir(), 'augur-serve-'));
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        MAIN,
        'serve',
        '--grpc-listen',
        '127.0.0.1:0',
        '--http-listen',
        '127.0.0.1:0',
        '--data-dir',
        dataDir,
        ...args,
      ],
      { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const serve = new ServeProcess(child, dataDir);
    const ready = await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`augur serve exited:\n${serve.log()}`);
        return serve.lines.find((l) => typeof l.grpc === 'string' && typeof l.http === 'string');
      },
      timeoutMs,
      'augur serve to listen',
    );
    serve.grpcAddress = ready.grpc as string;
    serve.httpUrl = ready.http as string;
    return serve;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  log(): string {
    return this.lines.map((l) => JSON.stringify(l)).join('\n');
  }

  /** Sends `signal` and waits for the exit; the data dir is removed. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.alive) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    const code = await this.exited;
    clearTimeout(timer);
    rmSync(this.dataDir, { recursive: true, force: true });
    return code;
  }
}
