/**
 * One measurement of bench/footprint.ts, in a process of its own (so that RSS is this tree's
 * alone): N endpoints, each with a full ring of samples carrying every signal the agent sends,
 * scored by the ForecastScorer once a second (the baselines; with --lstm the LSTM too), then,
 * after the memory is read, as many ticks again through the prioritizer (the whole tick of
 * `augur serve`: the scorer and the lists). Prints one JSON line.
 * Imports only what the LPS had before the compact ring, so it runs against an older tree too.
 *
 * node --expose-gc dist/bench/footprint-child.js --endpoints=5000 --ticks=11 [--ring-size=720]
 *   [--lstm]: the LSTM on, as `augur serve` runs it by default (see LSTM below).
 *   [--account]: also where the bytes and the microseconds go, to stderr: the heap (a snapshot's
 *   self sizes by constructor, per endpoint; typed arrays' contents apart), a CPU profile of
 *   the measured ticks (self time by function, per endpoint per tick) and what they allocate
 *   (V8's sampling heap profiler, collected objects included: bytes by function, per endpoint
 *   per tick; the samples' arrival through the store included, as in the ticks' GC).
 */
import { readFileSync, rmSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getHeapSpaceStatistics, getHeapStatistics, writeHeapSnapshot } from 'node:v8';
import { pino } from 'pino';
import { ProbeHealth } from '../src/gen/augur/v1/common.js';
import type { EndpointData } from '../src/gen/augur/v1/telemetry.js';
import { createRegistry } from '../src/common/http-host.js';
import { hostNamesConfigSchema, lpsConfigSchema } from '../src/lps/config.js';
import { forecastConfigSchema } from '../src/lps/forecast/config.js';
import { ForecastScorer } from '../src/lps/forecast/scorer.js';
import { HostNameResolver } from '../src/lps/host-names.js';
import { LpsMetrics } from '../src/lps/metrics.js';
import { Prioritizer } from '../src/lps/prioritizer.js';
import { EndpointStore } from '../src/lps/store.js';
import { EndpointState } from '../src/lps/types.js';
import { statCpuTicks } from './proc-stat.js';

const args = new Map(
  process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]),
);
const N = Number(args.get('endpoints') ?? 5000);
const TICKS = Number(args.get('ticks') ?? 11);
/** Ticks not measured: the first feeds every endpoint its recent history at once. */
const WARMUP = 2;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const settle = (): NodeJS.MemoryUsage => {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage();
};

const config = lpsConfigSchema.parse(
  args.has('ring-size') ? { ringSize: Number(args.get('ring-size')) } : {},
);
const store = new EndpointStore(config);
/**
 * --lstm: the LSTM on, as `augur serve` runs it (attach.ts's worker and its rows per endpoint),
 * each endpoint's worker history filled as after ringSize intervals; the process's RSS then
 * holds the worker (its heap, TensorFlow.js and its WebAssembly memory) and the first fit.
 */
const LSTM = args.has('lstm');
const forecastConfig = forecastConfigSchema.parse({ lstm: { enabled: LSTM } });
const lstmRows = LSTM
  ? (await import('../src/lps/forecast/attach.js')).lstmRowsPerEndpoint(
      config.ringSize,
      forecastConfig.lstm,
    )
  : 0;
/** Rows the worker keeps per endpoint at N endpoints (its share of forecast.lstm.trainingRows). */
const lstmKept = LSTM
  ? (await import('../src/lps/forecast/lstm/engine.js')).rowShare(
      { maxRows: lstmRows, maxTotalRows: forecastConfig.lstm.trainingRows },
      { window: forecastConfig.lstm.window, horizon: forecastConfig.maxHorizon },
      N,
    )
  : 0;
const scorer = new ForecastScorer({
  config: forecastConfig,
  logger: pino({ level: 'silent' }),
  ...(LSTM
    ? {
        startLstm: async () =>
          (await import('../src/lps/forecast/lstm/online.js')).OnlineLstm.start({
            config: forecastConfig.lstm,
            maxHorizon: forecastConfig.maxHorizon,
            logger: pino({ level: 'silent' }),
            maxRows: lstmRows,
          }),
        startLstmEagerly: true,
      }
    : {}),
});

