import type { Command } from 'commander';
import { RUN_DEFAULTS, SCENARIOS } from './spec.js';

/** Adds the routing benchmark's options to a command (`augur bench routing`, `npm run bench:routing`). */
export function addRoutingBenchOptions(command: Command): Command {
  return command
    .option(
      '--seeds <n>',
      'seeds per scenario; tables show the median over seeds and its range',
      String(RUN_DEFAULTS.seeds),
    )
    .option(
      '--scenario <name...>',
      `scenarios to run (default all): ${SCENARIOS.map((s) => s.name).join(', ')}; "custom" with --trace`,
    )
    .option(
      '--trace <csv...>',
      'background CPU trace(s), one per endpoint (cycled, shifted), as the scenario "custom"; .gz too',
    )
    .option(
      '--column <name|index>',
      'the CPU column of the --trace files, by name or 1-based position (default: the only value column)',
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
    .option(
      '--seconds <s>',
      'simulated seconds measured per run',
      String(RUN_DEFAULTS.simulatedSeconds),
    )
    .option(
      '--start <row>',
      'first trace row of every run (default: seed s starts where seed s-1 ended)',
    )
    .option('--steps <n>', 'intervals measured per run (overrides --seconds)')
    .option('--policy <name...>', 'only these policies (default all)')
    .option(
      '--signals <which>',
      "what augur's agents report: full, no-own-cpu, no-requests (measures the weight's fallbacks)",
    )
    .option('--json', 'print every run (per scenario, seed and policy) and the summary as JSON');
}

/** Registers `augur bench routing`. */
export function registerBenchCommand(program: Command): void {
  const bench =
    program.commands.find((c) => c.name() === 'bench') ??
    program.command('bench').description('benchmarks that run without a deployment');
  addRoutingBenchOptions(
    bench
      .command('routing')
      .description(
        'routing-quality benchmark: a deterministic simulation of endpoints slowed by real CPU traces, ' +
          "comparing reactive balancers, augur's shipped weights per data plane, and bounds, over several seeds",
      ),
  ).action(async (flags: Record<string, unknown>) => {
    // Loaded here: the simulator is large and every `augur` command builds this CLI.
    const { runRoutingBenchFromFlags } = await import('./run.js');
    const out = await runRoutingBenchFromFlags(flags, { progress: !flags.json });
    process.stdout.write(out.text + '\n');
  });
}
