/**
 * The real-socket benchmark's harness, run small: a real `augur serve`, three backends with real
 * agents, and three of the arms (augur's xDS weights through grpc-js-xds; the same weights through
 * grpc-js-xds without augur's policy, behind a gateway in the data-plane process; augur's RRM
 * through the demo data plane, in that process too) over one short repetition. It checks that
 * the harness measures what it says (every planned request accounted for, traffic counted per
 * backend, pushes observed) and stops every process it started; it asserts no latency figure
 * (those belong to `npm run bench:e2e`).
 */
import { describe, expect, it } from 'vitest';
import { configsOf, parseOptions } from '../../bench/e2e/options.js';
import { runConfig } from '../../bench/e2e/run.js';

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('bench:e2e harness', () => {
  it('runs three arms end to end over real sockets and stops everything it started', async () => {
    const options = parseOptions([
      '--configs',
      '0.5',
      '--reps',
      '1',
      '--warmup',
      '1',
      '--seconds',
      '2',
      '--prime',
      '0',
      '--backends',
      '3',
      '--clients',
      '1',
      '--utilisation',
      '0.4',
      '--arms',
      'augur-xds,augur-xds-locality,augur-rrm',
      '--no-write',
    ]);
    const lines: string[] = [];
    const result = await runConfig(
      options,
      configsOf(options)[0]!,
      (line) => lines.push(line),
      new AbortController().signal,
    );

    expect(result.runs.map((r) => r.arm).sort()).toEqual([
      'augur-rrm',
      'augur-xds',
      'augur-xds-locality',
    ]);
    for (const run of result.runs) {
      // 3 backends × 4 workers / 100 ms × mean speed ≥ 0.5, at 0.4 utilisation over 2 s: about
      // 50 requests or more are planned in the measured window whatever the trace does.
      expect(run.requests).toBeGreaterThan(10);
      // A 10 s deadline is not reached in a 3 s run at 0.4 utilisation: nothing fails.
      expect(run.failures, `${run.arm}, data-plane detours ${JSON.stringify(run.detours)}`).toEqual(
        {},
      );
      expect(run.p50.ms).toBeGreaterThan(0);
      expect(run.p99.ms).toBeGreaterThanOrEqual(run.p50.ms);
      expect(run.p999.ms).toBeGreaterThanOrEqual(run.p99.ms);
      // Traffic was attributed to backends and compared with their capacity.
      expect(run.trafficTvd).toBeGreaterThanOrEqual(0);
      expect(run.trafficTvd).toBeLessThanOrEqual(1);
      expect(run.trafficTvdFloor).toBeGreaterThan(0);
      expect(run.processes.serve.pid).not.toBe(run.processes.fleet.pid);
    }
    // The observer saw augur's assignment (the one in force, or pushes during the window), for
    // both arms that read it.
    for (const arm of ['augur-xds', 'augur-xds-locality']) {
      const xds = result.runs.find((r) => r.arm === arm)!;
      expect(xds.pushes, arm).not.toBeNull();
      expect(xds.weightsTvd, arm).not.toBeNull();
    }
    const rrm = result.runs.find((r) => r.arm === 'augur-rrm')!;
    expect(rrm.pushes).toBeNull();

    const { serve, fleet, dataPlanes } = result.runs[0]!.processes;
    for (const child of [serve, fleet, dataPlanes]) expect(running(child.pid)).toBe(false);
  }, 180_000);
});