/** A sample as the agent sends it: host and own CPU, memory, network, probe, request counts. */
function data(id: string, i: number, seq: number, at: number): EndpointData {
  const wave = Math.sin(seq / 30 + i);
  const cpu = 0.35 + 0.25 * wave + 0.05 * Math.sin(seq * 1.7 + i * 3);
  const completed = Math.round(80 + 40 * wave);
  return {
    endpointId: id,
    cpuUsage: cpu,
    memoryUsage: 0.4 + 0.1 * Math.sin(seq / 300 + i),
    networkIo: 2e6 + 1e6 * wave,
    networkCapacity: 1.25e9,
    responseTime: 0.01 + 0.02 * cpu * cpu,
    timestamp: new Date(at),
    sequence: seq,
    health: ProbeHealth.PROBE_HEALTH_SERVING,
    requestRate: 0,
    processCpuUsage: cpu * 0.8,
    requestsCompleted: completed,
    latencySumSeconds: completed * (0.01 + 0.02 * cpu * cpu),
    sampleSpan: { seconds: 1, nanos: 0 },
  };
}

const before = settle();
let now = Date.now() - (config.ringSize + 1) * 1000;
for (let i = 0; i < N; i++) {
  const id = `ep-${i}`;
  store.upsertFromHello(
    {
      endpointId: id,
      service: `svc-${i % 20}`,
      address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      port: 8080,
      labels: { app: `svc-${i % 20}`, version: 'v1' },
      locality: { region: 'eu-west-1', zone: `eu-west-1${'abc'[i % 3]}`, subZone: '' },
      capacity: { cpuCores: 4, memoryBytes: 8 * 2 ** 30, networkBytesPerSecond: 1.25e9 },
      agentVersion: 'bench',
    },
    now,
  );
}
// Every ring full: the memory an endpoint holds once it has run for ringSize intervals.
const records = store.all();
for (let k = 1; k <= config.ringSize; k++) {
  now += 1000;
  for (let i = 0; i < N; i++) store.append(records[i]!, data(records[i]!.id, i, k, now), now);
}
if (LSTM) {
  // The first tick starts the worker and backfills each endpoint; then each endpoint's worker
  // history is topped up to its cap, as after ringSize intervals of one row per tick.
  const states = new Map<string, EndpointState>(records.map((r) => [r.id, store.stateOf(r, now)]));
  await scorer.assess(records, states, now);
  const lstm = await scorer.lstmStarted();
  if (!lstm) throw new Error('the LSTM did not start');
  const { LSTM_FEATURES } = await import('../src/lps/forecast/lstm/online.js');
  for (let i = 0; i < N; i += 500) {
    lstm.append(
      records.slice(i, i + 500).map((r, k) => {
        const rows = new Float32Array(lstmKept * LSTM_FEATURES);
        for (let j = 0; j < rows.length; j++) rows[j] = 0.3 + 0.2 * Math.sin(j / 7 + i + k);
        return { id: r.id, rows };
      }),
    );
    await lstm.settled();
  }
}
const stored = settle();

