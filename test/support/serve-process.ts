import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './control-plane.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');

export type LogLine = Record<string, unknown> & { msg?: string; time?: number };

export interface ServeStartOptions {
  /** How long `augur serve` may take to say where it listens. Default 60 s. */
  timeoutMs?: number;
  /** The data dir to use and keep (a restart on it, a full disk); default a new one, removed by `stop`. */
  dataDir?: string;
  /** A command `augur serve`'s own command line is appended to (`sh -c '…; "$@"'`, `unshare …`). */
  wrap?: string[];
  /** What else the listening line must say (for example that the ext_proc fast path listens). */
  ready?: (line: LogLine) => boolean;
}

/**
 * `augur serve` as a real child process on loopback ports chosen at run time, its log lines kept
 * (JSON lines parsed; any other line as `{ msg }`).
 */
export class ServeProcess {
  readonly lines: LogLine[] = [];
  readonly exited: Promise<number | null>;
  grpcAddress = '';
  httpUrl = '';

  private constructor(
    readonly child: ChildProcess,
    private readonly ownDataDir: string | undefined,
  ) {
    let rest = '';
    const keep = (line: string): void => {
      try {
        this.lines.push(JSON.parse(line) as LogLine);
      } catch {
        this.lines.push({ msg: line });
      }
    };
    const read = (d: Buffer): void => {
      rest += d.toString();
      const parts = rest.split('\n');
      rest = parts.pop()!;
      for (const line of parts) keep(line);
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    this.exited = new Promise((resolve) =>
      child.once('close', (code) => {
        if (rest) keep(rest);
        resolve(code);
      }),
    );
  }

  /** Starts `augur serve` with `args` and `env` (AUGUR_* keys); settles once it listens. */
  static async start(
    args: string[],
    env: Record<string, string>,
    options: ServeStartOptions = {},
  ): Promise<ServeProcess> {
    const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'augur-serve-'));
    const command = [
      ...(options.wrap ?? []),
      process.execPath,
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
    ];
    const child = spawn(command[0]!, command.slice(1), {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const serve = new ServeProcess(child, options.dataDir === undefined ? dataDir : undefined);
    const ready = await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`augur serve exited:\n${serve.log()}`);
        return serve.lines.find(
          (l) =>
            typeof l.grpc === 'string' &&
            typeof l.http === 'string' &&
            (options.ready?.(l) ?? true),
        );
      },
      options.timeoutMs ?? 60_000,
      'augur serve to listen',
    ).catch(async (err: unknown) => {
      await serve.stop('SIGKILL');
      throw err;
    });
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

  /** One metric's value from /metrics, summed over its series (0 when it has none). */
  async metric(name: string): Promise<number> {
    // One retry: a busy server may close a kept-alive socket as the request reuses it.
    const get = async (): Promise<string> => (await fetch(`${this.httpUrl}/metrics`)).text();
    const text = await get().catch(get);
    let sum = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{'))
        sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return sum;
  }

  /** Sends `signal` and waits for the exit; a data dir it made is removed. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.alive) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    const code = await this.exited;
    clearTimeout(timer);
    if (this.ownDataDir) rmSync(this.ownDataDir, { recursive: true, force: true });
    return code;
  }
}
