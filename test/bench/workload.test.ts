/**
 * The world of a repetition: speeds from the CPU traces, the arrival rate scaled to the mean
 * utilisation asked for (never above the peak cap), and Poisson arrivals at that rate.
 */
import { describe, expect, it } from 'vitest';
import { buildSegment, poissonArrivals, type WorkloadShape } from '../../bench/e2e/workload.js';

const trace = (name: string, values: number[]) => ({ name, values: Float64Array.from(values) });

function shape(overrides: Partial<WorkloadShape> = {}): WorkloadShape {
  return {
    backends: 3,
    workers: 4,
    serviceTime: 0.1,
    utilisation: 0.7,
    peakUtilisation: 0.95,
    maxBackground: 0.95,
    stepSeconds: 1,
    // Percent, as NAB's CPU series are; the third backend reuses the first trace, 97 steps on.
    cpuTraces: [trace('a', [0, 50, 100, 20]), trace('b', [10, 10, 10, 10])],
    arrivalTrace: trace('elb', [1, 3, 1, 3]),
    ...overrides,
  };
}

describe('buildSegment', () => {
  it('turns background CPU into speed (capped) and scales arrivals to the mean utilisation', () => {
    const s = buildSegment(shape(), 0, 4);
    // 100 % background is capped at 0.95: the backend keeps 5 % of its speed.
    [1, 0.5, 0.05, 0.8].forEach((speed, k) => expect(s.speeds[0]![k]).toBeCloseTo(speed, 12));
    expect(Array.from(s.speeds[1]!)).toEqual([0.9, 0.9, 0.9, 0.9]);
    // 97 mod 4 = 1: the third backend starts one step into trace a.
    expect(s.speeds[2]![0]).toBe(0.5);
    const fleet = (k: number) => s.capacity.reduce((a, c) => a + c[k]!, 0);
    let meanCapacity = 0;
    let meanRate = 0;
    for (let k = 0; k < 4; k++) {
      expect(s.rates[k]!).toBeLessThanOrEqual(0.95 * fleet(k) + 1e-9);
      meanCapacity += fleet(k) / 4;
      meanRate += s.rates[k]! / 4;
    }
    expect(meanRate / meanCapacity).toBeCloseTo(0.7, 6);
  });

  it('gives a constant rate without an arrival trace', () => {
    const s = buildSegment(
      shape({ arrivalTrace: undefined, cpuTraces: [trace('flat', [0])] }),
      0,
      3,
    );
    expect(Array.from(s.rates)).toEqual([84, 84, 84]); // 0.7 × 3 backends × 4 / 0.1 s
  });
});

describe('poissonArrivals', () => {
  it('arrives at the step rate, with work of the mean asked for, spread over the clients', () => {
    const s = buildSegment(
      shape({ arrivalTrace: undefined, cpuTraces: [trace('flat', [0])] }),
      0,
      100,
    );
    const a = poissonArrivals(s, 0.1, 2, 7, 'exponential');
    // 84/s over 100 s: a Poisson count of mean 8,400, sd ≈ 92; 5 sd either side.
    expect(Math.abs(a.atMs.length - 8400)).toBeLessThan(5 * Math.sqrt(8400));
    for (let i = 1; i < a.atMs.length; i++)
      expect(a.atMs[i]!).toBeGreaterThanOrEqual(a.atMs[i - 1]!);
    const meanWork = a.work.reduce((x, y) => x + y, 0) / a.work.length;
    // Exponential work, mean 0.1 s, sd 0.1 s: the mean of ~8,400 is within 5 sd/√n of 0.1.
    expect(Math.abs(meanWork - 0.1)).toBeLessThan((5 * 0.1) / Math.sqrt(a.work.length));
    const first = a.client.reduce((n, c) => n + (c === 0 ? 1 : 0), 0);
    expect(Math.abs(first / a.client.length - 0.5)).toBeLessThan(
      5 * Math.sqrt(0.25 / a.client.length),
    );
    // The same seed gives the same arrivals (every arm of a repetition replays them).
    expect(poissonArrivals(s, 0.1, 2, 7, 'exponential').atMs).toEqual(a.atMs);
  });

  it('gives every request the mean work when the work is fixed, at the same instants', () => {
    const s = buildSegment(
      shape({ arrivalTrace: undefined, cpuTraces: [trace('flat', [0])] }),
      0,
      20,
    );
    const fixed = poissonArrivals(s, 0.1, 2, 7, 'fixed');
    expect(fixed.work.length).toBeGreaterThan(1000);
    expect(new Set(fixed.work)).toEqual(new Set([0.1]));
    // Only the work differs: the arrivals and their clients are those of exponential work.
    const exponential = poissonArrivals(s, 0.1, 2, 7, 'exponential');
    expect(fixed.atMs).toEqual(exponential.atMs);
    expect(fixed.client).toEqual(exponential.client);
  });
});
