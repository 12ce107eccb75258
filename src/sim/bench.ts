import { figures, type MetricsOptions, type PolicyFigures } from './metrics.js';
import { POLICIES, type PolicyEntry, type PolicyGroup } from './policies/catalog.js';
import { buildScenario, SCENARIO_DEFAULTS, type ScenarioOptions } from './scenarios.js';
import { simulate } from './simulator.js';
import type { Trace } from './traces.js';
import { RUN_DEFAULTS, SCENARIOS, type ScenarioSpec } from './spec.js';

export { SCENARIOS, type ScenarioSpec };

export interface BenchOptions {
  cpuTraces: Trace[];
  arrivalTrace: Trace;
  /** Interval of every scenario that does not set its own, seconds. */
  interval: number;
  seed: number;
  simulatedSeconds: number;
  scenarios: readonly ScenarioSpec[];
  policies: readonly PolicyEntry[];
  /** SLO as a multiple of the unloaded service time. */
  sloFactor: number;
  /** Called after each run (progress). */
  onRun?: (scenario: string, figures: PolicyFigures, seconds: number) => void;
}

export const BENCH_DEFAULTS = {
  interval: RUN_DEFAULTS.interval,
  seed: RUN_DEFAULTS.seed,
  simulatedSeconds: RUN_DEFAULTS.simulatedSeconds,
  scenarios: SCENARIOS,
  policies: POLICIES,
  sloFactor: 4,
};

export interface ScenarioResult {
  scenario: string;
  interval: number;
  slo: number;
  figures: PolicyFigures[];
  groups: Record<string, PolicyGroup>;
  gap: GapSummary;
}

/** How much of the gap between reactive and oracle routing a policy closes, on p99. */
export interface GapSummary {
  perfectReactiveP99: number;
  oracleP99: number;
  /** The best reactive policy a user can run today (not the perfect-reactive bound). */
  bestReactive: string;
  bestReactiveP99: number;
  /** Per augur policy: fraction of the (perfect reactive → oracle) gap closed, and of the (best reactive → oracle) gap. */
  augur: Array<{
    policy: string;
    p99: number;
    closedFromPerfect: number;
    closedFromBest: number;
    vsBestReactive: number;
  }>;
}

/** Runs every policy in every scenario; deterministic for a seed. */
export async function runRoutingBench(opts: BenchOptions): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = [];
  for (const spec of opts.scenarios) {
    const scenarioOpts: ScenarioOptions = {
      ...SCENARIO_DEFAULTS,
      kind: spec.kind,
      interval: spec.interval ?? opts.interval,
      seed: opts.seed,
      simulatedSeconds: opts.simulatedSeconds,
      cpuTraces: opts.cpuTraces,
      arrivalTrace: opts.arrivalTrace,
    };
    const scenario = buildScenario(scenarioOpts);
    const metrics: MetricsOptions = {
      slo: opts.sloFactor * scenarioOpts.serviceTime,
      cutRatio: 0.2,
      overloadThreshold: 0.9,
      window: 2,
    };
    const out: PolicyFigures[] = [];
    const groups: Record<string, PolicyGroup> = {};
    for (const entry of opts.policies) {
      const t0 = performance.now();
      const trace = await simulate(scenario.setup, entry.make(scenario.setup.speed));
      const f = figures(entry.name, trace, scenario.setup, metrics);
      out.push(f);
      groups[entry.name] = entry.group;
      opts.onRun?.(spec.name, f, (performance.now() - t0) / 1000);
    }
    results.push({
      scenario: spec.name,
      interval: scenarioOpts.interval,
      slo: metrics.slo,
      figures: out,
      groups,
      gap: gapSummary(out, groups),
    });
  }
  return results;
}

function gapSummary(figs: PolicyFigures[], groups: Record<string, PolicyGroup>): GapSummary {
  const p99 = (name: string) => figs.find((f) => f.policy === name)?.p99 ?? NaN;
  const perfect = p99('perfect-reactive');
  const oracle = p99('oracle');
  const reactive = figs
    .filter((f) => groups[f.policy] === 'reactive')
    .sort((a, b) => a.p99 - b.p99);
  const best = reactive[0];
  const bestP99 = best?.p99 ?? NaN;
  return {
    perfectReactiveP99: perfect,
    oracleP99: oracle,
    bestReactive: best?.policy ?? '-',
    bestReactiveP99: bestP99,
    augur: figs
      .filter((f) => groups[f.policy] === 'augur')
      .map((f) => ({
        policy: f.policy,
        p99: f.p99,
        closedFromPerfect: (perfect - f.p99) / (perfect - oracle),
        closedFromBest: (bestP99 - f.p99) / (bestP99 - oracle),
        vsBestReactive: f.p99 / bestP99 - 1,
      })),
  };
}
