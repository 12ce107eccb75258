/**
 * The figures of an arm run, from a hand-made record: failures counted at the deadline, the
 * traffic-vs-capacity distance, and the lag at which published weights match capacity.
 */
import { describe, expect, it } from 'vitest';
import { armFigures, type RunRecord } from '../../bench/e2e/figures.js';
import type { RequestLog } from '../../bench/e2e/loadgen.js';
import type { Segment } from '../../bench/e2e/workload.js';

const probe = { pid: 1, lagP99Ms: 1, lagMaxMs: 2, cpuCores: 0.1 };

/** Two backends over four 1 s steps; backend 0's capacity alternates 3:1, 1:3. */
function segment(): Segment {
  const capacity = [Float64Array.from([30, 10, 30, 10]), Float64Array.from([10, 30, 10, 30])];
  return {
    startStep: 0,
    steps: 4,
    stepSeconds: 1,
    speeds: capacity.map((c) => c.map((x) => x / 40)),
    capacity,
    rates: Float64Array.from([20, 20, 20, 20]),
  };
}

/** Requests every 10 ms, sent to backend 0 with probability ∝ its capacity share (exactly, in turn). */
function record(overrides: Partial<RunRecord> = {}): RunRecord {
  const n = 400;
  const atMs = Float64Array.from({ length: n }, (_, i) => i * 10);
  const seg = segment();
  const backend = Int16Array.from(atMs, (t, i) => {
    const k = Math.floor(t / 1000);
    const share0 = seg.capacity[0]![k]! / 40;
    return i % 4 < share0 * 4 ? 0 : 1;
  });
  const log: RequestLog = {
    lateMs: new Float64Array(n).fill(1),
    latencyMs: Float64Array.from(atMs, (_, i) => 100 + i),
    backend,
    queueMs: new Float32Array(n).fill(10),
    serviceMs: new Float32Array(n).fill(80),
    failures: new Map(),
  };
  return {
    arm: 'oracle',
    rep: 0,
    order: 0,
    segment: seg,
    arrivals: { atMs, work: new Float64Array(n).fill(0.05), client: new Uint8Array(n) },
    log,
    t0: 0,
    from: 1000,
    to: 4000,
    deadlineMs: 10_000,
    published: undefined,
    reconnects: 0,
    backendTimerLateP99Ms: 0,
    processes: { harness: probe, serve: probe, fleet: probe, dataPlanes: probe },
    detours: {},
    agentSamples: 12,
    agentSamplesSkipped: 0,
    lateLimitMs: 50,
    ...overrides,
  };
}

describe('armFigures', () => {
  it('measures only the window, and traffic that follows capacity exactly is at distance 0', () => {
    const f = armFigures(record());
    expect(f.requests).toBe(300);
    expect(f.trafficTvd).toBeCloseTo(0, 12);
    expect(f.trafficTvdFloor).toBeGreaterThan(0);
    expect(f.p50.failure).toBe(false);
    expect(f.outsideP50Ms).toBeGreaterThan(0);
    expect(f.invalid).toBeUndefined();
  });

  it('counts failures at the deadline, fast ones apart, and says when a percentile is one', () => {
    const r = record();
    // 2 % of the measured requests fail at once: p99 falls on them.
    for (let i = 100; i < 106; i++) {
      r.log.failures.set(i, 'UNAVAILABLE');
      r.log.latencyMs[i] = 3;
      r.log.backend[i] = -1;
    }
    const f = armFigures(r);
    expect(f.failed).toBe(6);
    expect(f.failedFast).toBe(6);
    expect(f.failures).toEqual({ UNAVAILABLE: 6 });
    expect(f.p99).toEqual({ ms: 10_000, failure: true });
    expect(f.p50.failure).toBe(false);
  });

  it('splits the time in the backends into queue and service, and says how much of the tail was service', () => {
    const waited = armFigures(record());
    expect(waited.queueP99Ms).toBe(10);
    expect(waited.serviceP99Ms).toBe(80);
    // The slowest requests (latency ~497 ms) spent 80 ms of it in service: the tail waited.
    expect(waited.tailServiceShare).toBeGreaterThan(0.15);
    expect(waited.tailServiceShare).toBeLessThan(0.17);

    // The slowest requests were served slowly instead (a slowed backend): the tail is service.
    const r = record();
    for (let i = 390; i < 400; i++) r.log.serviceMs[i] = r.log.latencyMs[i]! - 20;
    const slow = armFigures(r);
    expect(slow.tailServiceShare).toBeGreaterThan(0.95);
    expect(slow.serviceP99Ms).toBeGreaterThan(400);
  });

  it('finds the lag at which published weights follow capacity', () => {
    const shares = (k: number) =>
      Float64Array.from([[0.75, 0.25, 0.75, 0.25][k]!, [0.25, 0.75, 0.25, 0.75][k]!]);
    // Weights one step behind capacity, as the perfect-reactive bound publishes them.
    const lagged = record({
      published: {
        before: { at: 0, shares: shares(0) },
        within: [1, 2, 3].map((k) => ({ at: k * 1000 + 2, shares: shares(k - 1) })),
      },
    });
    const f = armFigures(lagged);
    expect(f.weightsBestLag?.steps).toBe(1);
    expect(f.weightsBestLag?.tvd).toBeLessThan(0.01);
    expect(f.weightsTvd).toBeGreaterThan(0.45);
    expect(f.pushes).toBe(3);
  });

  it('calls a run whose load generator fell behind invalid', () => {
    const r = record();
    r.log.lateMs.fill(80);
    expect(armFigures(r).invalid).toMatch(/load generator fell behind/);
  });
});
