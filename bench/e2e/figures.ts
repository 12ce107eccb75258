/**
 * The figures of one arm run, from what the load generator, the backends, the observers and the
 * process probes recorded. Failed requests are never dropped: they count in the percentiles at the
 * deadline (the longest a caller waits), so an arm that fails fast cannot look fast, and a
 * percentile that falls on a failure says so.
 */
import { quantile } from '../report.js';
import { Rng } from '../../src/sim/rng.js';
import type { ArmName } from './arms.js';
import type { RequestLog } from './loadgen.js';
import type { PublishedShares } from './observe.js';
import type { ProcessProbe } from './process-probe.js';
import { capacityShares, shares, totalVariation, type Arrivals, type Segment } from './workload.js';

/** A percentile, and whether it is a failure's (at or past the deadline). */
export interface Percentile {
  ms: number;
  failure: boolean;
}

export interface ArmRun {
  arm: ArmName;
  rep: number;
  /** Position in the repetition's order (0 = first). */
  order: number;
  /** Requests planned in the measured window. */
  requests: number;
  p50: Percentile;
  p99: Percentile;
  p999: Percentile;
  failed: number;
  /** Failures within 50 ms of being sent (e.g. grpc-js-xds refusing at once). */
  failedFast: number;
  failures: Record<string, number>;
  /** Mean over measured steps of the distance between traffic shares and capacity shares. */
  trafficTvd: number;
  /** That distance for requests picked at random ∝ capacity (a rotation can go below it). */
  trafficTvdFloor: number;
  /** Weight updates the arm's clients were sent in the measured window (xDS arms). */
  pushes: number | null;
  /** Connections opened to the backends in the measured window (gRPC, or the data plane's HTTP). */
  reconnects: number;
  /** Published shares against the true capacity shares of the same step (xDS arms). */
  weightsTvd: number | null;
  /** The lag, in steps, at which published shares best match capacity, and that distance. */
  weightsBestLag: { steps: number; tvd: number } | null;
  /** p99 of the time successful requests spent in a backend (queue + service). */
  backendP99Ms: number;
  /** p99 of successful requests' wait in a backend's queue, and of their service alone. */
  queueP99Ms: number;
  serviceP99Ms: number;
  /**
   * Of the slowest 1 % of successful requests (latency at or above its p99), the share of their
   * time that was service, not queueing or anything outside the backend: near 1, the tail is
   * requests served slowly where they went (a slowed backend), not requests that waited.
   */
  tailServiceShare: number;
  /** Latency outside the backend (network, client, proxy, timers): p50 and p99. */
  outsideP50Ms: number;
  outsideP99Ms: number;
  /** How late the load generator sent requests: p99 and max. */
  sendLateP99Ms: number;
  sendLateMaxMs: number;
  /** Worst p99 lateness of a backend's completion timers. */
  backendTimerLateP99Ms: number;
  processes: {
    harness: ProcessProbe;
    serve: ProcessProbe;
    fleet: ProcessProbe;
    dataPlanes: ProcessProbe;
  };
  /** Requests the arm's clients routed another way than intended, by reason. */
  detours: Record<string, number>;
  /** Samples the agents sent, and ticks on which they could not read the load, in the window. */
  agentSamples: number;
  agentSamplesSkipped: number;
  /** Why this run cannot be trusted, if it cannot. */
  invalid: string | undefined;
}

export interface RunRecord {
  arm: ArmName;
  rep: number;
  order: number;
  segment: Segment;
  arrivals: Arrivals;
  log: RequestLog;
  /** Segment start and measured window, epoch ms. */
  t0: number;
  from: number;
  to: number;
  deadlineMs: number;
  published: { before?: PublishedShares; within: PublishedShares[] } | undefined;
  reconnects: number;
  backendTimerLateP99Ms: number;
  processes: ArmRun['processes'];
  detours: Record<string, number>;
  agentSamples: number;
  agentSamplesSkipped: number;
  /** Send lateness (and backend timer lateness) above this makes a run invalid, ms. */
  lateLimitMs: number;
}

