/**
 * What a host running one benchmark backend would show, computed exactly from the backend's
 * state instead of read from /proc: the host has `workers` cores; background work (other
 * tenants, batch jobs; from a real CPU trace) takes the fraction b(t) of each; a worker serving a
 * request takes the rest of its core, so it runs at speed 1 − b(t). Over any window:
 * - process CPU (the backend's own, as a fraction of the host) = ∫ busy(t)/workers · (1 − b(t)) dt;
 * - host CPU = ∫ b(t) dt + process CPU (1 when every worker is busy).
 * Both are integrated piecewise: busy(t) changes at request starts and ends, b(t) at trace steps.
 */

/** Speeds per trace step from `t0` (epoch ms); before and after, the first and last step's. */
export interface SpeedSchedule {
  t0: number;
  stepMs: number;
  speeds: ArrayLike<number>;
}

/** The load report an agent reads (`augur agent --load-url`), covering the time since the last. */
export interface LoadReport {
  cpuUsage: number;
  memoryUsage: number;
  networkIo: number;
  processCpuUsage: number;
  requestsCompleted: number;
  latencySumSeconds: number;
  requestRate: number;
}

/** Bytes on the wire per request, request and answer with their headers (for networkIo). */
const BYTES_PER_REQUEST = 600;

interface Totals {
  at: number;
  /** ∫ host CPU dt, ms. */
  host: number;
  /** ∫ process CPU dt, ms. */
  own: number;
  completed: number;
  latencySum: number;
}

export class LoadMeter {
  private schedule: SpeedSchedule;
  private busy = 0;
  private readonly totals: Totals;
  private lastReport: Totals;
  /** Totals every `recentStepMs`, newest last, covering at least `recentWindowMs`. */
  private readonly recent: Totals[] = [];

  constructor(
    private readonly workers: number,
    now: number,
    private readonly recentWindowMs = 1000,
    private readonly recentStepMs = 100,
  ) {
    this.schedule = { t0: now, stepMs: 1000, speeds: [1] };
    this.totals = { at: now, host: 0, own: 0, completed: 0, latencySum: 0 };
    this.lastReport = { ...this.totals };
    this.recent.push({ ...this.totals });
  }

  /** Speed (1 − background) at time t. */
  speedAt(t: number): number {
    const { t0, stepMs, speeds } = this.schedule;
    const k = Math.min(speeds.length - 1, Math.max(0, Math.floor((t - t0) / stepMs)));
    return speeds[k]!;
  }

  setSchedule(schedule: SpeedSchedule, now: number): void {
    if (schedule.speeds.length === 0) throw new Error('a speed schedule needs at least one step');
    this.advance(now);
    this.schedule = schedule;
  }

  /** A worker started (+1) or finished (−1) serving at `now`. */
  setBusy(delta: 1 | -1, now: number): void {
    this.advance(now);
    this.busy += delta;
  }

  completed(latencySeconds: number, now: number): void {
    this.advance(now);
    this.totals.completed++;
    this.totals.latencySum += latencySeconds;
  }

  /** Everything since the previous report (the contract of `augur agent --load-url`). */
  report(now: number): LoadReport {
    this.advance(now);
    const last = this.lastReport;
    this.lastReport = { ...this.totals };
    const spanMs = Math.max(1e-3, now - last.at);
    const completed = this.totals.completed - last.completed;
    const cpu = clamp01((this.totals.host - last.host) / spanMs);
    const rate = (completed * 1000) / spanMs;
    return {
      cpuUsage: cpu,
      memoryUsage: 0.3 + 0.1 * cpu,
      networkIo: rate * BYTES_PER_REQUEST,
      processCpuUsage: clamp01((this.totals.own - last.own) / spanMs),
      requestsCompleted: completed,
      latencySumSeconds: this.totals.latencySum - last.latencySum,
      requestRate: rate,
    };
  }

  /**
   * Host CPU utilisation and completions/s over about the last `recentWindowMs`: what the
   * backend attaches to each answer as its ORCA report (a server's recorder holds a recent
   * measurement, not one per request).
   */
  recentLoad(now: number): { utilization: number; qps: number } {
    this.advance(now);
    this.keepRecent(now);
    const from = this.recent[0]!;
    const spanMs = now - from.at;
    if (spanMs <= 0) return { utilization: 0, qps: 0 };
    return {
      utilization: clamp01((this.totals.host - from.host) / spanMs),
      qps: ((this.totals.completed - from.completed) * 1000) / spanMs,
    };
  }

  private keepRecent(now: number): void {
    if (now - this.recent[this.recent.length - 1]!.at >= this.recentStepMs) {
      this.recent.push({ ...this.totals });
    }
    // Keep the newest entry that is at least a window old as the start of the window.
    while (this.recent.length > 1 && now - this.recent[1]!.at >= this.recentWindowMs) {
      this.recent.shift();
    }
  }

  /** Integrates up to `now`, splitting at trace step boundaries. */
  private advance(now: number): void {
    let t = this.totals.at;
    if (now <= t) return;
    const { t0, stepMs, speeds } = this.schedule;
    while (t < now) {
      // The next step boundary after t; the speed changes only at boundaries inside the schedule.
      const next = Math.max(1, Math.floor((t - t0) / stepMs) + 1);
      const boundary = next < speeds.length ? t0 + next * stepMs : Infinity;
      const end = Math.min(now, boundary);
      const speed = this.speedAt(t);
      const dt = end - t;
      const own = (this.busy / this.workers) * speed * dt;
      this.totals.own += own;
      this.totals.host += (1 - speed) * dt + own;
      t = end;
    }
    this.totals.at = now;
  }
}

function clamp01(x: number): number {
  return Math.min(1, Math.max(0, x));
}
