import { pino } from 'pino';
import { mulberry32 } from '../../src/lps/forecast/random.js';
import { forecastConfigSchema } from '../../src/lps/forecast/config.js';
import { ForecastScorer } from '../../src/lps/forecast/scorer.js';
import type { StoredSample } from '../../src/lps/ring.js';
import type { Assessment, EndpointRecord } from '../../src/lps/types.js';
import { ACTIVE, push, record } from './scorer-support.js';

/** The simulated endpoints' world, at tick t. */
export interface SimWorld {
  /** CPU-seconds one request costs each endpoint. */
  cost: number[];
  /** Cores of each endpoint's host. */
  cores: number[];
  /** Fraction of each host's CPU taken by load that is not ours, at tick t. */
  background(t: number): number[];
  /** Requests/s the service receives at tick t. */
  total(t: number): number;
}

/** Which signals the simulated agents send (as `--signals` in the routing benchmark). */
export type Signals = 'full' | 'no-own-cpu' | 'no-requests' | 'host-only';

export interface LoopTrace {
  /** Per tick, the shares the endpoints received (the ones published the tick before). */
  shares: number[][];
  /** Per tick, each endpoint's host CPU. */
  utilization: number[][];
  /** Per tick, the assessments the scorer made from that tick's samples. */
  assessed: Array<Map<string, Assessment>>;
  /** True capacity (requests/s) per tick and endpoint: cores × (1 − background) / cost. */
  capacity: number[][];
}

/**
 * Closes the loop through the LPS's own scorer: each tick (1 s) every endpoint
 * gets the share published the tick before (equal at the start) of the
 * service's requests, serves what its CPU left by the background allows, and its
 * agent reports host CPU, own CPU and the requests completed (with some noise,
 * as real counters have); the ForecastScorer assesses them and its weights,
 * normalised as the prioritizer does, are the next shares.
 */
export async function closedLoop(
  world: SimWorld,
  ticks: number,
  opts: { signals?: Signals; noise?: number; seed?: number; config?: Record<string, unknown> } = {},
): Promise<LoopTrace> {
  const n = world.cost.length;
  const random = mulberry32(opts.seed ?? 1);
  const noise = opts.noise ?? 0.01;
  const scorer = new ForecastScorer({
    config: forecastConfigSchema.parse({ lstm: { enabled: false }, ...(opts.config ?? {}) }),
    logger: pino({ level: 'silent' }),
  });
  const records: EndpointRecord[] = world.cores.map((c, i) => {
    const r = record(`e${i}`);
    r.capacity = { ...r.capacity, cpuCores: c };
    return r;
  });
  const states = new Map(records.map((r) => [r.id, ACTIVE]));
  let shares = Array.from({ length: n }, () => 1 / n);
  const trace: LoopTrace = { shares: [], utilization: [], assessed: [], capacity: [] };
  let now = 1_700_000_000_000;
  const signals = opts.signals ?? 'full';
  for (let t = 0; t < ticks; t++) {
    now += 1000;
    const bg = world.background(t);
    const total = world.total(t);
    const capacity = bg.map((b, i) => (world.cores[i]! * (1 - b)) / world.cost[i]!);
    const utilization: number[] = [];
    records.forEach((r, i) => {
      const offered = shares[i]! * total;
      const served = Math.min(offered, capacity[i]!);
      const jitter = 1 + noise * (random() - 0.5) * 2;
      const own = Math.min(1 - bg[i]!, ((served * world.cost[i]!) / world.cores[i]!) * jitter);
      const host = Math.min(1, bg[i]! + own);
      utilization.push(host);
      const over: Partial<StoredSample> = { cpu: host, span: 1 };
      if (signals === 'full' || signals === 'no-requests') over.processCpu = own;
      if (signals === 'full' || signals === 'no-own-cpu') over.completed = Math.round(served);
      push(r, now, over);
    });
    const assessed = await scorer.assess(records, states, now);
    trace.shares.push(shares);
    trace.utilization.push(utilization);
    // A copy: the scorer writes its assessments again at the next tick.
    trace.assessed.push(structuredClone(assessed));
    trace.capacity.push(capacity);
    const w = records.map((r) => assessed.get(r.id)!.weight);
    const sum = w.reduce((a, b) => a + b, 0);
    shares = w.map((x) => x / sum);
  }
  return trace;
}

/** Largest tick-to-tick change of any share over the last `k` ticks. */
export function swing(trace: LoopTrace, k: number): number {
  let worst = 0;
  for (let t = trace.shares.length - k; t < trace.shares.length; t++)
    trace.shares[t]!.forEach(
      (s, i) => (worst = Math.max(worst, Math.abs(s - trace.shares[t - 1]![i]!))),
    );
  return worst;
}

/** Ticks in [from, to) where some share fell by at least `ratio` (the simulator's "cuts"). */
export function cuts(trace: LoopTrace, from: number, ratio = 0.2): number {
  let count = 0;
  for (let t = Math.max(1, from); t < trace.shares.length; t++)
    if (trace.shares[t]!.some((s, i) => s <= (1 - ratio) * trace.shares[t - 1]![i]!)) count++;
  return count;
}
