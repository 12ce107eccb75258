import { EventHeap } from './heap.js';
import { Rng } from './rng.js';
import type { FleetView, IntervalReport, RoutingPolicy } from './types.js';

/**
 * One run's world: endpoints whose speed changes every interval, and the
 * arrival rate of each interval. Built by scenarios.ts from traces, or by
 * hand in tests.
 */
export interface SimSetup {
  /** Monitoring interval, seconds: one step of the speed and rate series. */
  interval: number;
  /** Mean work of a request, seconds on an idle endpoint with all its CPU. */
  serviceTime: number;
  proxies: number;
  /**
   * Workers per endpoint: each endpoint is one FIFO queue served by this many
   * workers (M/M/c when speed and rate are constant). Each worker runs at the
   * endpoint's speed: background load slows every thread alike.
   */
  workers: number;
  /** Requests an endpoint holds (in service + waiting); an arrival beyond it is dropped. */
  queueLimit: number;
  /**
   * Per endpoint, per step: the fraction of the endpoint's CPU left to our
   * requests (1 − background load), in (0, 1]. Its service rate is speed / serviceTime.
   */
  speed: Float64Array[];
  /** Per step: mean arrivals per second over the whole fleet (a Poisson process). */
  rate: Float64Array;
  /** Steps at the start whose requests are not counted (policies and forecasters warm up). */
  warmupSteps: number;
  seed: number;
}

/** Everything measured in one run, raw; metrics.ts turns it into figures. */
export interface SimTrace {
  /** Latency of each completed, counted request, seconds (in completion order). */
  latencies: Float64Array;
  /** Counted requests (after warm-up), completed or dropped. */
  requests: number;
  dropped: number;
  /** Per step, per endpoint: the policy's intended share (NaN if it has none). */
  shares: Float64Array[];
  /** Per step, per endpoint: requests sent to it. */
  sent: Float64Array[];
  /** Per step, per endpoint: the policy's capacity estimate, requests/s (NaN if it has none). */
  capacities: Float64Array[];
}

/**
 * Runs one policy over one setup: a discrete-event simulation of Poisson
 * arrivals spread uniformly over the proxies, each routed by the policy to one
 * of N endpoints, each a FIFO queue with `workers` servers.
 *
 * FIFO with a known speed schedule lets a request's start and completion be
 * computed when it is dispatched (it takes the first worker to free up, and
 * later arrivals never start before it), so the
 * event queue holds only completions; arrivals are drawn one ahead and
 * interval boundaries are known. The same seed gives the same run.
 */