export function armFigures(r: RunRecord): ArmRun {
  const { log, arrivals, segment } = r;
  const stepMs = segment.stepSeconds * 1000;
  const measured: number[] = [];
  for (let i = 0; i < arrivals.atMs.length; i++) {
    const at = r.t0 + arrivals.atMs[i];
    if (at >= r.from && at < r.to) measured.push(i);
  }
  const latency = measured.map((i) =>
    log.failures.has(i) ? Math.max(r.deadlineMs, log.latencyMs[i]) : log.latencyMs[i],
  );
  const pct = (q: number): Percentile => {
    const ms = quantile(latency, q);
    return { ms, failure: ms >= r.deadlineMs };
  };
  const failures: Record<string, number> = {};
  let failedFast = 0;
  const inBackend: number[] = [];
  const outside: number[] = [];
  const queue: number[] = [];
  const service: number[] = [];
  const served: number[] = [];
  for (const i of measured) {
    const code = log.failures.get(i);
    if (code !== undefined) {
      failures[code] = (failures[code] ?? 0) + 1;
      if (log.latencyMs[i] < 50) failedFast++;
      continue;
    }
    const backendMs = log.queueMs[i] + log.serviceMs[i];
    inBackend.push(backendMs);
    outside.push(log.latencyMs[i] - backendMs);
    queue.push(log.queueMs[i]);
    service.push(log.serviceMs[i]);
    served.push(i);
  }
  const tailFrom = quantile(
    served.map((i) => log.latencyMs[i]),
    0.99,
  );
  let tailService = 0;
  let tailTotal = 0;
  for (const i of served) {
    if (!(log.latencyMs[i] >= tailFrom)) continue;
    tailService += log.serviceMs[i];
    tailTotal += log.latencyMs[i];
  }
  const late = measured.map((i) => log.lateMs[i]);
  const sendLateP99Ms = quantile(late, 0.99);
  const traffic = trafficDistance(r, stepMs, measured);
  const weights = r.published ? weightsDistance(r, stepMs) : null;
  const invalid =
    sendLateP99Ms > r.lateLimitMs
      ? `the load generator fell behind (p99 ${sendLateP99Ms.toFixed(1)} ms late, limit ${r.lateLimitMs.toFixed(1)} ms)`
      : r.backendTimerLateP99Ms > r.lateLimitMs
        ? `the backends' timers fell behind (p99 ${r.backendTimerLateP99Ms.toFixed(1)} ms late, limit ${r.lateLimitMs.toFixed(1)} ms)`
        : measured.length === 0
          ? 'no request in the measured window'
          : undefined;
  return {
    arm: r.arm,
    rep: r.rep,
    order: r.order,
    requests: measured.length,
    p50: pct(0.5),
    p99: pct(0.99),
    p999: pct(0.999),
    failed: Object.values(failures).reduce((a, x) => a + x, 0),
    failedFast,
    failures,
    trafficTvd: traffic.tvd,
    trafficTvdFloor: traffic.floor,
    pushes: r.published ? r.published.within.length : null,
    reconnects: r.reconnects,
    weightsTvd: weights?.lag0 ?? null,
    weightsBestLag: weights?.best ?? null,
    backendP99Ms: quantile(inBackend, 0.99),
    queueP99Ms: quantile(queue, 0.99),
    serviceP99Ms: quantile(service, 0.99),
    tailServiceShare: tailTotal > 0 ? tailService / tailTotal : Number.NaN,
    outsideP50Ms: quantile(outside, 0.5),
    outsideP99Ms: quantile(outside, 0.99),
    sendLateP99Ms,
    sendLateMaxMs: late.reduce((a, x) => Math.max(a, x), 0),
    backendTimerLateP99Ms: r.backendTimerLateP99Ms,
    processes: r.processes,
    detours: r.detours,
    agentSamples: r.agentSamples,
    agentSamplesSkipped: r.agentSamplesSkipped,
    invalid,
  };
}

