/**
 * The traces a run uses: the NAB CPU series vendored in the repository by default, the Bitbrains
 * VMs from `../shared/data/traces` when asked for (their licence is not confirmed: read from
 * there, never copied into the repository), or any CSV a user gives (plain or gzip-compressed).
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  DEFAULT_ARRIVAL_TRACE,
  DEFAULT_CPU_TRACES,
  defaultTraceDir,
  readTrace,
  type Trace,
} from '../../src/sim/traces.js';

export type TraceSet = 'nab' | 'bitbrains';

/** The Bitbrains column that holds CPU usage (percent of the VM's provisioned capacity). */
const BITBRAINS_COLUMN = 'CPU usage [%]';

/** Where the shared development traces are: `../shared/data/traces` beside the repository. */
export function sharedTraceDir(): string {
  return resolve(defaultTraceDir(), '..', '..', '..', '..', 'shared', 'data', 'traces');
}

/** Reads a trace CSV, gunzipping `.gz` files first. */
export function readTraceFile(path: string, column?: string): Trace {
  if (!path.endsWith('.gz')) return readTrace(path, column);
  if (!existsSync(path)) throw new Error(`trace file ${path} does not exist`);
  const dir = mkdtempSync(join(tmpdir(), 'augur-e2e-trace-'));
  try {
    const plain = join(dir, basename(path, '.gz'));
    writeFileSync(plain, gunzipSync(readFileSync(path)));
    return readTrace(plain, column);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `count` CPU traces of a set (cycled by the workload if fewer). */
export function cpuTraces(set: TraceSet, count: number): Trace[] {
  if (set === 'nab') {
    return DEFAULT_CPU_TRACES.slice(0, count).map((f) => readTrace(join(defaultTraceDir(), f)));
  }
  const dir = join(sharedTraceDir(), 'bitbrains');
  if (!existsSync(dir)) {
    throw new Error(
      `the Bitbrains traces are not at ${dir} (they are read from ../shared, never copied into the repository)`,
    );
  }
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.csv.gz') || f.endsWith('.csv'))
    .sort((a, b) => parseInt(a, 10) - parseInt(b, 10) || a.localeCompare(b))
    .slice(0, count);
  return files.map((f) => {
    const trace = readTraceFile(join(dir, f), BITBRAINS_COLUMN);
    return { ...trace, name: `bitbrains/${trace.name}` };
  });
}

/** The request-count trace arrivals follow by default (NAB's ELB request count). */
export function defaultArrivalTrace(): Trace {
  return readTrace(join(defaultTraceDir(), DEFAULT_ARRIVAL_TRACE));
}
