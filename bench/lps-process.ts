import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

export interface ServeProcess {
  child: ChildProcess;
  grpcAddress: string;
  httpUrl: string;
  /** Reads one metric's value (sum over its series) from /metrics. */
  metric(name: string): Promise<number>;
  stop(): Promise<void>;
}

/** Runs `augur serve` in its own process on free loopback ports, as a user would. */
export async function startServeProcess(env: Record<string, string> = {}): Promise<ServeProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'augur-bench-'));
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
    ],
    {
      env: { ...process.env, AUGUR_LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const { grpcAddress, httpUrl } = await new Promise<{ grpcAddress: string; httpUrl: string }>(
    (resolve, reject) => {
      let buf = '';
      const onData = (chunk: Buffer) => {
        buf += chunk.toString();
        const m = /"grpc":"([^"]+)","http":"([^"]+)"/.exec(buf);
        if (m) {
          child.stdout!.off('data', onData);
          child.stdout!.resume();
          resolve({ grpcAddress: m[1]!, httpUrl: m[2]! });
        }
      };
      child.stdout!.on('data', onData);
      child.once('exit', (code) => reject(new Error(`augur serve exited with ${code}: ${buf}`)));
    },
  );
  child.on('exit', (code, signal) => {
    if (code !== 0) process.stderr.write(`augur serve exited: code ${code} signal ${signal}\n`);
  });
  return {
    child,
    grpcAddress,
    httpUrl,
    metric: async (name) => {
      // One retry: a busy server may close a kept-alive socket as the request reuses it.
      const get = async () => (await fetch(`${httpUrl}/metrics`)).text();
      const text = await get().catch(get);
      let sum = 0;
      for (const line of text.split('\n')) {
        if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) {
          sum += Number(line.slice(line.lastIndexOf(' ') + 1));
        }
      }
      return sum;
    },
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
