import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AugurError } from '../common/errors.js';

/** A named series of numbers read from a CSV, one value per row. */
export interface Trace {
  name: string;
  values: Float64Array;
}

/**
 * Background CPU traces used for the endpoints, in order, when none is given:
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

/**
 * The NAB trace folder vendored in the repository (`<repo>/data/traces/nab`, MIT, see its
 * SOURCE.md), found by walking up from this file to the folder holding package.json (works
 * from src/ and dist/).
 */
export function defaultTraceDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json'))) return resolve(dir, 'data', 'traces', 'nab');
    dir = dirname(dir);
  }
  return resolve(process.cwd(), 'data', 'traces', 'nab');
}

/**
 * Reads one numeric column of a CSV: a header row is optional, the separator is
 * `,` or `;`, and the column is `column` (by header name) or the last one.
 * Rows whose value does not parse are skipped; a file with no values at all is
 * an error that names the file.
 */
export function readTrace(path: string, column?: string): Trace {
  if (!existsSync(path)) {
    throw new AugurError('SIM_TRACE_NOT_FOUND', `trace file ${path} does not exist`);
  }
  const lines = readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new AugurError('SIM_TRACE_EMPTY', `trace file ${path} is empty`);
  const sep = lines[0]!.includes(';') && !lines[0]!.includes(',') ? ';' : ',';
  const first = lines[0]!.split(sep).map((c) => c.trim());
  const hasHeader = first.some((c) => c !== '' && Number.isNaN(Number(c)));
  let col = first.length - 1;
  if (column !== undefined) {
    col = hasHeader ? first.indexOf(column) : -1;
    if (col < 0) {
      throw new AugurError(
        'SIM_TRACE_COLUMN',
        `trace file ${path} has no column "${column}" (columns: ${hasHeader ? first.join(', ') : 'no header'})`,
      );
    }
  }
  const values: number[] = [];
  for (const line of lines.slice(hasHeader ? 1 : 0)) {
    const v = Number(line.split(sep)[col]);
    if (Number.isFinite(v)) values.push(v);
  }
  if (values.length === 0) {
    throw new AugurError(
      'SIM_TRACE_EMPTY',
      `trace file ${path} has no numeric values in column ${col + 1}`,
    );
  }
  return { name: basename(path), values: Float64Array.from(values) };
}

/**
 * A CPU trace as a background-load fraction: percent (max > 1) becomes a
 * fraction; anything above 100 is scaled by its maximum instead.
 */
export function toBackgroundFraction(trace: Trace): Float64Array {
  let max = 0;
  for (const v of trace.values) max = Math.max(max, v);
  const scale = max <= 1 ? 1 : max <= 100 ? 100 : max;
  return trace.values.map((v) => Math.min(1, Math.max(0, v / scale)));
}
