import { summarise, type RunResult, type ScenarioSummary } from './bench.js';
import { resolveRoutingBench, type RoutingBenchFlags, type RoutingBenchInputs } from './inputs.js';
import { runInParallel } from './parallel.js';
import { POLICIES } from './policies/catalog.js';
import { renderTables, renderTargetSummary } from './report.js';

export interface RoutingBenchOutput {
  inputs: RoutingBenchInputs;
  runs: RunResult[];
  summaries: ScenarioSummary[];
  /** What the command prints: the tables, or the JSON with `--json`. */
  text: string;
}

/**
 * Runs the routing benchmark as `augur bench routing` and `npm run bench:routing`
 * do: resolves the flags, says on stderr what it had to leave out, runs every
 * (scenario, seed) in worker threads, and summarises over seeds.
 */
export async function runRoutingBenchFromFlags(
  flags: RoutingBenchFlags,
  opts: { progress: boolean },
): Promise<RoutingBenchOutput> {
  const inputs = resolveRoutingBench(flags);
  for (const s of inputs.skipped) process.stderr.write(`augur bench routing: ${s}\n`);
  const o = inputs.options;
  const runs = await runInParallel(
    o,
    opts.progress
      ? (scenario, seed, policy, p99, secs) =>
          process.stderr.write(
            `${scenario} seed ${seed}: ${policy} p99 ${(p99 * 1000).toFixed(1)} ms (${secs.toFixed(1)} s)\n`,
          )
      : undefined,
  );
  const summaries = summarise(runs, o.scenarios, POLICIES, o.sloFactor);
  const text = flags.json
    ? JSON.stringify(
        {
          seeds: o.seeds,
          signals: o.policyOptions?.signals ?? 'full',
          skipped: inputs.skipped,
          runs: runs.map((r) => ({
            scenario: r.scenario,
            seed: r.seed,
            interval: r.interval,
            traceRows: { start: r.start, count: r.rows },
            policies: r.figures.map((f) => ({
              policy: f.policy,
              p50: f.p50,
              p99: f.p99,
              p999: f.p999,
              drops: f.dropped,
              churn: f.churn,
              cuts: f.swaps?.cuts ?? null,
              leadTime: f.swaps?.leadTime ?? null,
              falseCutRate: f.swaps?.falseRate ?? null,
              capacityEstimateRatio: f.bias?.medianRatio ?? null,
            })),
          })),
          summary: summaries,
        },
        (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v),
        2,
      )
    : [renderTables(summaries, plainTable), renderTargetSummary(summaries, plainTable)].join(
        '\n\n',
      );
  return { inputs, runs, summaries, text };
}

function plainTable(header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i]).length)));
  return cells.map((r) => r.map((c, i) => String(c).padEnd(widths[i]!)).join('  ')).join('\n');
}
