/**
 * One run of the real-socket benchmark: per configuration (seconds per trace step, the agents'
 * interval), a fresh `augur serve` and fleet, the bounds' control plane and the xDS observers;
 * then a short priming stretch, and the repetitions, each running every arm over the same trace
 * segment and the same arrivals, in an order rotated by one arm per repetition. Everything
 * started is stopped, also when the run fails or is interrupted (`signal`).
 */
import { createLogger } from '../../src/common/logger.js';
import { parseHostPort } from '../../src/common/address.js';
import { openArmClient, type ArmClient, type ArmName, type ArmTargets } from './arms.js';
import { BoundsPlane, boundService } from './bounds.js';
import {
  startDataPlaneHost,
  startFleet,
  startServe,
  type Child,
  type ServeChild,
} from './children.js';
import { nowMs, sleepUntil, waitFor } from './clock.js';
import { armFigures, type ArmRun } from './figures.js';
import type { FleetStarted, FleetStats } from './fleet-protocol.js';
import { replay } from './loadgen.js';
import { AssignmentWatcher } from './observe.js';
import type { E2eConfig, E2eOptions } from './options.js';
import { createProbe, type Probe, type ProcessProbe } from './process-probe.js';
import {
  buildSegment,
  poissonArrivals,
  type Arrivals,
  type Segment,
  type WorkloadShape,
} from './workload.js';

export const SERVICE = 'e2e';

export interface ConfigResult {
  config: E2eConfig;
  /** Mean arrival rate over the measured repetitions, requests/s. */
  meanRate: number;
  runs: ArmRun[];
  /** Arm runs that could not be measured, and why. */
  errors: Array<{ rep: number; arm: ArmName; message: string }>;
  /** Seconds the configuration took, start to stop. */
  wallSeconds: number;
}

/** Progress lines for whoever watches (stderr by default). */
export type Progress = (line: string) => void;

interface Plane {
  serve: ServeChild;
  fleet: Child;
  dataPlanes: Child;
  bounds: BoundsPlane;
  targets: ArmTargets;
  augurWatcher: AssignmentWatcher;
  boundsWatcher: AssignmentWatcher;
  harnessProbe: Probe;
}

export async function runConfig(
  options: E2eOptions,
  config: E2eConfig,
  progress: Progress,
  signal: AbortSignal,
): Promise<ConfigResult> {
  const startedAt = nowMs();
  const cleanup: Array<() => Promise<unknown>> = [];
  try {
    const plane = await startPlane(options, config, cleanup, progress);
    const shape = workloadShape(options, config);
    const stepMs = config.stepSeconds * 1000;
    const warmupSteps = Math.ceil((config.warmupSeconds * 1000) / stepMs);
    const measuredSteps = Math.max(1, Math.round((config.measureSeconds * 1000) / stepMs));
    const segmentSteps = warmupSteps + measuredSteps;

    if (options.primeSeconds > 0) {
      const primeSteps = Math.max(1, Math.round((options.primeSeconds * 1000) / stepMs));
      // After every repetition's stretch, so that no arm is measured on what augur was primed with.
      const segment = buildSegment(
        shape,
        options.startStep + options.reps * segmentSteps,
        primeSteps,
      );
      progress(`priming augur with ${options.primeSeconds} s of round-robin traffic`);
      await runArm(
        plane,
        options,
        'round-robin',
        -1,
        0,
        segment,
        arrivalsOf(options, segment, -1),
        0,
        signal,
      );
    }

    const runs: ArmRun[] = [];
    const errors: ConfigResult['errors'] = [];
    let rateSum = 0;
    for (let rep = 0; rep < options.reps; rep++) {
      const segment = buildSegment(shape, options.startStep + rep * segmentSteps, segmentSteps);
      rateSum += segment.rates.slice(warmupSteps).reduce((a, x) => a + x, 0) / measuredSteps;
      const arrivals = arrivalsOf(options, segment, rep);
      const order = options.arms.map((_, i) => options.arms[(i + rep) % options.arms.length]!);
      for (const [position, arm] of order.entries()) {
        if (signal.aborted) throw new Error('interrupted');
        let run: ArmRun | undefined;
        try {
          run = await runArm(
            plane,
            options,
            arm,
            rep,
            position,
            segment,
            arrivals,
            warmupSteps,
            signal,
          );
        } catch (err) {
          if (signal.aborted) throw new Error('interrupted');
          // One arm's trouble (say, its clients never became ready) is reported, not fatal.
          errors.push({ rep, arm, message: (err as Error).message });
          progress(
            `${config.stepSeconds} s steps, rep ${rep + 1}, ${arm} failed: ${(err as Error).message}`,
          );
          continue;
        }
        if (signal.aborted) throw new Error('interrupted');
        if (!run) continue;
        runs.push(run);
        progress(
          `${config.stepSeconds} s steps, rep ${rep + 1}/${options.reps}, ${arm}: ` +
            `p50 ${run.p50.ms.toFixed(0)} ms, p99 ${run.p99.ms.toFixed(0)} ms, ` +
            `${run.failed} failed of ${run.requests}, traffic TVD ${run.trafficTvd.toFixed(3)}` +
            (run.invalid ? ` — INVALID: ${run.invalid}` : ''),
        );
      }
    }
    return {
      config,
      meanRate: rateSum / options.reps,
      runs,
      errors,
      wallSeconds: (nowMs() - startedAt) / 1000,
    };
  } finally {
    for (const stop of cleanup.reverse()) {
      await stop().catch((err: unknown) => progress(`while stopping: ${(err as Error).message}`));
    }
  }
}

