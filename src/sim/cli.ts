import type { Command } from 'commander';
import { AugurError } from '../common/errors.js';
import { RUN_DEFAULTS, SCENARIOS } from './spec.js';

/** Registers `augur bench routing`. */
export function registerBenchCommand(program: Command): void {
  const bench =
    program.commands.find((c) => c.name() === 'bench') ??
    program.command('bench').description('benchmarks that run without a deployment');
  bench
    .command('routing')
    .description(
      'routing-quality benchmark: a deterministic simulation of endpoints slowed by real CPU traces, ' +
        'comparing reactive balancers, augur and an oracle',
    )
    .option(
      '--trace <csv...>',
      'background CPU trace(s), one per endpoint, cycled (default: NAB CPU traces)',
    )
    .option(
      '--arrivals <csv>',
      'request-count trace the arrival rate follows (default: NAB ELB count)',
    )
    .option(
      '--interval <seconds>',
      'monitoring interval of the scenarios without their own',
      String(RUN_DEFAULTS.interval),
    )
    .option('--seed <n>', 'random seed', String(RUN_DEFAULTS.seed))
    .option(
      '--seconds <s>',
      'simulated seconds measured per scenario',
      String(RUN_DEFAULTS.simulatedSeconds),
    )
    .option(
      '--scenario <names...>',
      `scenarios to run (${SCENARIOS.map((s) => `"${s.name}"`).join(', ')})`,
    )
    .option('--json', 'print the figures as JSON')
    .action(async (o: Record<string, string | string[] | boolean | undefined>) => {
      // Loaded here: the simulator is large and every `augur` command builds this CLI.
      const [{ BENCH_DEFAULTS }, { runScenariosInParallel }, { renderTables }, scenarios_, traces] =
        await Promise.all([
          import('./bench.js'),
          import('./parallel.js'),
          import('./report.js'),
          import('./scenarios.js'),
          import('./traces.js'),
        ]);
      const { loadDefaultTraces } = scenarios_;
      const { readTrace } = traces;
      const interval = positive(o.interval, '--interval');
      const seed = Math.trunc(positive(o.seed, '--seed', true));
      const simulatedSeconds = positive(o.seconds, '--seconds');
      const defaults = loadDefaultTraces();
      const cpuTraces = Array.isArray(o.trace)
        ? o.trace.map((p) => readTrace(p))
        : defaults.cpuTraces;
      const arrivalTrace =
        typeof o.arrivals === 'string' ? readTrace(o.arrivals) : defaults.arrivalTrace;
      const wanted = Array.isArray(o.scenario) ? o.scenario : undefined;
      const scenarios = wanted ? SCENARIOS.filter((s) => wanted.includes(s.name)) : SCENARIOS;
      if (wanted && scenarios.length !== wanted.length) {
        throw new AugurError(
          'BENCH_SCENARIO',
          `unknown scenario in ${wanted.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`,
        );
      }
      const results = await runScenariosInParallel(
        scenarios,
        { ...BENCH_DEFAULTS, cpuTraces, arrivalTrace, interval, seed, simulatedSeconds },
        o.json
          ? undefined
          : (s, policy, p99, secs) =>
              process.stderr.write(
                `${s}: ${policy} p99 ${(p99 * 1000).toFixed(1)} ms (${secs.toFixed(1)} s)\n`,
              ),
      );
      if (o.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
      else process.stdout.write(renderTables(results, plainTable) + '\n');
    });
}

function positive(v: unknown, flag: string, allowZero = false): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || (!allowZero && n === 0)) {
    throw new AugurError(
      'BENCH_BAD_OPTION',
      `${flag} must be a ${allowZero ? 'non-negative' : 'positive'} number, got "${String(v)}"`,
    );
  }
  return n;
}

function plainTable(header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i]).length)));
  return cells.map((r) => r.map((c, i) => String(c).padEnd(widths[i]!)).join('  ')).join('\n');
}
