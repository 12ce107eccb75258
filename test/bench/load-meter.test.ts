/**
 * The load a benchmark backend reports to its agent and in its ORCA reports: exact integrals of
 * the background (from the trace) and of the busy workers, checked against hand-computed values.
 */
import { describe, expect, it } from 'vitest';
import { LoadMeter } from '../../bench/e2e/load-meter.js';

describe('LoadMeter', () => {
  it('reports host and process CPU over the window since the last report, across trace steps', () => {
    const meter = new LoadMeter(4, 0);
    meter.setSchedule({ t0: 0, stepMs: 1000, speeds: [1, 0.5, 0.25] }, 0);
    meter.setBusy(1, 0);
    meter.setBusy(1, 0);
    // Two of four workers busy for 2 s: step 0 at speed 1 (background 0), step 1 at speed 0.5.
    meter.setBusy(-1, 2000);
    meter.completed(0.3, 2000);
    const first = meter.report(2000);
    // process: 0.5 × 1 × 1000 + 0.5 × 0.5 × 1000 = 750 ms of 2000; host adds 0.5 × 1000 of background.
    expect(first.processCpuUsage).toBeCloseTo(0.375, 12);
    expect(first.cpuUsage).toBeCloseTo(0.625, 12);
    expect(first.requestsCompleted).toBe(1);
    expect(first.latencySumSeconds).toBeCloseTo(0.3, 12);
    expect(first.requestRate).toBeCloseTo(0.5, 12);
    // Then one worker busy from 2 s to 4 s, in step 2 (speed 0.25) and after (held at 0.25).
    const second = meter.report(4000);
    expect(second.processCpuUsage).toBeCloseTo(0.25 * 0.25, 12);
    expect(second.cpuUsage).toBeCloseTo(0.75 + 0.25 * 0.25, 12);
    expect(second.requestsCompleted).toBe(0); // a real zero, not a missing value
  });

  it('holds the first step before the schedule starts and splits a window at every boundary', () => {
    const meter = new LoadMeter(1, 0);
    meter.setSchedule({ t0: 1000, stepMs: 500, speeds: [0.8, 0.4, 0.6] }, 0);
    // Background: 0.2 until 1500, 0.6 until 2000, 0.4 after.
    expect(meter.report(3000).cpuUsage).toBeCloseTo(
      (0.2 * 1500 + 0.6 * 500 + 0.4 * 1000) / 3000,
      12,
    );
    expect(meter.speedAt(0)).toBe(0.8);
    expect(meter.speedAt(1700)).toBe(0.4);
    expect(meter.speedAt(99_000)).toBe(0.6);
  });

  it('gives ORCA the utilisation and completions of about the last second', () => {
    const meter = new LoadMeter(2, 0, 1000, 100);
    meter.setSchedule({ t0: 0, stepMs: 10_000, speeds: [0.5] }, 0);
    for (let t = 0; t <= 5000; t += 50) {
      meter.recentLoad(t);
      if (t % 100 === 0) meter.completed(0.01, t);
    }
    const load = meter.recentLoad(5000);
    // Background 0.5, no worker busy; ten completions a second.
    expect(load.utilization).toBeCloseTo(0.5, 12);
    expect(load.qps).toBeGreaterThan(9);
    expect(load.qps).toBeLessThan(11.5);
  });
});