async function startPlane(
  options: E2eOptions,
  config: E2eConfig,
  cleanup: Array<() => Promise<unknown>>,
  progress: Progress,
): Promise<Plane> {
  progress(
    `starting augur serve (agents every ${config.reportInterval} s) and ${options.backends} backends`,
  );
  const serve = await startServe(config.reportInterval);
  cleanup.push(() => serve.stop());
  const fleet = startFleet();
  cleanup.push(() => fleet.stop());
  const started = await fleet.ipc.call<FleetStarted>(
    'start',
    {
      lps: serve.grpcAddress,
      service: SERVICE,
      backends: options.backends,
      workers: options.workers,
      reportInterval: config.reportInterval,
    },
    60_000,
  );
  cleanup.push(() => fleet.ipc.call('stop', {}, 20_000));
  const dataPlanes = startDataPlaneHost();
  cleanup.push(() => dataPlanes.stop());
  const endpoints = started.backends.map((b) => ({ id: b.id, ...parseHostPort(b.address) }));
  const bounds = await BoundsPlane.start(SERVICE, endpoints, createLogger('e2e-bounds', 'warn'));
  cleanup.push(() => bounds.stop());
  const backendOfPort = new Map(endpoints.map((e, i) => [e.port, i]));
  const augurWatcher = new AssignmentWatcher(serve.grpcAddress, [SERVICE], backendOfPort);
  cleanup.push(() => augurWatcher.close());
  const boundsWatcher = new AssignmentWatcher(
    bounds.address,
    [boundService(SERVICE, 'perfect-reactive'), boundService(SERVICE, 'oracle')],
    backendOfPort,
  );
  cleanup.push(() => boundsWatcher.close());
  await waitFor(
    `augur to publish all ${options.backends} backends over xDS`,
    () => {
      const latest = augurWatcher.latest(SERVICE);
      return latest && latest.shares.every((s) => s > 0) ? true : undefined;
    },
    60_000,
  );
  return {
    serve,
    fleet,
    dataPlanes,
    bounds,
    augurWatcher,
    boundsWatcher,
    harnessProbe: createProbe(),
    targets: {
      service: SERVICE,
      backends: started.backends,
      augur: serve.grpcAddress,
      extProc: serve.extProcAddress,
      bounds: bounds.address,
      dataPlanes: dataPlanes.ipc,
    },
  };
}

function workloadShape(options: E2eOptions, config: E2eConfig): WorkloadShape {
  return {
    backends: options.backends,
    workers: options.workers,
    serviceTime: options.serviceTime,
    utilisation: options.utilisation,
    peakUtilisation: options.peakUtilisation,
    maxBackground: options.maxBackground,
    stepSeconds: config.stepSeconds,
    cpuTraces: options.cpuTraces,
    arrivalTrace: options.load === 'trace' ? options.arrivalTrace : undefined,
  };
}

function arrivalsOf(options: E2eOptions, segment: Segment, rep: number): Arrivals {
  return poissonArrivals(
    segment,
    options.serviceTime,
    options.clients,
    options.seed * 1009 + rep + 1,
    options.work,
  );
}

/** Time given to the schedule and the bounds to be in place before the segment starts. */
const LEAD_MS = 300;

/**
 * Runs one arm over a segment: fresh clients, the backends and the bounds following the segment
 * from t0, the arrivals replayed from t0, probes reset at the start of the measured window and
 * read at its end; then the clients closed and the backends drained. `rep` −1 is the priming run,
 * which measures nothing.
 */
