import { parentPort, workerData } from 'node:worker_threads';
import { BENCH_DEFAULTS, runOne } from './bench.js';
import { POLICIES } from './policies/catalog.js';
import type { ParallelJob } from './parallel.js';

/** Runs the (scenario, seed) pairs it is given and posts their results (see parallel.ts). */
const job = workerData as ParallelJob;
const { signals, forecast, ...options } = job.options;
const policies = job.policies ? POLICIES.filter((p) => job.policies!.includes(p.name)) : POLICIES;
const results = [];
for (const { scenario, seed } of job.runs) {
  const spec = job.scenarios.find((s) => s.name === scenario)!;
  results.push(
    await runOne(spec, seed, {
      ...BENCH_DEFAULTS,
      ...options,
      policies,
      policyOptions: { ...(signals ? { signals } : {}), ...(forecast ? { forecast } : {}) },
      onRun: (s, sd, f, seconds) =>
        parentPort!.postMessage({
          progress: { scenario: s, seed: sd, policy: f.policy, p99: f.p99, seconds },
        }),
    }),
  );
}
parentPort!.postMessage({ results });
