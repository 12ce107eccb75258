import { cpus, loadavg } from 'node:os';
import { Command } from 'commander';
import { markdownTable, writeBenchmarkSection } from './report.js';
import { referenceReading, routingReading } from './routing-reading.js';
import { addRoutingBenchOptions } from '../src/sim/cli.js';
import { ENVOY_LEAST_REQUEST_DEFAULTS } from '../src/sim/policies/pickers.js';
import {
  renderPolicyList,
  renderReferenceSummary,
  renderTables,
  renderTargetSummary,
} from '../src/sim/report.js';
import { runRoutingBenchFromFlags } from '../src/sim/run.js';
import { SCENARIO_DEFAULTS } from '../src/sim/scenarios.js';
import { SCENARIOS } from '../src/sim/spec.js';

/**
 * Routing quality: every policy in every scenario of the discrete-event
 * simulator (src/sim), over several seeds. Deterministic: the same flags give
 * the same figures. Takes the flags of `augur bench routing`; run with none, it
 * writes the "Routing quality" section of BENCHMARKS.md, with any flag it only prints.
 */
const program = addRoutingBenchOptions(new Command('bench:routing')).parse(process.argv);
const flags = program.opts();
const full = process.argv.length <= 2;
const t0 = performance.now();
const load0 = loadavg()[0];
const cpu0 = process.cpuUsage();
const out = await runRoutingBenchFromFlags(flags, { progress: !flags.json });
/** The same augur policies with fewer agent signals: what each fallback of the weight costs. */
const FALLBACK_SCENARIOS = ['nab', 'noisy-neighbour', 'batch-job'];
const AUGUR = ['augur-envoy-eds', 'augur-grpc'];
async function fallbackTable(): Promise<string> {
  const rows: Array<Array<string | number>> = [];
  const p99 = new Map<string, number>();
  for (const signals of ['full', 'no-own-cpu', 'no-requests'] as const) {
    const o = await runRoutingBenchFromFlags(
      { scenario: FALLBACK_SCENARIOS, policy: AUGUR, signals },
      { progress: false },
    );
    for (const sum of o.summaries)
      for (const p of sum.policies) p99.set(`${signals}|${sum.scenario}|${p.policy}`, p.p99.median);
  }
  for (const scenario of FALLBACK_SCENARIOS)
    for (const policy of AUGUR) {
      const full = p99.get(`full|${scenario}|${policy}`)!;
      const cell = (signals: string) => {
        const v = p99.get(`${signals}|${scenario}|${policy}`)!;
        return `${(v * 1000).toFixed(0)} (${v / full >= 1 ? '+' : '−'}${Math.abs((v / full - 1) * 100).toFixed(0)} %)`;
      };
      rows.push([
        scenario,
        policy,
        (full * 1000).toFixed(0),
        cell('no-own-cpu'),
        cell('no-requests'),
      ]);
    }
  return markdownTable(
    [
      'scenario',
      'policy',
      'p99 ms, own CPU and requests',
      'no own CPU (A58 from host CPU)',
      'no request counts (equal cost)',
    ],
    rows,
  );
}

if (!full) {
  process.stdout.write(out.text + '\n');
} else {
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const d = SCENARIO_DEFAULTS;
  const o = out.inputs.options;
  const world =
    `${d.endpoints} endpoints, each a FIFO queue with ${d.workers} workers (its agent reports ${d.workers} cores; ` +
    `mean unloaded service time ${d.serviceTime * 1000} ms, exponential); each worker runs at speed 1 − background CPU ` +
    `(one trace step per monitoring interval, background capped at ${d.maxBackground}); ${d.proxies} proxies; ` +
    `Poisson arrivals following the NAB ELB request count, scaled to a mean fleet utilisation of ` +
    `${d.targetUtilisation} and capped at ${d.peakUtilisation} of each interval's capacity; queue limit ` +
    `${d.queueLimit}; ${o.simulatedSeconds} s measured per run (at least ${d.minSteps} intervals) after ` +
    `${d.warmupSteps} warm-up intervals; seeds ${o.seeds.join(', ')}, seed s reading the traces from where seed ` +
    `s − 1 ended (cycled where a trace is shorter). Whole run: ${elapsed.toFixed(0)} s wall clock, ` +
    `${cpuSeconds.toFixed(0)} s of CPU on ${cpus().length} cores (runs in worker threads, one per core), ` +
    `load average ${load0.toFixed(1)} at the start and ${loadavg()[0].toFixed(1)} at the end (the time is ` +
    'simulated, so the load changes only the wall clock).';
  const scenarios = SCENARIOS.map(
    (s) =>
      `- \`${s.name}\`${s.tuning ? '' : ' (not tuned on)'}: ${s.what}` +
      (out.inputs.sources[s.traces] ? '' : ' — not run: its traces were not found'),
  ).join('\n');
  const fallbacks = await fallbackTable();
  const fallbackNote =
    'Without own CPU the weight is gRFC A58 from host CPU and request counts (the background counts ' +
    "as the endpoint's load, nothing is forecast); without request counts every endpoint is taken to " +
    'cost the same (true in this simulator, where they all do, so that column loses nothing and even ' +
    "gains where the per-endpoint cost's estimation noise mattered; on hosts of unequal speed the cost " +
    'per request is what tells them apart).';
  writeBenchmarkSection(
    'Routing quality (simulated)',
    'npm run bench:routing',
    [
      world,
      '',
      'Scenarios (augur was tuned on the NAB and synthetic ones; Bitbrains, Azure 2017 and Google 2011 are reported, not tuned on):',
      scenarios,
      ...(out.inputs.skipped.length ? ['', `Left out: ${out.inputs.skipped.join('; ')}.`] : []),
      '',
      'Policies:',
      renderPolicyList(),
      '',
      'Every figure is the median over the seeds, with its range (min–max) where it varies. Latencies are ' +
        'of completed requests; dropped % is of all requests; churn is the mean share of traffic a policy ' +
        "moves between endpoints per interval; cuts are intervals where an endpoint's share fell by >= 20 %; " +
        'lead s is how long before an overload onset the share was first cut (onsets: the capacity fell and, ' +
        'at a share proportional to its previous capacity, utilisation crosses 0.9; a cut up to 2 intervals ' +
        'before or 1 after counts), caught % the onsets with such a cut, false cuts % the cuts followed by no ' +
        'onset within 2 intervals.',
      '',
      '### Targets (median over seeds, range; * = not tuned on)',
      '',
      renderTargetSummary(out.summaries, markdownTable),
      '',
      routingReading(out.summaries, {
        envoyActiveRequestBias: ENVOY_LEAST_REQUEST_DEFAULTS.activeRequestBias,
      }),
      '',
      '### The per-request picker against perfect information (median over seeds, range; no targets)',
      '',
      renderReferenceSummary(out.summaries, markdownTable),
      '',
      referenceReading(out.summaries),
      '',
      '### What the fallbacks cost (the same code with fewer agent signals: `--signals`)',
      '',
      `Median p99 over the same seeds; in parentheses against the full signals. ${fallbackNote}`,
      '',
      fallbacks,
      '',
      renderTables(out.summaries, markdownTable),
    ].join('\n'),
  );
}