export async function simulate(setup: SimSetup, policy: RoutingPolicy): Promise<SimTrace> {
  const { interval: T, serviceTime, proxies: K, queueLimit } = setup;
  const N = setup.speed.length;
  const steps = setup.rate.length;
  const rng = new Rng(setup.seed);
  const arrivalRng = rng.fork();
  const workRng = rng.fork();
  const proxyRng = rng.fork();
  const policyRng = rng.fork();

  const serverInflight = new Int32Array(N);
  const proxyInflight = new Int32Array(K * N);
  const C = setup.workers;
  // when each worker of each endpoint is next free
  const freeAt = new Float64Array(N * C);
  const busy = setup.speed.map(() => new Float64Array(steps));
  const completions = setup.speed.map(() => new Float64Array(steps));
  const latencySum = setup.speed.map(() => new Float64Array(steps));
  const drops = setup.speed.map(() => new Float64Array(steps));
  // Probe answers (Prequal): per endpoint, recent latencies by the endpoint's
  // requests in flight when the request arrived, so that an idle endpoint
  // answers with what an idle endpoint delivers, not with stale queueing.
  const BANDS = [0, 1, 2, 3, 4, 6, 9, 13, 21, 41];
  const bandOf = (rif: number): number => {
    let b = 0;
    while (b + 1 < BANDS.length && rif >= BANDS[b + 1]) b++;
    return b;
  };
  const RING = 8;
  const NB = BANDS.length;
  const bandLat = new Float64Array(N * NB * RING);
  const bandCount = new Int32Array(N * NB);
  const scratch = new Float64Array(RING);
  const medianCache = new Float64Array(N * NB).fill(NaN);
  const bandMedian = (e: number, b: number): number => {
    const i = e * NB + b;
    if (!Number.isNaN(medianCache[i])) return medianCache[i];
    const n = Math.min(bandCount[i], RING);
    for (let j = 0; j < n; j++) scratch[j] = bandLat[i * RING + j];
    return (medianCache[i] = scratch.subarray(0, n).sort()[n >> 1]);
  };

  // requests in flight, by slot
  let cap = 1024;
  let reqArrival = new Float64Array(cap);
  let reqEndpoint = new Int32Array(cap);
  let reqProxy = new Int32Array(cap);
  let reqCounted = new Uint8Array(cap);
  let reqRif = new Int32Array(cap);
  const free: number[] = [];
  let nextSlot = 0;
  const heap = new EventHeap(4096);

  const latencies: number[] = [];
  let requests = 0;
  let dropped = 0;
  const shares: Float64Array[] = [];
  const sent: Float64Array[] = [];
  const capacities: Float64Array[] = [];

  let now = 0;
  const view: FleetView = {
    endpoints: N,
    proxies: K,
    workers: setup.workers,
    interval: T,
    serviceTime,
    now: () => now,
    proxyInflight: (p, e) => proxyInflight[p * N + e],
    serverInflight: (e) => serverInflight[e],
    latencyEstimate: (e) => {
      // the band of the current count, else the nearest band with data
      const b0 = bandOf(serverInflight[e]);
      for (let d = 0; d < NB; d++) {
        if (b0 - d >= 0 && bandCount[e * NB + b0 - d] > 0) return bandMedian(e, b0 - d);
        if (b0 + d < NB && bandCount[e * NB + b0 + d] > 0) return bandMedian(e, b0 + d);
      }
      return serviceTime;
    },
  };
  policy.init(view, policyRng);

  const speedAt = (e: number, k: number): number => setup.speed[e][Math.min(k, steps - 1)];

  /** Completion time of `work` started at `start` on endpoint e; books its busy time per step. */
  const serve = (e: number, start: number, work: number): number => {
    let t = start;
    let k = Math.floor(t / T);
    let w = work;
    for (;;) {
      const end = (k + 1) * T;
      if (end <= t) {
        k++;
        continue;
      }
      const c = speedAt(e, k);
      const avail = (end - t) * c;
      if (avail >= w) {
        const dt = w / c;
        if (k < steps) busy[e][k] += dt;
        return t + dt;
      }
      w -= avail;
      if (k < steps) busy[e][k] += end - t;
      t = end;
      k++;
    }
  };

  const allocSlot = (): number => {
    if (free.length > 0) return free.pop()!;
    if (nextSlot === cap) {
      cap *= 2;
      const a = new Float64Array(cap);
      a.set(reqArrival);
      reqArrival = a;
      const b = new Int32Array(cap);
      b.set(reqEndpoint);
      reqEndpoint = b;
      const c = new Int32Array(cap);
      c.set(reqProxy);
      reqProxy = c;
      const d = new Uint8Array(cap);
      d.set(reqCounted);
      reqCounted = d;
      const f = new Int32Array(cap);
      f.set(reqRif);
      reqRif = f;
    }
    return nextSlot++;
  };

  const complete = (slot: number, time: number): void => {
    const e = reqEndpoint[slot];
    const p = reqProxy[slot];
    const latency = time - reqArrival[slot];
    serverInflight[e]--;
    proxyInflight[p * N + e]--;
    const k = Math.min(Math.floor(time / T), steps - 1);
    completions[e][k]++;
    latencySum[e][k] += latency;
    const bi = e * NB + bandOf(reqRif[slot]);
    bandLat[bi * RING + (bandCount[bi] % RING)] = latency;
    bandCount[bi]++;
    medianCache[bi] = NaN;
    if (reqCounted[slot]) latencies.push(latency);
    free.push(slot);
    policy.onResponse?.(p, e, latency, false);
  };

  const report = (k: number): IntervalReport => {
    const r: IntervalReport = {
      step: k,
      utilisation: new Float64Array(N),
      ownCpu: new Float64Array(N),
      completed: new Float64Array(N),
      latencySum: new Float64Array(N),
      qps: new Float64Array(N),
      latency: new Float64Array(N),
      errors: new Float64Array(N),
    };
    for (let e = 0; e < N; e++) {
      const c = speedAt(e, k);
      const own = Math.min(c, (c * busy[e][k]) / (C * T));
      r.ownCpu[e] = own;
      r.utilisation[e] = Math.min(1, 1 - c + own);
      r.completed[e] = completions[e][k];
      r.latencySum[e] = latencySum[e][k];
      r.qps[e] = completions[e][k] / T;
      r.latency[e] = completions[e][k] > 0 ? latencySum[e][k] / completions[e][k] : NaN;
      r.errors[e] = drops[e][k] / T;
    }
    return r;
  };

  for (let k = 0; k < steps; k++) {
    const boundary = k * T;
    // completions due before the boundary happen before the policy hears of it
    while (heap.peekTime() <= boundary) {
      const time = heap.peekTime();
      now = time;
      complete(heap.pop(), time);
    }
    now = boundary;
    await policy.onInterval(k, k > 0 ? report(k - 1) : undefined);
    const s = policy.shares?.();
    shares.push(s ? Float64Array.from(s) : new Float64Array(N).fill(NaN));
    const c = policy.capacities?.();
    capacities.push(c ? Float64Array.from(c) : new Float64Array(N).fill(NaN));
    const sentNow = new Float64Array(N);
    sent.push(sentNow);

    const end = (k + 1) * T;
    const rate = setup.rate[k];
    const counted = k >= setup.warmupSteps;
    // Poisson arrivals with a rate constant over the step: memoryless, so
    // drawing afresh from the boundary is exact.
    let nextArrival = rate > 0 ? boundary + arrivalRng.exp(1 / rate) : Infinity;
    while (nextArrival < end) {
      while (heap.peekTime() <= nextArrival) {
        const time = heap.peekTime();
        now = time;
        complete(heap.pop(), time);
      }
      now = nextArrival;
      const p = proxyRng.int(K);
      const e = policy.pick(p);
      sentNow[e]++;
      if (counted) requests++;
      if (serverInflight[e] >= queueLimit) {
        drops[e][k]++;
        if (counted) dropped++;
        policy.onResponse?.(p, e, 0, true);
      } else {
        let w = e * C;
        for (let j = e * C + 1; j < (e + 1) * C; j++) if (freeAt[j] < freeAt[w]) w = j;
        const start = Math.max(now, freeAt[w]);
        const done = serve(e, start, workRng.exp(serviceTime));
        freeAt[w] = done;
        serverInflight[e]++;
        proxyInflight[p * N + e]++;
        const slot = allocSlot();
        reqArrival[slot] = now;
        reqEndpoint[slot] = e;
        reqProxy[slot] = p;
        reqCounted[slot] = counted ? 1 : 0;
        reqRif[slot] = serverInflight[e] - 1;
        heap.push(done, slot);
      }
      nextArrival += arrivalRng.exp(1 / rate);
    }
  }
  // drain: every counted request completes (queues are bounded, so this ends)
  while (heap.size > 0) {
    const time = heap.peekTime();
    now = time;
    complete(heap.pop(), time);
  }
  return {
    latencies: Float64Array.from(latencies),
    requests,
    dropped,
    shares,
    sent,
    capacities,
  };
}
