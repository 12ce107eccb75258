/**
 * The options of `npm run bench:e2e`, their defaults (here and nowhere else), and the command
 * line that sets them. A bad value stops the run with a message that names the option.
 */
import { parseArgs } from 'node:util';
import type { Trace } from '../../src/sim/traces.js';
import { ARMS, type ArmName } from './arms.js';
import { cpuTraces, defaultArrivalTrace, readTraceFile, type TraceSet } from './traces.js';
import type { WorkDistribution, WorkloadShape } from './workload.js';

/** The world's shape (see WorkloadShape); the step and the arrival trace are set per run. */
type WorldOptions = Pick<
  WorkloadShape,
  'backends' | 'workers' | 'serviceTime' | 'utilisation' | 'peakUtilisation' | 'maxBackground'
>;

export interface E2eOptions extends WorldOptions {
  /** Each request's work: exponential about `serviceTime`, or `serviceTime` itself. */
  work: WorkDistribution;
  /** The configurations to run, each a trace step and the agents' interval, seconds. */
  configs: Array<{ stepSeconds: number; reportInterval: number }>;
  reps: number;
  /** Measured seconds per arm run; undefined: max(30 s, 12 steps). */
  measureSeconds: number | undefined;
  /** Warm-up seconds per arm run (not measured); undefined: max(15 s, 4 steps). */
  warmupSeconds: number | undefined;
  arms: ArmName[];
  /** Arrivals follow the request-count trace, or are constant. */
  load: 'trace' | 'constant';
  traceSet: TraceSet;
  cpuTraces: Trace[];
  arrivalTrace: Trace;
  /** First trace step of the first repetition; each repetition takes the next stretch. */
  startStep: number;
  /** Clients (channels or data planes) per arm, each sending its share of the arrivals. */
  clients: number;
  deadlineSeconds: number;
  /** Seconds of round-robin traffic before the first repetition, so augur has a history. */
  primeSeconds: number;
  seed: number;
  /**
   * A run whose load generator sent its requests later than this at p99 (or whose backends'
   * timers fired this late) fell behind and is left out, ms. Default: half the mean work.
   */
  lateLimitMs: number;
  json: boolean;
  write: boolean;
}

/** One configuration of a run. */
export interface E2eConfig {
  stepSeconds: number;
  reportInterval: number;
  warmupSeconds: number;
  measureSeconds: number;
}

export function configsOf(options: E2eOptions): E2eConfig[] {
  return options.configs.map(({ stepSeconds, reportInterval }) => ({
    stepSeconds,
    reportInterval,
    warmupSeconds: options.warmupSeconds ?? Math.max(15, 4 * stepSeconds),
    measureSeconds: options.measureSeconds ?? Math.max(30, 12 * stepSeconds),
  }));
}

/** Clients per arm unless --clients says otherwise. */
export const DEFAULT_CLIENTS = 2;

export const USAGE = `npm run bench:e2e -- [options]

  --configs STEP[/AGENT],...
                           configurations to run: seconds per trace step, and the agents'
                           interval (default: the step); default 1,5,5/1 (the last: augur's
                           default 1 s interval with 5 s steps)
  --reps N                 repetitions; each runs every arm, in a rotating order (default 3)
  --seconds S              measured seconds per arm run (default max(30, 12 steps))
  --warmup S               unmeasured seconds before (default max(15, 4 steps))
  --arms a,b,...           ${ARMS.join(', ')} (default all)
  --backends N             (default 6)       --workers N     per backend (default 4)
  --service-ms MS          mean work of a request at full speed (default 100)
  --work exponential|fixed each request's work: exponential about the mean, or the mean itself
                           (default exponential; fixed writes a section of its own)
  --utilisation U          mean fleet utilisation of the load (default 0.7)
  --load trace|constant    arrivals follow NAB's ELB request count, or are constant (default trace)
  --traces nab|bitbrains   background CPU traces (default nab; bitbrains from ../shared)
  --cpu-trace FILE         a CPU trace per backend instead (repeatable; .csv or .csv.gz)
  --cpu-column NAME        the column of --cpu-trace files (default: the last)
  --start STEP             first trace step (default 0)
  --clients N              clients per arm (default ${DEFAULT_CLIENTS}); another count writes a section
                           of its own
  --deadline S             per-request deadline; failures count at it (default 10)
  --prime S                round-robin traffic before the first repetition (default 60)
  --seed N                 (default 1)
  --late-limit-ms MS       a run whose sends or backend timers are later than this at p99 is
                           invalid (default: half the mean work)
  --json                   print the figures as JSON instead of the report
  --no-write               do not write BENCHMARKS.md`;