const ACCOUNT = args.has('account');
const profiler = ACCOUNT ? new Session() : undefined;
if (profiler) {
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
  await profiler.post('HeapProfiler.enable');
}
const lag = monitorEventLoopDelay({ resolution: 1 });
const cpuPerEndpointUs: number[] = [];
/** The serving (main) thread's own share of each measured tick's CPU. */
const mainCpuPerEndpointUs: number[] = [];
/** The LSTM worker thread's share (its OS thread id from the worker; NaN where unknown). */
const workerCpuPerEndpointUs: number[] = [];
const workerTid = (await scorer.lstmStarted())?.workerTid;
let seq = config.ringSize;
for (let t = 0; t < WARMUP + TICKS; t++) {
  // One sample per endpoint per tick, at 1 s, as agents at the default interval send them.
  const tickAt = Date.now() + 1000;
  now += 1000;
  seq++;
  for (let i = 0; i < N; i++) store.append(records[i]!, data(records[i]!.id, i, seq, now), now);
  const states = new Map<string, EndpointState>(records.map((r) => [r.id, store.stateOf(r, now)]));
  if (t === WARMUP) lag.enable();
  if (profiler && t === WARMUP) {
    await profiler.post('Profiler.start');
    await profiler.post('HeapProfiler.startSampling', {
      samplingInterval: 1024,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
  }
  const c0 = process.cpuUsage();
  const m0 = mainThreadCpuUs();
  const w0 = threadCpuUs(workerTid);
  await scorer.assess(records, states, now);
  const c = process.cpuUsage(c0);
  const m = mainThreadCpuUs() - m0;
  const w = threadCpuUs(workerTid) - w0;
  // The LSTM's first fit (started by the first tick) ends within the warm-up: a measured tick
  // then costs what a tick costs between fits (its inference included; the worker's CPU is the
  // process's).
  if (t < WARMUP) await (await scorer.lstmStarted())?.settled();
  if (t >= WARMUP) {
    cpuPerEndpointUs.push((c.user + c.system) / N);
    mainCpuPerEndpointUs.push(m / N);
    workerCpuPerEndpointUs.push(w / N);
  }
  await new Promise((r) => setTimeout(r, Math.max(0, tickAt - Date.now())));
}
lag.disable();
// A fit the ticks started (the LSTM's first) ends before the memory is read.
await (await scorer.lstmStarted())?.settled();
const profile = profiler ? (await profiler.post('Profiler.stop')).profile : undefined;
const allocations = profiler
  ? (await profiler.post('HeapProfiler.stopSampling')).profile
  : undefined;
const scored = settle();
if (ACCOUNT) account(profile!, allocations!);

/**
 * The whole tick as `augur serve` runs it, after the memory is read (so the lists it keeps are
 * not in the RSS figures): the prioritizer (src/lps/prioritizer.ts) asks the same scorer, then
 * builds, sorts and publishes each service's list. It reads the wall clock, so these samples
 * arrive on it (the ones before lag it by the set-up's time). One unmeasured tick first.
 */
const tickCpuPerEndpointUs: number[] = [];
{
  const silent = pino({ level: 'silent' });
  const prioritizer = new Prioritizer(
    store,
    scorer,
    new LpsMetrics(createRegistry(false)),
    silent,
    new HostNameResolver({
      ...hostNamesConfigSchema.parse({}),
      logger: silent,
      onChange: () => {},
    }),
  );
  for (let t = 0; t < 1 + TICKS; t++) {
    const tickAt = Date.now() + 1000;
    const at = Date.now();
    seq++;
    for (let i = 0; i < N; i++) store.append(records[i]!, data(records[i]!.id, i, seq, at), at);
    const c0 = process.cpuUsage();
    await prioritizer.recompute('clock');
    const c = process.cpuUsage(c0);
    if (t >= 1) tickCpuPerEndpointUs.push((c.user + c.system) / N);
    await new Promise((r) => setTimeout(r, Math.max(0, tickAt - Date.now())));
  }
  // Measured on the path a serving LPS takes: every endpoint active, with a weight.
  const list = prioritizer.get('svc-0');
  if (
    !list ||
    list.endpoints.some((e) => e.state !== EndpointState.ENDPOINT_STATE_ACTIVE || !(e.weight > 0))
  )
    throw new Error('the prioritizer did not see every endpoint active with a weight');
  await prioritizer.stop();
}
const kb = (a: number, b: number) => (a - b) / N / 1024;
process.stdout.write(
  JSON.stringify({
    endpoints: N,
    ringSize: config.ringSize,
    lstm: LSTM,
    lstmRowsKept: lstmKept,
    rssStoreKb: kb(stored.rss, before.rss),
    rssKb: kb(scored.rss, before.rss),
    heapKb: kb(scored.heapUsed, before.heapUsed),
    arrayBuffersKb: kb(scored.arrayBuffers, before.arrayBuffers),
    cpuPerEndpointUs,
    mainCpuPerEndpointUs,
    ...(LSTM ? { workerCpuPerEndpointUs } : {}),
    tickCpuPerEndpointUs,
    lagP99Ms: lag.percentile(99) / 1e6,
    lagMaxMs: lag.max / 1e6,
  }) + '\n',
);
await scorer.close();
process.exit(0);

/**
 * CPU time of this process's main thread alone, µs: utime + stime of /proc/self/task/<pid>/stat
 * (the main thread's id is the process's), in clock ticks of 10 ms (USER_HZ 100, as on every
 * Linux this runs on). process.cpuUsage counts every thread: the LSTM worker, V8's concurrent GC
 * and libuv's pool too. NaN where /proc cannot be read.
 */
function mainThreadCpuUs(): number {
  return threadCpuUs(process.pid);
}

/** threadCpuUs of any thread of this process by its OS id; NaN where unknown. */
function threadCpuUs(tid: number | undefined): number {
  if (tid === undefined) return NaN;
  return statCpuTicks(`/proc/self/task/${tid}/stat`) * 10_000;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface AllocationNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: AllocationNode[];
}

/** A profile node's function, named as `account` prints it. */
function where(f: { functionName: string; url: string; lineNumber: number }): string {
  return `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(src|bench|node_modules)\//, '$1/')}:${f.lineNumber + 1}`;
}

/**
 * Heap self sizes by constructor, scoring self time by function and bytes allocated by function,
 * per endpoint, to stderr.
 */
function account(
  profile: { nodes: ProfileNode[]; startTime: number; endTime: number },
  allocations: { head: AllocationNode },
): void {
  const h = getHeapStatistics();
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MB`;
  process.stderr.write(
    `V8 heap: ${mb(h.used_heap_size)} used of ${mb(h.total_heap_size)} (${mb(h.total_physical_size)} resident); external ${mb(h.external_memory)}; RSS ${mb(process.memoryUsage().rss)}\n`,
  );
  for (const sp of getHeapSpaceStatistics())
    if (sp.space_size > 2 ** 20)
      process.stderr.write(
        `  ${sp.space_name}: ${mb(sp.space_used_size)} used of ${mb(sp.space_size)} (${mb(sp.physical_space_size)} resident)\n`,
      );
  const file = writeHeapSnapshot();
  const snap = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  rmSync(file);
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [ti, ni, si] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const bytes = new Map<string, number>();
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const key = `${types[snap.nodes[i + ti!]!]}: ${snap.strings[snap.nodes[i + ni!]!]!.slice(0, 60)}`;
    bytes.set(key, (bytes.get(key) ?? 0) + snap.nodes[i + si!]!);
  }
  const heap = [...bytes].sort((a, b) => b[1] - a[1]).slice(0, 30);
  process.stderr.write(`heap self size per endpoint (N=${N}), top 30:\n`);
  for (const [k, b] of heap) process.stderr.write(`  ${(b / N).toFixed(0).padStart(7)} B  ${k}\n`);
  const hits = new Map<string, number>();
  let total = 0;
  for (const n of profile.nodes) {
    const key = where(n.callFrame);
    hits.set(key, (hits.get(key) ?? 0) + (n.hitCount ?? 0));
    total += n.hitCount ?? 0;
  }
  const usPerHit = (profile.endTime - profile.startTime) / Math.max(1, total);
  process.stderr.write(
    `scoring self time per endpoint per tick (${TICKS} ticks, wall incl. waits), top 30:\n`,
  );
  for (const [k, h] of [...hits].sort((a, b) => b[1] - a[1]).slice(0, 30))
    process.stderr.write(`  ${((h * usPerHit) / N / TICKS).toFixed(2).padStart(7)} us  ${k}\n`);
  const allocated = new Map<string, number>();
  let allBytes = 0;
  const walk = (n: AllocationNode): void => {
    const key = where(n.callFrame);
    allocated.set(key, (allocated.get(key) ?? 0) + n.selfSize);
    allBytes += n.selfSize;
    n.children.forEach(walk);
  };
  walk(allocations.head);
  process.stderr.write(
    `allocated per endpoint per tick (${TICKS} ticks): ${(allBytes / N / TICKS).toFixed(0)} B, top 30:\n`,
  );
  for (const [k, b] of [...allocated].sort((a, b) => b[1] - a[1]).slice(0, 30))
    process.stderr.write(`  ${(b / N / TICKS).toFixed(0).padStart(7)} B  ${k}\n`);
}
