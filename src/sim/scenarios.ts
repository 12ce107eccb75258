import { join } from 'node:path';
import { Rng } from './rng.js';
import { RUN_DEFAULTS } from './spec.js';
import type { SimSetup } from './simulator.js';
import {
  DEFAULT_ARRIVAL_TRACE,
  DEFAULT_CPU_TRACES,
  defaultTraceDir,
  readTrace,
  toBackgroundFraction,
  type Trace,
} from './traces.js';

/**
 * What a scenario does to the traces: replay them (`traces`); add noisy
 * neighbours ramping up on some endpoints, a periodic batch job on some, or a
 * flash crowd of arrivals; replace them by a noisy diurnal cycle; or hold each
 * endpoint at its mean (`constant`).
 */
export type ScenarioKind =
  'traces' | 'flash-crowd' | 'noisy-neighbour' | 'batch-job' | 'diurnal' | 'constant';

/** Everything that shapes a benchmark world; defaults in SCENARIO_DEFAULTS. */
export interface ScenarioOptions {
  kind: ScenarioKind;
  endpoints: number;
  proxies: number;
  /** Workers per endpoint (each endpoint is a FIFO queue with this many servers). */
  workers: number;
  /** Monitoring interval, seconds; one trace step lasts one interval. */
  interval: number;
  /** Mean service time of a request on an idle endpoint, seconds. */
  serviceTime: number;
  /** Mean fleet utilisation the arrival rate is scaled to. */
  targetUtilisation: number;
  /**
   * Cap of the arrival rate as a utilisation of the step's fleet capacity: the
   * ELB trace's peaks are 4× its mean at p99, which no routing can absorb; a
   * fleet sized for its peak (as an autoscaler keeps it) never sees more.
   */
  peakUtilisation: number;
  /** Simulated time measured (after warm-up), seconds; at least `minSteps` intervals. */
  simulatedSeconds: number;
  minSteps: number;
  /** Intervals simulated before measuring (forecasters need history). */
  warmupSteps: number;
  /** First trace step used. */
  startStep: number;
  queueLimit: number;
  /** Background load is capped here so that no endpoint stops completely. */
  maxBackground: number;
  seed: number;
  /** Background CPU traces, one per endpoint (cycled, shifted in time, if fewer). */
  cpuTraces: Trace[];
  /** Request-count trace the arrival rate follows. */
  arrivalTrace: Trace;
}

export const SCENARIO_DEFAULTS = {
  kind: 'traces' as ScenarioKind,
  endpoints: 10,
  proxies: 8,
  workers: 4,
  interval: RUN_DEFAULTS.interval,
  serviceTime: 0.02,
  targetUtilisation: 0.7,
  peakUtilisation: 0.95,
  simulatedSeconds: 1800,
  minSteps: 60,
  warmupSteps: 30,
  startStep: 0,
  queueLimit: 100,
  maxBackground: 0.95,
  seed: 1,
};

/** The default traces (NAB) from `dir`. */
export function loadDefaultTraces(dir = defaultTraceDir()): {
  cpuTraces: Trace[];
  arrivalTrace: Trace;
} {
  return {
    cpuTraces: DEFAULT_CPU_TRACES.map((f) => readTrace(join(dir, f))),
    arrivalTrace: readTrace(join(dir, DEFAULT_ARRIVAL_TRACE)),
  };
}

/** A built world plus what the figures need to know about it. */
export interface Scenario {
  setup: SimSetup;
  options: ScenarioOptions;
  /** Fleet capacity per step, requests/s. */
  capacity: Float64Array;
}

/** Builds the speed and arrival-rate series of one scenario. */
export function buildScenario(opts: ScenarioOptions): Scenario {
  const T = opts.interval;
  const measured = Math.max(opts.minSteps, Math.round(opts.simulatedSeconds / T));
  const steps = measured + opts.warmupSteps;
  const rng = new Rng(opts.seed ^ 0x5eed);
  const backgrounds = Array.from({ length: opts.endpoints }, (_, e) => {
    const trace = opts.cpuTraces[e % opts.cpuTraces.length];
    const shift = Math.floor(e / opts.cpuTraces.length) * 97;
    const frac = toBackgroundFraction(trace);
    return Float64Array.from(
      { length: steps },
      (_, k) => frac[(opts.startStep + shift + k) % frac.length],
    );
  });
  if (opts.kind === 'noisy-neighbour') addNoisyNeighbours(backgrounds, rng);
  if (opts.kind === 'batch-job') addBatchJobs(backgrounds);
  if (opts.kind === 'diurnal') diurnalCycles(backgrounds, rng);
  if (opts.kind === 'constant') {
    for (const b of backgrounds) b.fill(b.reduce((a, x) => a + x, 0) / b.length);
  }
  const speed = backgrounds.map((b) => b.map((x) => 1 - Math.min(x, opts.maxBackground)));
  const capacity = Float64Array.from({ length: steps }, (_, k) =>
    speed.reduce((sum, s) => sum + (opts.workers * s[k]) / opts.serviceTime, 0),
  );
  const meanCapacity = capacity.reduce((a, x) => a + x, 0) / steps;

  const shape =
    opts.kind === 'constant'
      ? new Float64Array(steps).fill(1)
      : Float64Array.from({ length: steps }, (_, k) => {
          const v = opts.arrivalTrace.values;
          return Math.max(0, v[(opts.startStep + k) % v.length]);
        });
  const cap = capacity.map((c) => opts.peakUtilisation * c);
  const rate = scaleArrivals(shape, opts.targetUtilisation * meanCapacity, cap);
  if (opts.kind === 'flash-crowd') addFlashCrowd(rate, opts.warmupSteps, measured);

  return {
    setup: {
      interval: T,
      serviceTime: opts.serviceTime,
      proxies: opts.proxies,
      workers: opts.workers,
      queueLimit: opts.queueLimit,
      speed,
      rate,
      warmupSteps: opts.warmupSteps,
      seed: opts.seed,
    },
    options: opts,
    capacity,
  };
}