export function parseOptions(argv: readonly string[]): E2eOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      configs: { type: 'string', default: '1,5,5/1' },
      reps: { type: 'string', default: '3' },
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      arms: { type: 'string', default: ARMS.join(',') },
      backends: { type: 'string', default: '6' },
      workers: { type: 'string', default: '4' },
      'service-ms': { type: 'string', default: '100' },
      work: { type: 'string', default: 'exponential' },
      utilisation: { type: 'string', default: '0.7' },
      load: { type: 'string', default: 'trace' },
      traces: { type: 'string', default: 'nab' },
      'cpu-trace': { type: 'string', multiple: true },
      'cpu-column': { type: 'string' },
      start: { type: 'string', default: '0' },
      clients: { type: 'string', default: String(DEFAULT_CLIENTS) },
      deadline: { type: 'string', default: '10' },
      prime: { type: 'string', default: '60' },
      seed: { type: 'string', default: '1' },
      'late-limit-ms': { type: 'string' },
      json: { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) throw new UsageRequested();
  const num = (name: string, raw: string, min: number, max: number, integer = false): number => {
    const n = Number(raw);
    if (
      raw.trim() === '' ||
      !Number.isFinite(n) ||
      n < min ||
      n > max ||
      (integer && !Number.isInteger(n))
    ) {
      throw new Error(
        `--${name} must be ${integer ? 'a whole number' : 'a number'} in [${min}, ${max}], got "${raw}"`,
      );
    }
    return n;
  };
  const optional = (name: string, raw: string | undefined, min: number, max: number) =>
    raw === undefined ? undefined : num(name, raw, min, max);
  const arms = values.arms.split(',').map((a) => a.trim());
  for (const a of arms) {
    if (!(ARMS as readonly string[]).includes(a)) {
      throw new Error(`--arms: unknown arm "${a}" (arms: ${ARMS.join(', ')})`);
    }
  }
  if (new Set(arms).size !== arms.length) throw new Error('--arms names an arm twice');
  if (values.load !== 'trace' && values.load !== 'constant') {
    throw new Error(`--load must be trace or constant, got "${values.load}"`);
  }
  if (values.work !== 'exponential' && values.work !== 'fixed') {
    throw new Error(`--work must be exponential or fixed, got "${values.work}"`);
  }
  if (values.traces !== 'nab' && values.traces !== 'bitbrains') {
    throw new Error(`--traces must be nab or bitbrains, got "${values.traces}"`);
  }
  const backends = num('backends', values.backends, 2, 64, true);
  const serviceTime = num('service-ms', values['service-ms'], 1, 10_000) / 1000;
  const given = values['cpu-trace'] ?? [];
  return {
    configs: values.configs.split(',').map((c) => {
      const [step, agent, ...rest] = c.split('/');
      if (rest.length > 0) throw new Error(`--configs: "${c}" is not STEP or STEP/AGENT`);
      const stepSeconds = num('configs', step!, 0.1, 60);
      return {
        stepSeconds,
        reportInterval: agent === undefined ? stepSeconds : num('configs', agent, 0.1, 300),
      };
    }),
    reps: num('reps', values.reps, 1, 50, true),
    measureSeconds: optional('seconds', values.seconds, 1, 3600),
    warmupSeconds: optional('warmup', values.warmup, 0, 3600),
    arms: arms as ArmName[],
    backends,
    workers: num('workers', values.workers, 1, 64, true),
    serviceTime,
    work: values.work,
    utilisation: num('utilisation', values.utilisation, 0.01, 2),
    peakUtilisation: 0.95,
    maxBackground: 0.95,
    load: values.load,
    traceSet: values.traces,
    cpuTraces:
      given.length > 0
        ? given.map((f) => readTraceFile(f, values['cpu-column']))
        : cpuTraces(values.traces, backends),
    arrivalTrace: defaultArrivalTrace(),
    startStep: num('start', values.start, 0, 1e9, true),
    clients: num('clients', values.clients, 1, 16, true),
    deadlineSeconds: num('deadline', values.deadline, 0.1, 600),
    primeSeconds: num('prime', values.prime, 0, 3600),
    seed: num('seed', values.seed, 0, 2 ** 31, true),
    lateLimitMs:
      optional('late-limit-ms', values['late-limit-ms'], 0.1, 60_000) ?? (serviceTime * 1000) / 2,
    json: values.json,
    write: !values['no-write'],
  };
}

/** `--help`: the caller prints USAGE and exits 0. */
export class UsageRequested extends Error {
  constructor() {
    super('usage requested');
  }
}
