import { markdownTable, writeBenchmarkSection } from './report.js';
import { routingReading } from './routing-reading.js';
import { BENCH_DEFAULTS } from '../src/sim/bench.js';
import { runScenariosInParallel } from '../src/sim/parallel.js';
import { renderPolicyList, renderTables } from '../src/sim/report.js';
import { loadDefaultTraces, SCENARIO_DEFAULTS } from '../src/sim/scenarios.js';

/**
 * Routing quality: every policy in every scenario of the discrete-event
 * simulator (src/sim), with the NAB traces. Deterministic: the same seed gives
 * the same figures. Writes the "Routing quality" section of BENCHMARKS.md.
 */
const t0 = performance.now();
const cpu0 = process.cpuUsage();
const results = await runScenariosInParallel(
  BENCH_DEFAULTS.scenarios,
  { ...BENCH_DEFAULTS, ...loadDefaultTraces() },
  (s, policy, p99, secs) =>
    process.stderr.write(
      `${s}: ${policy} p99 ${(p99 * 1000).toFixed(1)} ms (${secs.toFixed(1)} s)\n`,
    ),
);
const elapsed = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
const d = SCENARIO_DEFAULTS;
const world =
  `${d.endpoints} endpoints, each a FIFO queue with ${d.workers} workers (mean unloaded service time ` +
  `${d.serviceTime * 1000} ms, exponential), speed = 1 − background CPU from the NAB CPU traces ` +
  `(one trace step per monitoring interval, background capped at ${d.maxBackground}); ${d.proxies} proxies; ` +
  `Poisson arrivals following the NAB ELB request count, scaled to a mean fleet utilisation of ` +
  `${d.targetUtilisation} and capped at ${d.peakUtilisation} of each interval's capacity; queue limit ` +
  `${d.queueLimit}; ${BENCH_DEFAULTS.simulatedSeconds} s measured per scenario (at least ${d.minSteps} intervals) ` +
  `after ${d.warmupSteps} warm-up intervals; seed ${BENCH_DEFAULTS.seed}. Whole run: ${elapsed.toFixed(0)} s wall clock, ${cpuSeconds.toFixed(0)} s of CPU ` +
  `(scenarios run in worker threads, one per core).`;
const reading = routingReading(results);
writeBenchmarkSection(
  'Routing quality (simulated)',
  'npm run bench:routing',
  [
    world,
    '',
    'Policies:',
    renderPolicyList(),
    '',
    'Columns: latencies of completed requests; over SLO counts dropped requests too; churn is the mean share of ' +
      'traffic a policy moves between endpoints per interval; lead s is how long before an overload onset the ' +
      "endpoint's share was first cut by >= 20 % (onsets: the endpoint's capacity fell and, at a share proportional " +
      'to its previous capacity, its utilisation crosses 0.9; a cut up to 2 intervals before or 1 after counts), ' +
      'caught % the onsets with such a cut, false cuts % the cuts followed by no onset within 2 intervals.',
    '',
    renderTables(results, markdownTable),
    reading,
  ].join('\n'),
);
