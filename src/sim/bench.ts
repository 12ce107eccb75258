import { figures, type MetricsOptions, type PolicyFigures } from './metrics.js';
import {
  POLICIES,
  type DataPlane,
  type PolicyEntry,
  type PolicyGroup,
  type PolicyOptions,
} from './policies/catalog.js';
import { buildScenario, SCENARIO_DEFAULTS, type ScenarioOptions } from './scenarios.js';
import { simulate } from './simulator.js';
import { RUN_DEFAULTS, SCENARIOS, type ScenarioSpec } from './spec.js';
import type { Trace } from './traces.js';

export { SCENARIOS, type ScenarioSpec };

export interface BenchOptions {
  /** Background CPU traces by trace-set name (`nab`, `bitbrains`, ..., `custom`). */
  traceSets: Readonly<Record<string, Trace[]>>;
  arrivalTrace: Trace;
  /** Interval of every scenario that does not set its own, seconds. */
  interval: number;
  seeds: readonly number[];
  /** Simulated seconds measured per run (at least the scenario's minimum of intervals). */
  simulatedSeconds: number;
  /** Intervals measured per run; overrides `simulatedSeconds`. */
  steps?: number;
  /**
   * First trace row of every run; undefined: each seed its own window, seed s
   * starting at (s − 1) × (warm-up + measured intervals), so that five seeds
   * cover different parts of the traces (cycled where a trace is shorter).
   */
  start?: number;
  scenarios: readonly ScenarioSpec[];
  policies: readonly PolicyEntry[];
  policyOptions?: PolicyOptions;
  /** SLO as a multiple of the unloaded service time. */
  sloFactor: number;
  /** Called after each policy's run (progress). */
  onRun?: (scenario: string, seed: number, figures: PolicyFigures, seconds: number) => void;
}

export const BENCH_DEFAULTS = {
  interval: RUN_DEFAULTS.interval,
  seeds: Array.from({ length: RUN_DEFAULTS.seeds }, (_, i) => i + 1),
  simulatedSeconds: RUN_DEFAULTS.simulatedSeconds,
  scenarios: SCENARIOS,
  policies: POLICIES,
  sloFactor: 4,
};

/** One scenario at one seed: every policy over the same world. */
export interface RunResult {
  scenario: string;
  seed: number;
  interval: number;
  /** First trace row used, and how many rows (warm-up included). */
  start: number;
  rows: number;
  figures: PolicyFigures[];
}

/** The scenario's options for one seed. */
export function scenarioOptions(
  spec: ScenarioSpec,
  seed: number,
  opts: Pick<
    BenchOptions,
    'traceSets' | 'arrivalTrace' | 'interval' | 'simulatedSeconds' | 'steps' | 'start'
  >,
): ScenarioOptions {
  const interval = spec.interval ?? opts.interval;
  const cpuTraces = opts.traceSets[spec.traces];
  if (!cpuTraces) throw new Error(`no traces loaded for trace set "${spec.traces}"`);
  const simulatedSeconds = opts.steps !== undefined ? opts.steps * interval : opts.simulatedSeconds;
  const minSteps = opts.steps !== undefined ? opts.steps : SCENARIO_DEFAULTS.minSteps;
  const measured = Math.max(minSteps, Math.round(simulatedSeconds / interval));
  const rows = measured + SCENARIO_DEFAULTS.warmupSteps;
  return {
    ...SCENARIO_DEFAULTS,
    kind: spec.kind,
    interval,
    seed,
    simulatedSeconds,
    minSteps,
    startStep: opts.start ?? (seed - 1) * rows,
    cpuTraces,
    arrivalTrace: opts.arrivalTrace,
  };
}