/** The measured steps of a run: indices into the segment. */
function measuredSteps(r: RunRecord, stepMs: number): number[] {
  const first = Math.round((r.from - r.t0) / stepMs);
  const last = Math.round((r.to - r.t0) / stepMs);
  return Array.from({ length: Math.max(0, last - first) }, (_, j) => first + j);
}

/**
 * Per measured step, the distance between where requests went (by planned send time) and each
 * backend's capacity share; and the same distance for the same number of requests each drawn at
 * random ∝ capacity (its mean over 40 draws): what weighted random picking with perfect weights
 * would show. A deterministic rotation has less noise and can go below it.
 */
function trafficDistance(
  r: RunRecord,
  stepMs: number,
  measured: readonly number[],
): { tvd: number; floor: number } {
  const backends = r.segment.capacity.length;
  const counts = new Map<number, Float64Array>();
  for (const i of measured) {
    const b = r.log.backend[i];
    if (b < 0) continue;
    const k = Math.floor(r.arrivals.atMs[i] / stepMs);
    const c = counts.get(k) ?? new Float64Array(backends);
    c[b]++;
    counts.set(k, c);
  }
  const rng = new Rng(0x7e1d);
  let tvd = 0;
  let floor = 0;
  let steps = 0;
  for (const k of measuredSteps(r, stepMs)) {
    const c = counts.get(k);
    if (!c) continue;
    const capacity = capacityShares(r.segment, k);
    tvd += totalVariation(shares(c), capacity);
    const n = c.reduce((a, x) => a + x, 0);
    const draws = 40;
    for (let d = 0; d < draws; d++) {
      const sample = new Float64Array(backends);
      for (let j = 0; j < n; j++) sample[pickIndex(capacity, rng.next())]++;
      floor += totalVariation(shares(sample), capacity) / draws;
    }
    steps++;
  }
  return steps ? { tvd: tvd / steps, floor: floor / steps } : { tvd: NaN, floor: NaN };
}

function pickIndex(p: Float64Array, u: number): number {
  let acc = 0;
  for (let i = 0; i < p.length; i++) {
    acc += p[i];
    if (u < acc) return i;
  }
  return p.length - 1;
}

/**
 * The shares clients were given, averaged over each measured step (weighted by how long each
 * assignment was in force), against the capacity shares of that step (lag 0) and of up to five
 * steps before: the lag whose distance is smallest says how old the capacity the weights follow
 * is (perfect-reactive: 1; oracle: 0).
 */
function weightsDistance(
  r: RunRecord,
  stepMs: number,
): { lag0: number; best: { steps: number; tvd: number } } | null {
  const published = r.published!;
  const timeline = [...(published.before ? [published.before] : []), ...published.within];
  if (timeline.length === 0) return null;
  const steps = measuredSteps(r, stepMs);
  const perStep = steps.map((k) => {
    const from = r.t0 + k * stepMs;
    const to = from + stepMs;
    const mean = new Float64Array(r.segment.capacity.length);
    let covered = 0;
    for (let j = 0; j < timeline.length; j++) {
      const start = Math.max(from, timeline[j].at);
      const end = Math.min(to, timeline[j + 1]?.at ?? Infinity);
      if (end <= start) continue;
      for (let b = 0; b < mean.length; b++) mean[b] += timeline[j].shares[b] * (end - start);
      covered += end - start;
    }
    return covered > 0 ? mean.map((x) => x / covered) : undefined;
  });
  const distanceAt = (lag: number): number => {
    let sum = 0;
    let n = 0;
    steps.forEach((k, j) => {
      const s = perStep[j];
      if (!s || k - lag < 0) return;
      sum += totalVariation(s, capacityShares(r.segment, k - lag));
      n++;
    });
    return n ? sum / n : NaN;
  };
  let best = { steps: 0, tvd: distanceAt(0) };
  for (let lag = 1; lag <= 5; lag++) {
    const d = distanceAt(lag);
    if (d < best.tvd) best = { steps: lag, tvd: d };
  }
  return { lag0: distanceAt(0), best };
}
