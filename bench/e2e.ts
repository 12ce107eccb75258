/**
 * `npm run bench:e2e`: augur against the reactive balancers users run today, on real sockets.
 * Backends on loopback slowed by real CPU traces, an open-loop Poisson load, real agents, a real
 * `augur serve`, and the arms of bench/e2e/arms.ts, interleaved over repetitions. Writes one
 * section of BENCHMARKS.md per configuration (trace step, agents' interval) and prints it; with
 * `--json`, prints every figure as JSON instead. `--help` lists the options. Ctrl-C stops every
 * process it started.
 */
import { cpus, loadavg } from 'node:os';
import { writeBenchmarkSection } from './report.js';
import { configsOf, parseOptions, UsageRequested, USAGE, type E2eOptions } from './e2e/options.js';
import { renderSection, sectionTitle, type MachineNote } from './e2e/report.js';
import { runConfig, type ConfigResult } from './e2e/run.js';
import { evaluateTargets } from './e2e/summary.js';

const argv = process.argv.slice(2);
let options: E2eOptions;
try {
  options = parseOptions(argv);
} catch (err) {
  if (err instanceof UsageRequested) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  process.stderr.write(`bench:e2e: ${(err as Error).message}\n\n${USAGE}\n`);
  process.exit(2);
}

const abort = new AbortController();
let interrupts = 0;
process.on('SIGINT', () => {
  // The first Ctrl-C stops the run and everything it started; a second leaves at once (the
  // children stop themselves when this process's IPC channel closes).
  if (++interrupts > 1) process.exit(130);
  process.stderr.write('bench:e2e: interrupted, stopping everything it started\n');
  abort.abort();
});
process.on('SIGTERM', () => abort.abort());

const progress = (line: string): void => void process.stderr.write(`bench:e2e: ${line}\n`);
const command = `npm run bench:e2e${argv.length ? ` -- ${argv.join(' ')}` : ''}`;
const results: ConfigResult[] = [];
let failed = false;
for (const config of configsOf(options)) {
  const loadBefore = loadavg();
  try {
    const result = await runConfig(options, config, progress, abort.signal);
    results.push(result);
    const machine: MachineNote = {
      cores: cpus().length,
      cpuModel: cpus()[0]?.model.trim() ?? 'unknown CPU',
      node: process.version,
      loadBefore,
      loadAfter: loadavg(),
    };
    if (!options.json) {
      const body = renderSection(result, options, machine);
      if (options.write) writeBenchmarkSection(sectionTitle(result, options), command, body);
      else process.stdout.write(`\n## ${sectionTitle(result, options)}\n\n${body}\n`);
    }
  } catch (err) {
    failed = true;
    progress(`${config.stepSeconds} s steps failed: ${(err as Error).message}`);
    if (abort.signal.aborted) break;
  }
}
if (options.json) {
  const { cpuTraces, arrivalTrace, ...rest } = options;
  process.stdout.write(
    `${JSON.stringify(
      {
        command,
        cores: cpus().length,
        options: {
          ...rest,
          cpuTraces: cpuTraces.map((t) => t.name),
          arrivalTrace: arrivalTrace.name,
        },
        configs: results.map((r) => ({ ...r, targets: evaluateTargets(r) })),
      },
      null,
      2,
    )}\n`,
  );
}
process.exit(failed ? 1 : 0);