/** Runs every policy of one scenario at one seed; deterministic for the seed. */
export async function runOne(
  spec: ScenarioSpec,
  seed: number,
  opts: Omit<BenchOptions, 'scenarios' | 'seeds'>,
): Promise<RunResult> {
  const scenarioOpts = scenarioOptions(spec, seed, opts);
  const scenario = buildScenario(scenarioOpts);
  const metrics: MetricsOptions = {
    slo: opts.sloFactor * scenarioOpts.serviceTime,
    cutRatio: 0.2,
    overloadThreshold: 0.9,
    window: 2,
  };
  const out: PolicyFigures[] = [];
  for (const entry of opts.policies) {
    const t0 = performance.now();
    const trace = await simulate(
      scenario.setup,
      entry.make(scenario.setup.speed, opts.policyOptions),
    );
    const f = figures(entry.name, trace, scenario.setup, metrics);
    out.push(f);
    opts.onRun?.(spec.name, seed, f, (performance.now() - t0) / 1000);
  }
  return {
    scenario: spec.name,
    seed,
    interval: scenarioOpts.interval,
    start: scenarioOpts.startStep,
    rows: scenario.setup.rate.length,
    figures: out,
  };
}

/** Runs every scenario at every seed, in this thread. */
export async function runRoutingBench(opts: BenchOptions): Promise<RunResult[]> {
  const runs: RunResult[] = [];
  for (const spec of opts.scenarios)
    for (const seed of opts.seeds) runs.push(await runOne(spec, seed, opts));
  return runs;
}

/** The median of a sample and its range. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  /** Values that were finite (a figure can be undefined in a run: no cut, no onset). */
  n: number;
}

export function spread(values: readonly number[]): Spread {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length };
}

/** One policy's figures over the seeds of a scenario. */
export interface PolicySummary {
  policy: string;
  group: PolicyGroup | '';
  dataPlane?: DataPlane;
  p50: Spread;
  p99: Spread;
  p999: Spread;
  dropped: Spread;
  overSlo: Spread;
  churn: Spread;
  leadTime: Spread;
  caught: Spread;
  falseRate: Spread;
  cuts: Spread;
  /** Capacity estimate / true capacity of the interval it is used in (median per run). */
  biasRatio: Spread;
  /** Share of capacity estimates within ±25 % of the truth. */
  within25: Spread;
}

/**
 * A target of issue 11 checked on one scenario: the ratio of a policy's figure to
 * a peer's, seed by seed (the same world), summarised over seeds; or a bound on
 * a figure of its own (`versus` undefined).
 */
export interface TargetCheck {
  policy: string;
  versus?: string;
  figure: 'p99' | 'churn' | 'cuts';
  /** The median over seeds must be at most this (a ratio when `versus` is set). */
  limit: number;
  value: Spread;
  met: boolean;
}

export interface ScenarioSummary {
  scenario: string;
  interval: number;
  tuning: boolean;
  seeds: number[];
  /** Per seed, the trace rows used (warm-up included). */
  windows: Array<{ seed: number; start: number; rows: number }>;
  slo: number;
  policies: PolicySummary[];
  targets: TargetCheck[];
  /** Ratios reported for reading, with no target (REFERENCES). */
  references: ReferenceRatio[];
}

/** A p99 ratio reported beside the targets to explain them: seed by seed, summarised. */
export interface ReferenceRatio {
  policy: string;
  versus: string;
  value: Spread;
}

/**
 * The ratios that say how far the shipped per-request pickers are from the same rule with
 * perfect information (`omniscient-sed`), and how far that rule is from the shipped gRPC policy
 * (what bench:e2e's augur-rrm / augur-xds target asks of the RRM).
 */
const REFERENCES: ReadonlyArray<{ policy: string; versus: string }> = [
  { policy: 'augur-envoy-rrm', versus: 'omniscient-sed' },
  { policy: 'augur-envoy-rrm', versus: 'augur-grpc' },
  { policy: 'omniscient-sed', versus: 'augur-grpc' },
];