/**
 * Scales `shape` so that min(s × shape, cap) has the given mean (bisection on
 * s: the cap makes the relation non-linear). `cap` is per step.
 */
export function scaleArrivals(shape: Float64Array, mean: number, cap: Float64Array): Float64Array {
  const meanAt = (s: number) =>
    shape.reduce((a, x, k) => a + Math.min(s * x, cap[k]), 0) / shape.length;
  let lo = 0;
  let hi = 1;
  while (meanAt(hi) < mean && hi < 1e12) hi *= 2;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (meanAt(mid) < mean) lo = mid;
    else hi = mid;
  }
  return shape.map((x, k) => Math.min(hi * x, cap[k]));
}

/** A flash crowd: halfway through, the arrival rate rises 1.5× over 3 intervals, holds, and falls back. */
function addFlashCrowd(rate: Float64Array, warmup: number, measured: number): void {
  const start = warmup + Math.floor(measured / 2);
  const hold = Math.max(10, Math.floor(measured / 10));
  const ramp = 3;
  for (let k = start; k < Math.min(rate.length, start + 2 * ramp + hold); k++) {
    const i = k - start;
    const f = i < ramp ? (i + 1) / ramp : i < ramp + hold ? 1 : (2 * ramp + hold - i) / ramp;
    rate[k] *= 1 + 0.5 * Math.max(0, Math.min(1, f));
  }
}

/**
 * A periodic batch job (a cron job sharing the host): on three endpoints, every
 * 90 intervals (each endpoint at its own phase) a job takes 55 % more CPU within
 * one interval, holds for 25 intervals and stops at once. Periodic, so
 * foreseeable in principle; sudden, so no trend announces it.
 */
function addBatchJobs(backgrounds: Float64Array[]): void {
  const victims = [1, 4, 7].filter((e) => e < backgrounds.length);
  const period = 90;
  const length = 25;
  victims.forEach((e, i) => {
    const b = backgrounds[e];
    const phase = 20 + i * 30;
    for (let k = 0; k < b.length; k++)
      if ((k - phase + period * 1000) % period < length) b[k] = Math.min(1, b[k] + 0.55);
  });
}

/**
 * A diurnal cycle with noise, replacing the traces: each endpoint's background
 * is 0.35 + 0.25·sin(2π(k/240 + e/n)) plus AR(1) noise (coefficient 0.8,
 * innovations with a standard deviation of 0.04): a day compressed into 240
 * intervals, every endpoint at its own phase (hosts in other time zones, or
 * batch windows), so capacity keeps moving between endpoints smoothly.
 */
function diurnalCycles(backgrounds: Float64Array[], rng: Rng): void {
  const n = backgrounds.length;
  backgrounds.forEach((b, e) => {
    let noise = 0;
    for (let k = 0; k < b.length; k++) {
      noise = 0.8 * noise + 0.04 * gaussian(rng);
      const cycle = 0.35 + 0.25 * Math.sin(2 * Math.PI * (k / 240 + e / n));
      b[k] = Math.min(1, Math.max(0, cycle + noise));
    }
  });
}

/** A standard normal draw (Box-Muller). */
function gaussian(rng: Rng): number {
  const u = 1 - rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

/**
 * Noisy neighbours: on three endpoints, batch jobs start at random (a mean of
 * 40 intervals apart), ramp up over 3 intervals to 60 % more background CPU,
 * hold 8 to 20 intervals and ramp down over 3.
 */
function addNoisyNeighbours(backgrounds: Float64Array[], rng: Rng): void {
  const victims = [1, 4, 7].filter((e) => e < backgrounds.length);
  for (const e of victims) {
    const b = backgrounds[e];
    let k = Math.floor(rng.exp(40));
    while (k < b.length) {
      const hold = 8 + rng.int(13);
      const ramp = 3;
      for (let i = 0; i < 2 * ramp + hold && k + i < b.length; i++) {
        const f = i < ramp ? (i + 1) / ramp : i < ramp + hold ? 1 : (2 * ramp + hold - i) / ramp;
        b[k + i] = Math.min(1, b[k + i] + 0.6 * f);
      }
      k += 2 * ramp + hold + Math.floor(rng.exp(40));
    }
  }
}
