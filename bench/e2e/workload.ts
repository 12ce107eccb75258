/**
 * The world one repetition runs in: each backend's speed per trace step (1 − its background CPU
 * from a real trace), the open-loop arrival rate per step (a request-count trace, or constant,
 * scaled to a mean fleet utilisation), and the Poisson arrivals themselves with each request's
 * work. Every arm of a repetition replays the same arrivals with the same work (common random
 * numbers), so the arms differ only in where requests go.
 */
import { Rng } from '../../src/sim/rng.js';
import { scaleArrivals } from '../../src/sim/scenarios.js';
import { toBackgroundFraction, type Trace } from '../../src/sim/traces.js';

/**
 * How the work of a request is distributed: exponential about the mean (its p99 is 4.6× the
 * mean, so the service time is most of every balancer's tail), or the mean for every request
 * (the tail is then where requests waited and how slow the backend they went to was).
 */
export type WorkDistribution = 'exponential' | 'fixed';

export interface WorkloadShape {
  backends: number;
  /** Workers per backend (a FIFO queue served by this many). */
  workers: number;
  /** Mean work of a request, seconds at full speed. */
  serviceTime: number;
  /** Mean fleet utilisation over the segment the arrival rate is scaled to. */
  utilisation: number;
  /** The arrival rate never exceeds this utilisation of a step's fleet capacity. */
  peakUtilisation: number;
  /** Background load is capped here so that no backend stops completely. */
  maxBackground: number;
  stepSeconds: number;
  /** CPU traces, one per backend (cycled, shifted 97 steps per cycle, if fewer). */
  cpuTraces: readonly Trace[];
  /** Request-count trace the arrival rate follows; undefined: a constant rate. */
  arrivalTrace: Trace | undefined;
}

/** One stretch of the traces, as every arm of a repetition sees it. */
export interface Segment {
  /** First trace step. */
  startStep: number;
  steps: number;
  stepSeconds: number;
  /** Per backend, per step: 1 − background, in (0, 1]. */
  speeds: Float64Array[];
  /** Per backend, per step: the requests/s it can complete (workers × speed / service time). */
  capacity: Float64Array[];
  /** Per step: the mean arrival rate, requests/s. */
  rates: Float64Array;
}

export function buildSegment(shape: WorkloadShape, startStep: number, steps: number): Segment {
  const fractions = shape.cpuTraces.map((t) => toBackgroundFraction(t));
  const speeds = Array.from({ length: shape.backends }, (_, e) => {
    const frac = fractions[e % fractions.length]!;
    const shift = Math.floor(e / fractions.length) * 97;
    return Float64Array.from({ length: steps }, (_, k) => {
      const background = frac[(startStep + shift + k) % frac.length]!;
      return 1 - Math.min(background, shape.maxBackground);
    });
  });
  const capacity = speeds.map((s) => s.map((x) => (shape.workers * x) / shape.serviceTime));
  const fleet = Float64Array.from({ length: steps }, (_, k) =>
    capacity.reduce((sum, c) => sum + c[k]!, 0),
  );
  const meanFleet = fleet.reduce((a, x) => a + x, 0) / steps;
  const arrival = shape.arrivalTrace?.values;
  const form = Float64Array.from({ length: steps }, (_, k) =>
    arrival ? Math.max(0, arrival[(startStep + k) % arrival.length]!) : 1,
  );
  const rates = scaleArrivals(
    form,
    shape.utilisation * meanFleet,
    fleet.map((c) => shape.peakUtilisation * c),
  );
  return { startStep, steps, stepSeconds: shape.stepSeconds, speeds, capacity, rates };
}

/** Requests of one repetition, in time order. */
export interface Arrivals {
  /** Milliseconds after the segment starts. */
  atMs: Float64Array;
  /** Work, seconds at full speed. */
  work: Float64Array;
  /** Which client (proxy or channel) sends it. */
  client: Uint8Array;
}

/**
 * A Poisson process whose rate is constant within a step (exact: the exponential gap is
 * memoryless, so a gap that crosses a step boundary is redrawn from the boundary at the new rate).
 */
export function poissonArrivals(
  segment: Segment,
  serviceTime: number,
  clients: number,
  seed: number,
  distribution: WorkDistribution,
): Arrivals {
  const rng = new Rng(seed);
  const gaps = rng.fork();
  const work = rng.fork();
  const pick = rng.fork();
  const at: number[] = [];
  const stepMs = segment.stepSeconds * 1000;
  for (let k = 0; k < segment.steps; k++) {
    const rate = segment.rates[k]! / 1000;
    if (rate <= 0) continue;
    let t = k * stepMs + gaps.exp(1 / rate);
    while (t < (k + 1) * stepMs) {
      at.push(t);
      t += gaps.exp(1 / rate);
    }
  }
  return {
    atMs: Float64Array.from(at),
    work: Float64Array.from(at, () =>
      distribution === 'fixed' ? serviceTime : work.exp(serviceTime),
    ),
    client: Uint8Array.from(at, () => pick.int(clients)),
  };
}

/** Share of each backend in a vector of non-negative numbers (equal shares if they sum to 0). */
export function shares(values: ArrayLike<number>): Float64Array {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  return Float64Array.from({ length: values.length }, (_, i) =>
    sum > 0 ? values[i]! / sum : 1 / values.length,
  );
}

/** Total variation distance of two distributions: the fraction of mass that sits elsewhere. */
export function totalVariation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d += Math.abs(a[i]! - b[i]!);
  return d / 2;
}

/** The capacity share of each backend at step k (clamped into the segment). */
export function capacityShares(segment: Segment, k: number): Float64Array {
  const step = Math.min(segment.steps - 1, Math.max(0, k));
  return shares(segment.capacity.map((c) => c[step]!));
}
