import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { BenchOptions, RunResult } from './bench.js';
import type { AgentSignals } from './augur-scorer.js';
import type { Trace } from './traces.js';

/** What one worker runs: (scenario, seed) pairs, and the options every run shares (data only). */
export interface ParallelJob {
  runs: Array<{ scenario: string; seed: number }>;
  /** Policy names to run (catalog order); all when undefined. */
  policies?: string[];
  options: {
    traceSets: Record<string, Trace[]>;
    arrivalTrace: Trace;
    interval: number;
    simulatedSeconds: number;
    steps?: number;
    start?: number;
    sloFactor: number;
    signals?: AgentSignals;
    forecast?: Record<string, unknown>;
  };
  /** Custom scenarios (e.g. `custom` from --trace) are passed whole: the worker's catalog lacks them. */
  scenarios: BenchOptions['scenarios'];
}

export type ProgressListener = (
  scenario: string,
  seed: number,
  policy: string,
  p99: number,
  seconds: number,
) => void;

/**
 * Runs every (scenario, seed) of `opts` in worker threads (as many as the
 * machine has cores, at most one per run), and returns the results in
 * scenario-then-seed order. Each run is seeded on its own, so the figures are
 * the same as a sequential run's.
 */
export async function runInParallel(
  opts: Pick<
    BenchOptions,
    | 'scenarios'
    | 'seeds'
    | 'traceSets'
    | 'arrivalTrace'
    | 'interval'
    | 'simulatedSeconds'
    | 'steps'
    | 'start'
    | 'sloFactor'
    | 'policyOptions'
  > & { policies?: readonly string[] },
  onProgress?: ProgressListener,
  workers = availableParallelism(),
): Promise<RunResult[]> {
  const all = opts.scenarios.flatMap((s) => opts.seeds.map((seed) => ({ scenario: s.name, seed })));
  const count = Math.max(1, Math.min(workers, all.length));
  const groups: ParallelJob['runs'][] = Array.from({ length: count }, () => []);
  // Longest first would balance better; runs of one scenario cost about the same, so deal them out.
  all.forEach((r, i) => groups[i % count]!.push(r));
  // from source (tsx), the worker needs tsx's loader too; compiled, it is plain JS
  const fromSource = import.meta.url.endsWith('.ts');
  const url = new URL(fromSource ? './bench-worker.ts' : './bench-worker.js', import.meta.url);
  const boot = fromSource
    ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((t) => { t.register(); return import(${JSON.stringify(url.href)}); })`
    : `import(${JSON.stringify(url.href)})`;
  const parts = await Promise.all(
    groups
      .filter((g) => g.length > 0)
      .map(
        (runs) =>
          new Promise<RunResult[]>((resolve, reject) => {
            const job: ParallelJob = {
              runs,
              policies: opts.policies ? [...opts.policies] : undefined,
              scenarios: opts.scenarios,
              options: {
                traceSets: { ...opts.traceSets },
                arrivalTrace: opts.arrivalTrace,
                interval: opts.interval,
                simulatedSeconds: opts.simulatedSeconds,
                ...(opts.steps !== undefined ? { steps: opts.steps } : {}),
                ...(opts.start !== undefined ? { start: opts.start } : {}),
                sloFactor: opts.sloFactor,
                ...(opts.policyOptions?.signals ? { signals: opts.policyOptions.signals } : {}),
                ...(opts.policyOptions?.forecast ? { forecast: opts.policyOptions.forecast } : {}),
              },
            };
            const worker = new Worker(boot, { eval: true, workerData: job });
            worker.on(
              'message',
              (m: {
                results?: RunResult[];
                progress?: {
                  scenario: string;
                  seed: number;
                  policy: string;
                  p99: number;
                  seconds: number;
                };
              }) => {
                const p = m.progress;
                if (p) onProgress?.(p.scenario, p.seed, p.policy, p.p99, p.seconds);
                if (m.results) resolve(m.results);
              },
            );
            worker.on('error', reject);
            worker.on('exit', (code) => {
              if (code !== 0) reject(new Error(`routing bench worker exited with code ${code}`));
            });
          }),
      ),
  );
  const key = (r: { scenario: string; seed: number }) => `${r.scenario}\u0000${r.seed}`;
  const byKey = new Map(parts.flat().map((r) => [key(r), r]));
  return all.map((r) => byKey.get(key(r))!);
}
