import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { ScenarioResult, ScenarioSpec } from './bench.js';
import type { Trace } from './traces.js';

/** What one worker runs: scenario names and the options every scenario shares. */
export interface ParallelJob {
  scenarios: string[];
  /** Policy names to run (catalog order); all when undefined. */
  policies?: string[];
  options: {
    cpuTraces: Trace[];
    arrivalTrace: Trace;
    interval: number;
    seed: number;
    simulatedSeconds: number;
    sloFactor: number;
  };
}

/**
 * Runs scenarios in worker threads (as many as the machine has cores, at most
 * one per scenario), each scenario whole in one worker, and returns the
 * results in the order of `scenarios`. Each scenario is seeded on its own, so
 * the figures are the same as a sequential run's.
 */
export async function runScenariosInParallel(
  scenarios: readonly ScenarioSpec[],
  options: ParallelJob['options'],
  onProgress?: (scenario: string, policy: string, p99: number, seconds: number) => void,
  workers = Math.min(availableParallelism(), scenarios.length),
  policies?: readonly string[],
): Promise<ScenarioResult[]> {
  const groups: string[][] = Array.from({ length: Math.max(1, workers) }, () => []);
  scenarios.forEach((s, i) => groups[i % groups.length]!.push(s.name));
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
        (names) =>
          new Promise<ScenarioResult[]>((resolve, reject) => {
            const { cpuTraces, arrivalTrace, interval, seed, simulatedSeconds, sloFactor } =
              options;
            // only data crosses to a worker (the caller may pass a wider object)
            const job: ParallelJob = {
              scenarios: names,
              policies: policies ? [...policies] : undefined,
              options: { cpuTraces, arrivalTrace, interval, seed, simulatedSeconds, sloFactor },
            };
            const worker = new Worker(boot, { eval: true, workerData: job });
            worker.on(
              'message',
              (m: {
                results?: ScenarioResult[];
                progress?: { scenario: string; policy: string; p99: number; seconds: number };
              }) => {
                if (m.progress)
                  onProgress?.(
                    m.progress.scenario,
                    m.progress.policy,
                    m.progress.p99,
                    m.progress.seconds,
                  );
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
  const byName = new Map(parts.flat().map((r) => [r.scenario, r]));
  return scenarios.map((s) => byName.get(s.name)!);
}
