import { parentPort, workerData } from 'node:worker_threads';
import { BENCH_DEFAULTS, runRoutingBench, SCENARIOS } from './bench.js';
import { POLICIES } from './policies/catalog.js';
import type { ParallelJob } from './parallel.js';

/** Runs the scenarios it is given and posts their results (see parallel.ts). */
const job = workerData as ParallelJob;
const results = await runRoutingBench({
  ...BENCH_DEFAULTS,
  ...job.options,
  scenarios: SCENARIOS.filter((s) => job.scenarios.includes(s.name)),
  policies: job.policies ? POLICIES.filter((p) => job.policies!.includes(p.name)) : POLICIES,
  onRun: (scenario, f, seconds) =>
    parentPort!.postMessage({ progress: { scenario, policy: f.policy, p99: f.p99, seconds } }),
});
parentPort!.postMessage({ results });
