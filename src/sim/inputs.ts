import { AugurError } from '../common/errors.js';
import { AGENT_SIGNALS, type AgentSignals } from './augur-scorer.js';
import { BENCH_DEFAULTS, type BenchOptions } from './bench.js';
import { POLICIES } from './policies/catalog.js';
import { loadDefaultTraces } from './scenarios.js';
import { SCENARIOS, type ScenarioSpec } from './spec.js';
import { loadTraceSet, readTrace, TRACE_SETS, type Trace } from './traces.js';

/** The flags of `augur bench routing` (and `npm run bench:routing`), as commander gives them. */
export interface RoutingBenchFlags {
  seeds?: string;
  scenario?: string[];
  trace?: string[];
  column?: string;
  arrivals?: string;
  interval?: string;
  seconds?: string;
  start?: string;
  steps?: string;
  policy?: string[];
  signals?: string;
  json?: boolean;
}

/** What a run needs, resolved from the flags, and what it had to leave out. */
export interface RoutingBenchInputs {
  options: Omit<BenchOptions, 'policies' | 'onRun'> & { policies: string[] };
  /** Trace sets (and so scenarios) left out, with why: printed, and the run goes on. */
  skipped: string[];
  /** Where each trace set was read from, for the report. */
  sources: Record<string, string>;
}

function number(
  v: string | undefined,
  flag: string,
  check: (n: number) => boolean,
  what: string,
): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || !check(n))
    throw new AugurError('BENCH_BAD_OPTION', `${flag} must be ${what}, got "${v}"`);
  return n;
}

/**
 * Resolves the flags: which scenarios (all by default; only `custom` when
 * `--trace` is given without `--scenario`), which seeds, which part of the
 * traces, which policies and agent signals; and loads the trace sets they
 * need. A trace set whose folder is absent (../shared is not in a clone) drops
 * its scenarios with a message; a bad flag is an error that names it.
 */
export function resolveRoutingBench(flags: RoutingBenchFlags): RoutingBenchInputs {
  const int = (n: number) => Number.isInteger(n);
  const seedCount =
    number(flags.seeds, '--seeds', (n) => int(n) && n >= 1 && n <= 1000, 'a whole number >= 1') ??
    BENCH_DEFAULTS.seeds.length;
  const interval =
    number(flags.interval, '--interval', (n) => n > 0, 'a positive number of seconds') ??
    BENCH_DEFAULTS.interval;
  const simulatedSeconds =
    number(flags.seconds, '--seconds', (n) => n > 0, 'a positive number of seconds') ??
    BENCH_DEFAULTS.simulatedSeconds;
  const start = number(flags.start, '--start', (n) => int(n) && n >= 0, 'a trace row >= 0');
  const steps = number(flags.steps, '--steps', (n) => int(n) && n >= 10, 'a whole number >= 10');
  let signals: AgentSignals | undefined;
  if (flags.signals !== undefined) {
    if (!(AGENT_SIGNALS as readonly string[]).includes(flags.signals))
      throw new AugurError(
        'BENCH_BAD_OPTION',
        `--signals must be one of ${AGENT_SIGNALS.join(', ')}, got "${flags.signals}"`,
      );
    signals = flags.signals as AgentSignals;
  }
  if (flags.column !== undefined && !flags.trace)
    throw new AugurError('BENCH_BAD_OPTION', '--column applies to --trace files: give --trace too');

  const traceSets: Record<string, Trace[]> = {};
  const sources: Record<string, string> = {};
  const skipped: string[] = [];
  const custom: ScenarioSpec[] = [];
  if (flags.trace) {
    traceSets.custom = flags.trace.map((f) => readTrace(f, flags.column));
    sources.custom = flags.trace.join(', ');
    custom.push({
      name: 'custom',
      kind: 'traces',
      traces: 'custom',
      tuning: false,
      what: `your traces: ${flags.trace.join(', ')}${flags.column ? ` (column ${flags.column})` : ''}`,
    });
  }
  const known = [...custom, ...SCENARIOS];
  let scenarios: ScenarioSpec[];
  if (flags.scenario) {
    const unknown = flags.scenario.filter((n) => !known.some((s) => s.name === n));
    if (unknown.length)
      throw new AugurError(
        'BENCH_SCENARIO',
        `unknown scenario ${unknown.map((n) => `"${n}"`).join(', ')}; known: ${known.map((s) => s.name).join(', ')}`,
      );
    scenarios = known.filter((s) => flags.scenario!.includes(s.name));
  } else {
    scenarios = custom.length ? custom : [...SCENARIOS];
  }

  const nab = loadDefaultTraces();
  for (const name of new Set(scenarios.map((s) => s.traces))) {
    if (traceSets[name]) continue;
    const set = TRACE_SETS.find((t) => t.name === name);
    if (!set) throw new Error(`scenario trace set "${name}" is not defined`);
    const loaded = loadTraceSet(set);
    if ('missing' in loaded) {
      skipped.push(
        `${loaded.missing}: scenarios ${scenarios
          .filter((s) => s.traces === name)
          .map((s) => s.name)
          .join(', ')} left out`,
      );
      continue;
    }
    traceSets[name] = loaded.traces;
    sources[name] = loaded.dir;
  }
  scenarios = scenarios.filter((s) => traceSets[s.traces]);
  if (scenarios.length === 0)
    throw new AugurError('BENCH_NOTHING_TO_RUN', `no scenario can run: ${skipped.join('; ')}`);

  const arrivalTrace = flags.arrivals ? readTrace(flags.arrivals) : nab.arrivalTrace;
  const names = POLICIES.map((p) => p.name);
  if (flags.policy) {
    const unknown = flags.policy.filter((p) => !names.includes(p));
    if (unknown.length)
      throw new AugurError(
        'BENCH_POLICY',
        `unknown policy ${unknown.map((n) => `"${n}"`).join(', ')}; known: ${names.join(', ')}`,
      );
  }
  return {
    options: {
      traceSets,
      arrivalTrace,
      interval,
      seeds: Array.from({ length: seedCount }, (_, i) => i + 1),
      simulatedSeconds,
      ...(steps !== undefined ? { steps } : {}),
      ...(start !== undefined ? { start } : {}),
      scenarios,
      policies: flags.policy ? names.filter((n) => flags.policy!.includes(n)) : names,
      ...(signals ? { policyOptions: { signals } } : {}),
      sloFactor: BENCH_DEFAULTS.sloFactor,
    },
    skipped,
    sources,
  };
}