/** The targets of issue 11 (those whose policies ran). */
const TARGETS: ReadonlyArray<{
  policy: string;
  versus?: string;
  figure: TargetCheck['figure'];
  limit: number;
  scenarios?: readonly string[];
}> = [
  { policy: 'augur-envoy-eds', versus: 'p2c', figure: 'p99', limit: 0.85 },
  { policy: 'augur-grpc', versus: 'a58-wrr', figure: 'p99', limit: 0.6 },
  { policy: 'augur-envoy-rrm', versus: 'prequal', figure: 'p99', limit: 1 },
  { policy: 'augur-envoy-rrm', versus: 'p2c', figure: 'p99', limit: 0.8 },
  ...['augur-envoy-eds', 'augur-grpc', 'augur-envoy-rrm'].flatMap((policy) => [
    { policy, versus: 'a58-wrr', figure: 'churn' as const, limit: 1, scenarios: ['constant'] },
    { policy, figure: 'cuts' as const, limit: 0, scenarios: ['constant'] },
  ]),
];

/** Medians and ranges over seeds, per scenario and policy, and the targets. */
export function summarise(
  runs: readonly RunResult[],
  scenarios: readonly ScenarioSpec[] = SCENARIOS,
  policies: readonly PolicyEntry[] = POLICIES,
  sloFactor = BENCH_DEFAULTS.sloFactor,
): ScenarioSummary[] {
  const names = [...new Set(runs.map((r) => r.scenario))];
  return names.map((name) => {
    const mine = runs.filter((r) => r.scenario === name).sort((a, b) => a.seed - b.seed);
    const spec = scenarios.find((s) => s.name === name);
    const policyNames = mine[0]!.figures.map((f) => f.policy);
    const of = (policy: string) =>
      mine.map((r) => r.figures.find((f) => f.policy === policy)).filter((f) => f !== undefined);
    const summaries: PolicySummary[] = policyNames.map((policy) => {
      const fs = of(policy);
      const entry = policies.find((p) => p.name === policy);
      const pick = (g: (f: PolicyFigures) => number) => spread(fs.map(g));
      return {
        policy,
        group: entry?.group ?? '',
        ...(entry?.dataPlane ? { dataPlane: entry.dataPlane } : {}),
        p50: pick((f) => f.p50),
        p99: pick((f) => f.p99),
        p999: pick((f) => f.p999),
        dropped: pick((f) => f.dropped),
        overSlo: pick((f) => f.overSlo),
        churn: pick((f) => f.churn),
        leadTime: pick((f) => f.swaps?.leadTime ?? NaN),
        caught: pick((f) => f.swaps?.caught ?? NaN),
        falseRate: pick((f) => f.swaps?.falseRate ?? NaN),
        cuts: pick((f) => f.swaps?.cuts ?? NaN),
        biasRatio: pick((f) => f.bias?.medianRatio ?? NaN),
        within25: pick((f) => f.bias?.within25 ?? NaN),
      };
    });
    const targets: TargetCheck[] = [];
    for (const t of TARGETS) {
      if (t.scenarios && !t.scenarios.includes(name)) continue;
      if (!policyNames.includes(t.policy)) continue;
      if (t.versus && !policyNames.includes(t.versus)) continue;
      const figure = (f: PolicyFigures | undefined): number =>
        f === undefined ? NaN : t.figure === 'cuts' ? (f.swaps?.cuts ?? NaN) : f[t.figure];
      const values = mine.map((r) => {
        const mine_ = figure(r.figures.find((f) => f.policy === t.policy));
        if (!t.versus) return mine_;
        return mine_ / figure(r.figures.find((f) => f.policy === t.versus));
      });
      const value = spread(values);
      targets.push({ ...t, value, met: value.median <= t.limit });
    }
    const p99Of = (r: RunResult, policy: string): number =>
      r.figures.find((f) => f.policy === policy)?.p99 ?? NaN;
    const references: ReferenceRatio[] = REFERENCES.filter(
      (x) => policyNames.includes(x.policy) && policyNames.includes(x.versus),
    ).map((x) => ({
      ...x,
      value: spread(mine.map((r) => p99Of(r, x.policy) / p99Of(r, x.versus))),
    }));
    return {
      scenario: name,
      interval: mine[0]!.interval,
      tuning: spec?.tuning ?? false,
      seeds: mine.map((r) => r.seed),
      windows: mine.map((r) => ({ seed: r.seed, start: r.start, rows: r.rows })),
      slo: sloFactor * SCENARIO_DEFAULTS.serviceTime,
      policies: summaries,
      targets,
      references,
    };
  });
}