async function runArm(
  plane: Plane,
  options: E2eOptions,
  arm: ArmName,
  rep: number,
  order: number,
  segment: Segment,
  arrivals: Arrivals,
  warmupSteps: number,
  signal: AbortSignal,
): Promise<ArmRun | undefined> {
  const deadlineMs = options.deadlineSeconds * 1000;
  const clients: ArmClient[] = [];
  const onAbort = (): void => void Promise.allSettled(clients.map((c) => c.close()));
  signal.addEventListener('abort', onAbort);
  try {
    for (let c = 0; c < options.clients; c++) {
      clients.push(
        await openArmClient(
          arm,
          plane.targets,
          `e2e-${arm}-rep${rep}-client${c}`,
          deadlineMs,
          30_000,
        ),
      );
    }
    const stepMs = segment.stepSeconds * 1000;
    const t0 = nowMs() + LEAD_MS;
    await plane.fleet.ipc.call('schedule', {
      t0,
      stepMs,
      speeds: segment.speeds.map((s) => Array.from(s)),
    });
    plane.bounds.follow(segment, t0);
    const from = t0 + warmupSteps * stepMs;
    const to = t0 + segment.steps * stepMs;
    const atStart = rep >= 0 ? measureFrom(plane, from, signal) : undefined;
    const atEnd = rep >= 0 ? measureTo(plane, to, signal) : undefined;
    const log = await replay(arrivals, clients, t0, deadlineMs, signal);
    const [start, end] = await Promise.all([atStart, atEnd]);
    const detours: Record<string, number> = {};
    for (const closed of await Promise.all(clients.splice(0).map((c) => c.close()))) {
      for (const [why, n] of Object.entries(closed)) detours[why] = (detours[why] ?? 0) + n;
    }
    plane.bounds.stopFollowing();
    await drain(plane, deadlineMs);
    if (!start || !end || rep < 0) return undefined;
    const connections = (s: FleetStats) =>
      s.backends.reduce(
        (a, b) => a + (arm === 'augur-rrm' ? b.httpWorkConnections : b.grpcConnections),
        0,
      );
    const augurXds = arm === 'augur-xds' || arm === 'augur-xds-locality';
    const watcher = augurXds ? plane.augurWatcher : plane.boundsWatcher;
    const xdsService = augurXds
      ? SERVICE
      : arm === 'perfect-reactive' || arm === 'oracle'
        ? boundService(SERVICE, arm)
        : undefined;
    return armFigures({
      arm,
      rep,
      order,
      segment,
      arrivals,
      log,
      t0,
      from,
      to,
      deadlineMs,
      published: xdsService && !watcher.failure ? watcher.between(xdsService, from, to) : undefined,
      reconnects: connections(end.fleet) - connections(start.fleet),
      backendTimerLateP99Ms: end.fleet.backends.reduce((a, b) => Math.max(a, b.timerLateP99Ms), 0),
      processes: {
        harness: end.harness,
        serve: end.serve,
        fleet: end.fleet.probe,
        dataPlanes: end.dataPlanes,
      },
      detours,
      agentSamples: agentTotal(end.fleet, 'ticks') - agentTotal(start.fleet, 'ticks'),
      agentSamplesSkipped:
        agentTotal(end.fleet, 'failedTicks') - agentTotal(start.fleet, 'failedTicks'),
      lateLimitMs: options.lateLimitMs,
    });
  } finally {
    signal.removeEventListener('abort', onAbort);
    await Promise.allSettled(clients.map((c) => c.close()));
  }
}

function agentTotal(stats: FleetStats, key: 'ticks' | 'failedTicks'): number {
  return stats.agents.reduce((a, x) => a + x[key], 0);
}

/** At the start of the measured window: every probe reset, the fleet's counters read. */
async function measureFrom(
  plane: Plane,
  at: number,
  signal: AbortSignal,
): Promise<{ fleet: FleetStats }> {
  await sleepUntil(at, signal);
  plane.harnessProbe.reset();
  const [, , , fleet] = await Promise.all([
    plane.serve.ipc.call('probe-reset'),
    plane.dataPlanes.ipc.call('probe-reset'),
    plane.fleet.ipc.call('reset'),
    plane.fleet.ipc.call<FleetStats>('stats'),
  ]);
  return { fleet };
}

/** At the end of the measured window: every probe and the fleet's counters read. */
async function measureTo(
  plane: Plane,
  at: number,
  signal: AbortSignal,
): Promise<{
  fleet: FleetStats;
  serve: ProcessProbe;
  dataPlanes: ProcessProbe;
  harness: ProcessProbe;
}> {
  await sleepUntil(at, signal);
  const harness = plane.harnessProbe.read();
  const [serve, dataPlanes, fleet] = await Promise.all([
    plane.serve.ipc.call<ProcessProbe>('probe'),
    plane.dataPlanes.ipc.call<ProcessProbe>('probe'),
    plane.fleet.ipc.call<FleetStats>('stats'),
  ]);
  return { fleet, serve, dataPlanes, harness };
}

/** Waits until no backend holds a request (abandoned ones are skipped as workers free up). */
async function drain(plane: Plane, deadlineMs: number): Promise<void> {
  await waitFor(
    'the backends to drain',
    async () => {
      const s = await plane.fleet.ipc.call<FleetStats>('stats');
      return s.backends.every((b) => b.queued === 0 && b.busy === 0) ? true : undefined;
    },
    deadlineMs + 30_000,
    200,
  );
}
