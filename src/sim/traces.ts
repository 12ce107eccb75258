import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readCsvFile, selectColumn } from '../common/csv.js';
import { AugurError } from '../common/errors.js';

/** A named series of numbers read from a CSV, one value per row. */
export interface Trace {
  name: string;
  values: Float64Array;
}

/**
 * Background CPU traces used for the endpoints, in order, for the NAB set:
 * the NAB CPU series, less two (825cc2 sits at 90 % all the time, leaving an
 * endpoint that no policy should use; c6585a is flat like 24ae8d), plus two
 * whose README calls them CPU (request_latency_system_failure, the ASG average).
 */
export const DEFAULT_CPU_TRACES = [
  'ec2_cpu_utilization_5f5533.csv',
  'ec2_cpu_utilization_77c1ca.csv',
  'ec2_cpu_utilization_ac20cd.csv',
  'ec2_cpu_utilization_fe7f93.csv',
  'rds_cpu_utilization_cc0c53.csv',
  'rds_cpu_utilization_e47b3b.csv',
  'ec2_cpu_utilization_24ae8d.csv',
  'ec2_cpu_utilization_53ea38.csv',
  'ec2_request_latency_system_failure.csv',
  'cpu_utilization_asg_misconfiguration.csv',
];

/** The request-count trace the arrival rate follows when none is given. */
export const DEFAULT_ARRIVAL_TRACE = 'elb_request_count_8c0756.csv';

/** The repository's root: the folder holding package.json above this file (from src/ or dist/). */
function repositoryRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
}

/** The NAB trace folder vendored in the repository (`<repo>/data/traces/nab`, MIT, see its SOURCE.md). */
export function defaultTraceDir(): string {
  return resolve(repositoryRoot(), 'data', 'traces', 'nab');
}

/**
 * The development traces whose licences are not confirmed, read where the
 * project's machines keep them (`<repo>/../shared/data/traces`) and never
 * copied into the repository.
 */
export function sharedTraceDir(): string {
  return resolve(repositoryRoot(), '..', 'shared', 'data', 'traces');
}

/**
 * Reads one column of a CSV (`.gz` too) as a trace: by name or 1-based index
 * (src/common/csv.ts), or the only value column. Missing cells take the value
 * before them (the first ones the first value), so the series has one number
 * per row; a column with no number at all is an error that names the file.
 */
export function readTrace(path: string, column?: string): Trace {
  if (!existsSync(path)) {
    throw new AugurError('SIM_TRACE_NOT_FOUND', `trace file ${path} does not exist`);
  }
  const csv = readCsvFile(path);
  const col = selectColumn(csv, column, path);
  const values = Float64Array.from(col.values);
  const first = values.find((v) => Number.isFinite(v));
  if (first === undefined) {
    throw new AugurError('SIM_TRACE_EMPTY', `trace file ${path} has no numbers in "${col.name}"`);
  }
  let last = first;
  for (let i = 0; i < values.length; i++) {
    if (Number.isFinite(values[i])) last = values[i];
    else values[i] = last;
  }
  return { name: `${basename(path)}:${col.name}`, values };
}

/**
 * A CPU trace as a background-load fraction: a trace whose values all lie in
 * [0,1] is taken as fractions; any other as percent, clipped to [0,100] (VMs
 * report above 100 % when they use more than their provisioned share) and
 * divided by 100, never by its maximum (which would turn a mostly idle VM into
 * a saturated one).
 */
export function toBackgroundFraction(trace: Trace): Float64Array {
  let max = 0;
  for (const v of trace.values) max = Math.max(max, v);
  const scale = max <= 1 ? 1 : 100;
  return trace.values.map((v) => Math.min(1, Math.max(0, v / scale)));
}

/** A set of real CPU traces, one file per machine, and the column that holds its CPU. */
export interface TraceSetSpec {
  name: string;
  /** Where: `repo` (vendored, data/traces/) or `shared` (../shared/data/traces/, not redistributed). */
  root: 'repo' | 'shared';
  folder: string;
  /** The CPU column, by name (the Bitbrains CPU is not the last column). */
  column: string;
  /** Files in order; undefined: every `.csv` / `.csv.gz` of the folder, sorted by name. */
  files?: readonly string[];
  what: string;
}

export const TRACE_SETS: readonly TraceSetSpec[] = [
  {
    name: 'nab',
    root: 'repo',
    folder: 'nab',
    column: 'value',
    files: DEFAULT_CPU_TRACES,
    what: 'NAB AWS CloudWatch CPU series (smooth 5-minute averages)',
  },
  {
    name: 'bitbrains',
    root: 'shared',
    folder: 'bitbrains',
    column: 'CPU usage [%]',
    what: 'Bitbrains Rnd VMs, July 2013, `CPU usage [%]`',
  },
  {
    name: 'azure2017',
    root: 'shared',
    folder: 'azure2017',
    column: 'avg_cpu',
    what: 'Azure Public Dataset V1 VMs (2017), `avg_cpu`',
  },
  {
    name: 'google2011',
    root: 'shared',
    folder: 'google2011',
    column: 'cpu',
    what: 'Google cluster trace 2011 pseudo-VMs (24 h each), `cpu`',
  },
];

/** The folder of a trace set (it may not exist: the shared sets are not in the repository). */
export function traceSetDir(set: TraceSetSpec): string {
  return join(
    set.root === 'repo' ? resolve(defaultTraceDir(), '..') : sharedTraceDir(),
    set.folder,
  );
}

/**
 * Reads a trace set's CPU traces; undefined, with the reason, when its folder
 * is absent (a clone without ../shared), so a benchmark can say so and go on.
 */
export function loadTraceSet(
  set: TraceSetSpec,
): { traces: Trace[]; dir: string } | { missing: string } {
  const dir = traceSetDir(set);
  if (!existsSync(dir)) return { missing: `${set.name}: ${dir} not found` };
  const files =
    set.files ??
    readdirSync(dir)
      .filter((f) => f.endsWith('.csv') || f.endsWith('.csv.gz'))
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  if (files.length === 0) return { missing: `${set.name}: no CSV files in ${dir}` };
  return { traces: files.map((f) => readTrace(join(dir, f), set.column)), dir };
}
