import { describe, expect, it } from 'vitest';
import { EventHeap } from '../../src/sim/heap.js';
import { figures } from '../../src/sim/metrics.js';
import { RoundRobinPicker } from '../../src/sim/policies/pickers.js';
import { UnweightedPolicy } from '../../src/sim/policies/weighted.js';
import { Rng } from '../../src/sim/rng.js';
import { simulate, type SimSetup } from '../../src/sim/simulator.js';
import type { IntervalReport } from '../../src/sim/types.js';

const single = () => new UnweightedPolicy('rr', (v, r) => new RoundRobinPicker(v, r));

function mm1(rate: number, speed: number, seed = 7): SimSetup {
  // 2000 intervals of 200 s: about 400,000 arrivals at rate 1
  const steps = 2000;
  return {
    interval: 200,
    serviceTime: 1,
    proxies: 1,
    workers: 1,
    queueLimit: 1e9,
    speed: [new Float64Array(steps).fill(speed)],
    rate: new Float64Array(steps).fill(rate),
    warmupSteps: 5,
    seed,
  };
}

describe('event heap', () => {
  it('pops in time order, ties in insertion order', () => {
    const heap = new EventHeap(2);
    const rng = new Rng(3);
    const times = Array.from({ length: 500 }, () => Math.floor(rng.next() * 50));
    times.forEach((t, i) => heap.push(t, i));
    const out: Array<[number, number]> = [];
    while (heap.size > 0) {
      const t = heap.peekTime();
      out.push([t, heap.pop()]);
    }
    const expected = times
      .map((t, i) => [t, i] as [number, number])
      .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    expect(out).toEqual(expected);
    expect(heap.pop()).toBe(-1);
  });
});

describe('rng', () => {
  it('is reproducible and roughly uniform, exponential with the asked mean', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const xs = Array.from({ length: 20000 }, () => a.next());
    expect(xs.slice(0, 10)).toEqual(Array.from({ length: 10 }, () => b.next()));
    expect(xs.reduce((s, x) => s + x, 0) / xs.length).toBeCloseTo(0.5, 1);
    const e = new Rng(1);
    let sum = 0;
    for (let i = 0; i < 50000; i++) sum += e.exp(3);
    expect(sum / 50000).toBeGreaterThan(2.9);
    expect(sum / 50000).toBeLessThan(3.1);
  });
});

describe('simulator', () => {
  it('a single M/M/1 queue matches theory: mean sojourn 1/(mu - lambda)', async () => {
    const setup = mm1(0.5, 1);
    const trace = await simulate(setup, single());
    const f = figures('rr', trace, setup, {
      slo: 4,
      cutRatio: 0.2,
      overloadThreshold: 0.9,
      window: 2,
    });
    const theory = 1 / (1 - 0.5);
    expect(Math.abs(f.mean - theory) / theory).toBeLessThan(0.03);
    // sojourn in M/M/1 is exponential with rate mu - lambda: its median is ln 2 / (mu - lambda)
    expect(Math.abs(f.p50 - Math.LN2 * theory) / (Math.LN2 * theory)).toBeLessThan(0.04);
    expect(f.dropped).toBe(0);
  });

  it('a slower endpoint (speed 0.5: half its CPU taken) is an M/M/1 queue with half the rate', async () => {
    const setup = mm1(0.25, 0.5);
    const trace = await simulate(setup, single());
    const f = figures('rr', trace, setup, {
      slo: 4,
      cutRatio: 0.2,
      overloadThreshold: 0.9,
      window: 2,
    });
    const theory = 1 / (0.5 - 0.25);
    expect(Math.abs(f.mean - theory) / theory).toBeLessThan(0.04);
  });

  it('drops arrivals beyond the queue limit', async () => {
    const setup = { ...mm1(2, 1), queueLimit: 5 };
    setup.rate = setup.rate.subarray(0, 200);
    setup.speed = [setup.speed[0]!.subarray(0, 200)];
    const trace = await simulate(setup, single());
    // an M/M/1/5 queue at load 2 drops about half of its arrivals
    expect(trace.dropped / trace.requests).toBeGreaterThan(0.4);
    expect(trace.dropped / trace.requests).toBeLessThan(0.6);
  });

  it('reports what an agent sees: host CPU = background + own CPU, and the requests completed', async () => {
    const steps = 400;
    const setup: SimSetup = {
      interval: 100,
      serviceTime: 1,
      proxies: 1,
      workers: 2,
      queueLimit: 1000,
      speed: [new Float64Array(steps).fill(0.6)],
      rate: new Float64Array(steps).fill(0.6),
      warmupSteps: 0,
      seed: 2,
    };
    const utils: number[] = [];
    const owns: number[] = [];
    let completed = 0;
    let latencySum = 0;
    const policy = single();
    const wrapped = {
      name: 'probe',
      init: policy.init.bind(policy),
      pick: policy.pick.bind(policy),
      onInterval: (_k: number, r: IntervalReport | undefined) => {
        if (!r) return;
        utils.push(r.utilisation[0]!);
        owns.push(r.ownCpu[0]!);
        // the background (1 − speed) is exactly host − own: measured, as an agent would
        expect(r.utilisation[0]! - r.ownCpu[0]!).toBeCloseTo(0.4, 9);
        completed += r.completed[0]!;
        latencySum += r.latencySum[0]!;
        expect(r.qps[0]).toBeCloseTo(r.completed[0]! / 100, 12);
      },
    };
    const trace = await simulate(setup, wrapped);
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    // background 0.4; our load: 0.6 req/s × 1 s of work / 0.6 speed over 2 workers × 0.6 = 0.3 of the CPU
    expect(mean(utils)).toBeGreaterThan(0.68);
    expect(mean(utils)).toBeLessThan(0.72);
    expect(mean(owns)).toBeGreaterThan(0.28);
    expect(mean(owns)).toBeLessThan(0.32);
    // every request reported except those completing in the last interval (reported after the run)
    expect(completed).toBeGreaterThan(trace.latencies.length - 200);
    expect(completed).toBeLessThanOrEqual(trace.latencies.length);
    expect(latencySum / completed).toBeCloseTo(mean(Array.from(trace.latencies)), 0);
  });
});
