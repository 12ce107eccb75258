/**
 * npm run bench:cluster — cluster mode (src/cluster) under load, against one replica: a real
 * redis-server (loopback port chosen at run time, no persistence), 3 real `augur serve --cluster`
 * replicas, ENDPOINTS endpoints reporting at 1 s spread over them (SERVICES services, each with
 * endpoints on every replica) and CLIENTS ADS clients spread over them; then the same load on ONE
 * `augur serve` (no cluster), in the same run.
 *
 * Figures: samples/s offered, acknowledged, accepted by the replicas and read and stored by the
 * owners; xDS push latency (from the owner's list publication to each ADS client, on every
 * replica, holding the service's new assignment); event-loop lag, CPU and RSS per replica and the
 * CPU of Redis and of the load generators; takeover after kill -9 of a service's owner (lease
 * acquired by a survivor, and the survivor's first list of the service), over KILLS kills, the
 * killed replica restarted each time.
 *
 *   --endpoints N (15000) --services N (30) --clients N (100) --kills N (5) --duration S (30)
 *   --no-write: print, do not rewrite BENCHMARKS.md (test/bench/cluster.test.ts)
 *
 * The replicas run as `augur serve` via tsx (as bench:ingest's), the agents in one child process
 * (bench/cluster-agents.ts: many Report streams per HTTP/2 connection), the ADS clients in one
 * child process per replica (bench/xds-clients.ts: raw HTTP/2, resources hashed, not decoded).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import {
  LoadPredictionClient,
  type PrioritizedEndpointList,
} from '../src/gen/augur/v1/load_prediction.js';
import { RedisServer } from '../test/support/redis-server.js';
import { ServeProcess } from '../test/support/serve-process.js';
import type { AgentCounts, AgentsStart } from './cluster-agents.js';
import { markdownTable, quantile, writeBenchmarkSection } from './report.js';
import { statCpuTicks } from './proc-stat.js';

export interface ClusterBenchOptions {
  endpoints: number;
  services: number;
  clients: number;
  kills: number;
  /** Seconds of the measured window of each mode. */
  duration: number;
  replicas: number;
  write: boolean;
  log: (line: string) => void;
}

export function parseClusterOptions(argv: readonly string[]): ClusterBenchOptions {
  const o: ClusterBenchOptions = {
    endpoints: 15_000,
    services: 30,
    clients: 100,
    kills: 5,
    duration: 30,
    replicas: 3,
    write: true,
    log: (line) => console.log(line),
  };
  const numeric = ['endpoints', 'services', 'clients', 'kills', 'duration'] as const;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--no-write') {
      o.write = false;
      continue;
    }
    const m = /^--([a-z]+)(?:=(.*))?$/.exec(arg);
    const name = m?.[1] as (typeof numeric)[number] | undefined;
    if (!m || !name || !numeric.includes(name))
      throw new Error(
        `bench:cluster: unknown option ${arg} (--endpoints, --services, --clients, --kills, --duration, --no-write)`,
      );
    const text = m[2] ?? argv[++i];
    const value = Number(text);
    if (!Number.isInteger(value) || value < (name === 'kills' ? 0 : 1))
      throw new Error(`bench:cluster: --${name} must be a whole number >= 1 (got ${text})`);
    o[name] = value;
  }
  if (o.endpoints < o.services)
    throw new Error(`bench:cluster: --endpoints (${o.endpoints}) must be >= --services`);
  return o;
}

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const CLK_TCK = 100;
const LEASE_TTL_S = 3;
const RENEW_S = 1;
/** See the attribution of pushes to lists in runMode. */
const SLACK_MS = 50;

/** CPU seconds of a process so far (Linux /proc; NaN elsewhere or once it has gone). */
function procCpu(pid: number | undefined): number {
  return statCpuTicks(`/proc/${pid}/stat`) / CLK_TCK;
}

async function metrics(r: ServeProcess): Promise<string> {
  const get = async (): Promise<string> => (await fetch(`${r.httpUrl}/metrics`)).text();
  return get().catch(get);
}

/** Sum of a metric's series whose labels contain every `label` (e.g. 'kind="samples"'). */
function metric(text: string, name: string, ...labels: string[]): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line[name.length];
    if (rest !== ' ' && rest !== '{') continue;
    if (!labels.every((l) => line.includes(l))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

interface ReplicaWindow {
  cpu: number;
  samples: number;
  forwarded: number;
  owned: number;
}

function replicaWindow(text: string): ReplicaWindow {
  return {
    cpu: metric(text, 'process_cpu_seconds_total'),
    samples: metric(text, 'augur_lps_samples_total'),
    forwarded: metric(text, 'augur_cluster_forwarded_total', 'kind="samples"'),
    // Samples read from the streams by owners: stored, or already held (the owner's own agents').
    owned:
      metric(text, 'augur_cluster_stream_entries_total', 'outcome="stored"') +
      metric(text, 'augur_cluster_stream_entries_total', 'outcome="duplicate"') +
      metric(text, 'augur_cluster_stream_entries_total', 'outcome="backfilled"'),
  };
}

export interface ReplicaFigures {
  id: string;
  cpuPercent: number;
  lagP99Ms: number;
  rssMb: number;
  /** Samples/s this replica's own agents had stored (cluster: and passed on). */
  acceptedPerSecond: number;
  /** Cluster: samples/s read from the owned services' streams. */
  ownedPerSecond: number;
  /** Services owned at the end of the window (cluster). */
  services: number;
  /** ADS clients connected here, those that received an EDS answer, and the pushes in the window. */
  clients: number;
  answered: number;
  pushes: number;
}

export interface ModeFigures {
  mode: 'cluster' | 'single';
  offeredPerSecond: number;
  ackedPerSecond: number;
  acceptedPerSecond: number;
  /** Cluster: samples/s read from the streams by the owners; single: = accepted. */
  storedPerSecond: number;
  openStreams: number;
  streamFailures: number;
  pushP50Ms: number;
  pushP99Ms: number;
  pushMaxMs: number;
  pushesMeasured: number;
  /** Pushes that arrived before the bench saw their list (within SLACK_MS). */
  pushesEarly: number;
  /** Clients that received at least one push in the window. */
  clientsPushed: number;
  replicas: ReplicaFigures[];
  redisCpuPercent: number;
  agentsCpuPercent: number;
  clientsCpuPercent: number;
  benchCpuPercent: number;
  seconds: number;
}

export interface TakeoverFigures {
  service: string;
  victim: string;
  leaseMs: number;
  listMs: number;
  /** From the new owner's "taken over" log line: the stream entries it replayed, and the time. */
  replayedEntries: number;
  replayMs: number;
  /** Scoring after the replay and the first write of the list. */
  scoreAndWriteMs: number;
}

export interface ClusterBenchResult {
  options: Omit<ClusterBenchOptions, 'log'>;
  cluster: ModeFigures;
  single: ModeFigures;
  takeovers: TakeoverFigures[];
  /** Every process the run started (replicas, Redis, agents, ADS clients), all stopped. */
  pids: number[];
}

type Arrival = { client: number; at: number; version: string; bytes: number; hash?: string };

/** The ADS clients of one replica, in a process of their own. */
class AdsClients {
  readonly arrivals: Arrival[] = [];
  readonly child: ChildProcess;
  private readonly ready: Promise<void>;
  constructor(
    readonly replica: number,
    address: string,
    readonly first: number,
    readonly count: number,
    services: string[],
  ) {
    this.child = fork(
      new URL('./xds-clients.ts', import.meta.url).pathname,
      [address, String(first), String(count), services.join(',')],
      {
        execArgv: ['--import', 'tsx'],
        env: { ...process.env, XDS_BENCH_HASH: '1' },
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      },
    );
    this.child.stderr!.resume();
    this.ready = new Promise((resolve, reject) => {
      this.child.once('exit', (code) => reject(new Error(`ADS clients exited with ${code}`)));
      this.child.on('message', (m: { arrivals?: Arrival[]; ready?: boolean }) => {
        if (m.ready) resolve();
        if (m.arrivals) this.arrivals.push(...m.arrivals);
      });
    });
  }
  started(): Promise<void> {
    return this.ready;
  }
  heard(): number {
    return new Set(this.arrivals.map((a) => a.client)).size;
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.send({ stop: true });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** The agents' process (bench/cluster-agents.ts). */
class Agents {
  readonly child: ChildProcess;
  private waiting: ((c: AgentCounts) => void) | undefined;
  private readonly ready: Promise<void>;
  constructor() {
    this.child = fork(new URL('./cluster-agents.ts', import.meta.url).pathname, [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.ready = new Promise((resolve) =>
      this.child.on('message', (m: { ready?: boolean; counts?: AgentCounts }) => {
        if (m.ready) resolve();
        if (m.counts) this.waiting?.(m.counts);
      }),
    );
  }
  async start(s: AgentsStart): Promise<void> {
    await this.ready;
    this.child.send({ start: s });
  }
  addresses(a: string[]): void {
    this.child.send({ addresses: a });
  }
  counts(): Promise<AgentCounts> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.child.send({ report: true });
    });
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.send({ stop: true });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

async function waitUntil<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  everyMs = 250,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`bench:cluster: timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** The latest time in a sorted list that is <= t (binary search), or undefined. */
function latestBefore(times: readonly number[], t: number): number | undefined {
  let lo = 0;
  let hi = times.length - 1;
  let found: number | undefined;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid]! <= t) {
      found = times[mid];
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

const serveEnv = (
  o: ClusterBenchOptions,
  extra: Record<string, string> = {},
): Record<string, string> => ({
  AUGUR_LOG_LEVEL: 'info',
  // Every simulated agent comes from 127.0.0.1, and one replica takes all of them (single mode,
  // and survivors after a kill): the caps on endpoints held (lps.maxEndpoints 5,000) and open
  // Report streams (lps.maxStreams 6,000, lps.maxStreamsPerClient 10,000 by default) are raised to
  // the load, so both modes get it all.
  AUGUR_LPS__MAX_ENDPOINTS: String(Math.max(5000, o.endpoints + 1000)),
  AUGUR_LPS__MAX_STREAMS: String(Math.max(6000, o.endpoints + 1000)),
  AUGUR_LPS__MAX_STREAMS_PER_CLIENT: String(Math.max(10_000, o.endpoints + 1000)),
  // No warm-up before the first xDS snapshot: the bench connects its clients once lists exist.
  AUGUR_XDS__WARMUP: '0',
  AUGUR_CLUSTER__LEASE_TTL: String(LEASE_TTL_S),
  AUGUR_CLUSTER__RENEW_INTERVAL: String(RENEW_S),
  ...extra,
});

/** One mode: start, load, measure a window; the cluster mode then kills owners. */
async function runMode(
  o: ClusterBenchOptions,
  mode: 'cluster' | 'single',
  pids: number[],
): Promise<{ figures: ModeFigures; takeovers: TakeoverFigures[] }> {
  const services = Array.from({ length: o.services }, (_, i) => `svc-${i}`);
  const replicaCount = mode === 'cluster' ? o.replicas : 1;
  const ids = Array.from({ length: replicaCount }, (_, r) => `r${r + 1}`);
  const redis = mode === 'cluster' ? await RedisServer.start() : undefined;
  const replicas: ServeProcess[] = [];
  let agents: Agents | undefined;
  const clientSets: AdsClients[] = [];
  let redisClient: Redis | undefined;
  let subscriber: Redis | undefined;
  let watchClient: InstanceType<typeof LoadPredictionClient> | undefined;
  let watch: grpc.ClientReadableStream<PrioritizedEndpointList> | undefined;
  /** Per service, the times the owner published a list (cluster: seen on Redis's channel). */
  const published = new Map<string, number[]>(services.map((s) => [s, []]));
  const onPublish = new Set<(service: string, at: number) => void>();
  if (redis?.pid) pids.push(redis.pid);
  const startReplica = async (r: number): Promise<ServeProcess> => {
    const p = await ServeProcess.start(
      redis ? ['--cluster', redis.url] : [],
      serveEnv(o, redis ? { AUGUR_CLUSTER__REPLICA_ID: ids[r]! } : {}),
      { timeoutMs: 180_000 },
    );
    if (p.child.pid) pids.push(p.child.pid);
    return p;
  };
  try {
    for (let r = 0; r < replicaCount; r++) replicas.push(await startReplica(r));
    o.log(`${mode}: ${replicaCount} replica(s) up`);
    if (redis) {
      redisClient = new Redis(redis.url);
      subscriber = new Redis(redis.url);
      await subscriber.subscribe('augur:lists');
      subscriber.on('message', (_channel: string, service: string) => {
        const at = now();
        published.get(service)?.push(at);
        for (const f of onPublish) f(service, at);
      });
    } else {
      watchClient = new LoadPredictionClient(
        replicas[0]!.grpcAddress,
        grpc.credentials.createInsecure(),
      );
      watch = watchClient.watchPrioritizedEndpoints({ services: [] });
      watch.on('data', (l: PrioritizedEndpointList) => published.get(l.service)?.push(now()));
      watch.on('error', () => undefined);
    }

    agents = new Agents();
    if (agents.child.pid) pids.push(agents.child.pid);
    await agents.start({
      addresses: replicas.map((r) => r.grpcAddress),
      endpoints: o.endpoints,
      services: o.services,
    });
    const a = agents;
    // On a small machine not every stream may be acknowledged in time: go on with what is open
    // (the figures say how many were) rather than measure nothing.
    const openAtStart = await waitUntil(
      `${o.endpoints} agent streams`,
      120_000 + o.endpoints * 20,
      async () => {
        const c = await a.counts();
        return c.open >= o.endpoints ? c.open : undefined;
      },
      1000,
    ).catch(async () => (await a.counts()).open);
    o.log(`${mode}: ${openAtStart}/${o.endpoints} agent streams open`);
    await waitUntil('a list of every service', 120_000, () =>
      services.every((s) => published.get(s)!.length > 0),
    ).catch(() => o.log(`${mode}: not every service had a list after 120 s; going on`));
    // Clients spread over the replicas, and over the services.
    for (let r = 0; r < replicaCount; r++) {
      const first = Math.floor((r * o.clients) / replicaCount);
      const count = Math.floor(((r + 1) * o.clients) / replicaCount) - first;
      if (count === 0) continue;
      const subscribed = Array.from(
        { length: count },
        (_, k) => services[(first + k) % o.services]!,
      );
      clientSets.push(new AdsClients(r, replicas[r]!.grpcAddress, first, count, subscribed));
    }
    for (const c of clientSets) if (c.child.pid) pids.push(c.child.pid);
    await Promise.all(clientSets.map((c) => c.started()));
    await waitUntil(`an EDS answer to each of ${o.clients} ADS clients`, 120_000, () =>
      clientSets.every((c) => c.heard() >= c.count),
    ).catch(() => o.log(`${mode}: not every ADS client was answered in 120 s; measuring anyway`));
    o.log(`${mode}: ${o.clients} ADS clients answered; measuring ${o.duration} s`);
    await sleep(3000);

    // The measured window.
    const texts0 = await Promise.all(replicas.map(metrics));
    const w0 = texts0.map(replicaWindow);
    const c0 = await agents.counts();
    const redis0 = procCpu(redis?.pid);
    const clients0 = clientSets.map((c) => procCpu(c.child.pid));
    const bench0 = process.cpuUsage();
    const t0 = now();
    const lags: number[][] = replicas.map(() => []);
    while (now() - t0 < o.duration * 1000) {
      await sleep(Math.min(5000, o.duration * 1000 - (now() - t0) + 1));
      const texts = await Promise.all(replicas.map(metrics));
      texts.forEach((t, r) => lags[r]!.push(metric(t, 'nodejs_eventloop_lag_p99_seconds') * 1000));
    }
    const t1 = now();
    const seconds = (t1 - t0) / 1000;
    const texts1 = await Promise.all(replicas.map(metrics));
    const w1 = texts1.map(replicaWindow);
    const c1 = await agents.counts();
    const redisCpu = (procCpu(redis?.pid) - redis0) / seconds;
    const clientsCpu =
      clientSets.reduce((s, c, k) => s + procCpu(c.child.pid) - clients0[k]!, 0) / seconds;
    const bench = process.cpuUsage(bench0);

    // Pushes: an arrival whose subscribed resource changed, attributed to the latest list of that
    // service published before it arrived.
    const delays: number[] = [];
    const pushesPerReplica = replicas.map(() => 0);
    const pushed = new Set<number>();
    let early = 0;
    for (const set of clientSets) {
      const last = new Map<number, string>();
      for (const arr of set.arrivals) {
        const before = last.get(arr.client);
        last.set(arr.client, arr.hash ?? arr.version);
        if (before === undefined || before === (arr.hash ?? arr.version)) continue;
        if (arr.at < t0 || arr.at > t1) continue;
        const service = services[arr.client % o.services]!;
        // The bench sees a publication a little after the replicas may (it is one more subscriber,
        // or one more Watch stream): an arrival up to SLACK_MS before the bench saw a list is
        // that list's (counted as 0 ms).
        const at = latestBefore(published.get(service)!, arr.at + SLACK_MS);
        if (at === undefined) continue;
        if (at > arr.at) early++;
        delays.push(Math.max(0, arr.at - at));
        pushesPerReplica[set.replica]!++;
        pushed.add(arr.client);
      }
    }
    const figures: ModeFigures = {
      mode,
      seconds,
      offeredPerSecond: (c1.sent - c0.sent) / seconds,
      ackedPerSecond: (c1.acked - c0.acked) / seconds,
      acceptedPerSecond:
        w1.reduce(
          (s, w, r) => s + (redis ? w.forwarded - w0[r]!.forwarded : w.samples - w0[r]!.samples),
          0,
        ) / seconds,
      storedPerSecond:
        w1.reduce(
          (s, w, r) => s + (redis ? w.owned - w0[r]!.owned : w.samples - w0[r]!.samples),
          0,
        ) / seconds,
      openStreams: c1.open,
      streamFailures: c1.failures - c0.failures,
      pushP50Ms: quantile(delays, 0.5),
      pushP99Ms: quantile(delays, 0.99),
      pushMaxMs: delays.length > 0 ? Math.max(...delays) : NaN,
      pushesMeasured: delays.length,
      pushesEarly: early,
      clientsPushed: pushed.size,
      replicas: await Promise.all(
        replicas.map(async (rep, r) => {
          const t = texts1[r]!;
          let owned = 0;
          if (redis) {
            const st = (await (await fetch(`${rep.httpUrl}/cluster`)).json()) as {
              owned: unknown[];
            };
            owned = st.owned.length;
          }
          const set = clientSets.find((c) => c.replica === r);
          return {
            id: redis ? ids[r]! : 'single',
            cpuPercent: ((w1[r]!.cpu - w0[r]!.cpu) / seconds) * 100,
            lagP99Ms: Math.max(...lags[r]!),
            rssMb: metric(t, 'process_resident_memory_bytes') / 2 ** 20,
            acceptedPerSecond:
              (redis ? w1[r]!.forwarded - w0[r]!.forwarded : w1[r]!.samples - w0[r]!.samples) /
              seconds,
            ownedPerSecond: redis ? (w1[r]!.owned - w0[r]!.owned) / seconds : NaN,
            services: redis ? owned : o.services,
            clients: set?.count ?? 0,
            answered: set?.heard() ?? 0,
            pushes: pushesPerReplica[r]!,
          };
        }),
      ),
      redisCpuPercent: redisCpu * 100,
      agentsCpuPercent: ((c1.cpuSeconds - c0.cpuSeconds) / seconds) * 100,
      clientsCpuPercent: clientsCpu * 100,
      benchCpuPercent: ((bench.user + bench.system) / 1e6 / seconds) * 100,
    };
    o.log(`${mode}: ${JSON.stringify(figures)}`);
    // The ADS clients are done: the kills below measure takeover, not pushes.
    await Promise.all(clientSets.map((c) => c.stop()));

    const takeovers: TakeoverFigures[] = [];
    if (redis && redisClient) {
      const rc = redisClient;
      for (let k = 0; k < o.kills; k++) {
        // The victim: replica k mod 3 if it owns a service, otherwise the one owning most.
        const holders = await Promise.all(services.map((s) => rc.get(`augur:lease:${s}`)));
        const ownedBy = (id: string): string[] =>
          services.filter((_, i) => holders[i]?.split(' ')[0] === id);
        let victim = k % replicaCount;
        if (ownedBy(ids[victim]!).length === 0)
          victim = ids.reduce(
            (best, id, r) => (ownedBy(id).length > ownedBy(ids[best]!).length ? r : best),
            0,
          );
        const service = ownedBy(ids[victim]!)[0];
        if (!service) throw new Error('bench:cluster: no replica owns a service');
        const oldToken = Number(holders[services.indexOf(service)]!.split(' ')[1]);
        let listAt: number | undefined;
        let checking = false;
        const check = (s: string, at: number): void => {
          if (s !== service || listAt !== undefined || checking) return;
          checking = true;
          // The list hash's token says who wrote it: the new owner's is higher.
          void rc.hget(`augur:list:${service}`, 'k').then((token) => {
            checking = false;
            if (listAt === undefined && Number(token) > oldToken) listAt = at;
          });
        };
        onPublish.add(check);
        const victimId = ids[victim]!;
        const killed = replicas[victim]!;
        const t = now();
        const killedAt = Date.now();
        killed.child.kill('SIGKILL');
        const leaseAt = await waitUntil(
          `a survivor to take ${service}`,
          60_000,
          async () => {
            const v = await rc.get(`augur:lease:${service}`);
            return v && v.split(' ')[0] !== victimId ? now() : undefined;
          },
          10,
        ).catch(() => NaN); // not within 60 s: reported as n/a, and the run goes on
        await waitUntil(`the new owner's first list of ${service}`, 60_000, () => listAt, 10).catch(
          () => undefined,
        );
        onPublish.delete(check);
        // The new owner's own account of its catch-up (src/cluster/cluster.ts, `take`), logged
        // just after its first list is written.
        const takenLine = () =>
          replicas
            .filter((_, i) => i !== victim)
            .flatMap((r) => r.lines)
            .find(
              (l) =>
                l.service === service &&
                typeof l.msg === 'string' &&
                l.msg.includes('taken over') &&
                (l.time ?? 0) >= killedAt,
            );
        const taken = await waitUntil(
          'the new owner\'s "taken over" line',
          10_000,
          takenLine,
          50,
        ).catch(() => undefined);
        const figuresK: TakeoverFigures = {
          service,
          victim: victimId,
          leaseMs: leaseAt - t,
          listMs: (listAt ?? NaN) - t,
          replayedEntries: Number(taken?.replayedEntries ?? NaN),
          replayMs: Number(taken?.replayMs ?? NaN),
          scoreAndWriteMs: Number(taken?.scoreAndWriteMs ?? NaN),
        };
        takeovers.push(figuresK);
        o.log(`kill ${k + 1}/${o.kills}: ${JSON.stringify(figuresK)}`);
        await killed.stop();
        agents.addresses(replicas.map((r, i) => (i === victim ? '' : r.grpcAddress)));
        // Restart it; wait until it holds services again (the plan gives it its share back).
        replicas[victim] = await startReplica(victim);
        agents.addresses(replicas.map((r) => r.grpcAddress));
        const back = replicas[victim]!;
        await waitUntil(
          `${victimId} to own services again`,
          60_000,
          async () => {
            const st = (await (await fetch(`${back.httpUrl}/cluster`)).json()) as {
              owned: Array<{ ready: boolean }>;
            };
            return st.owned.length > 0 && st.owned.every((x) => x.ready);
          },
          500,
        ).catch(() => o.log(`${victimId} owned no ready service 60 s after its restart`));
        await sleep(2000);
      }
    }
    return { figures, takeovers };
  } finally {
    await Promise.all(clientSets.map((c) => c.stop()));
    await agents?.stop();
    watch?.cancel();
    watchClient?.close();
    subscriber?.disconnect();
    redisClient?.disconnect();
    await Promise.all(replicas.map((r) => r.stop()));
    await redis?.stop();
  }
}

export async function runClusterBench(o: ClusterBenchOptions): Promise<ClusterBenchResult> {
  const pids: number[] = [];
  const { figures: cluster, takeovers } = await runMode(o, 'cluster', pids);
  const { figures: single } = await runMode(o, 'single', pids);
  const { log: _log, ...options } = o;
  return { options, cluster, single, takeovers, pids };
}

const f0 = (x: number): string => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');

export function clusterSection(r: ClusterBenchResult): string {
  const o = r.options;
  const load = loadavg()
    .map((l) => l.toFixed(1))
    .join(', ');
  const offered = o.endpoints;
  const modeRow = (m: ModeFigures): Array<string | number> => [
    m.mode === 'cluster' ? `cluster (${m.replicas.length} replicas + Redis)` : 'one replica',
    `${f0(offered)} (${f0(m.openStreams)} streams open; ${m.streamFailures} stream failures)`,
    f0(m.offeredPerSecond),
    f0(m.ackedPerSecond),
    f0(m.acceptedPerSecond),
    m.mode === 'cluster' ? f0(m.storedPerSecond) : '(= accepted)',
    `${f1(m.pushP50Ms)} / ${f1(m.pushP99Ms)} / ${f1(m.pushMaxMs)} ms (${m.pushesMeasured}; ${m.clientsPushed}/${o.clients} clients)`,
    `${f0(m.redisCpuPercent)} / ${f0(m.agentsCpuPercent)} / ${f0(m.clientsCpuPercent)} / ${f0(m.benchCpuPercent)} %`,
  ];
  const replicaRows = [r.cluster, r.single].flatMap((m) =>
    m.replicas.map((p) => [
      m.mode,
      p.id,
      `${f0(p.cpuPercent)} %`,
      `${f0(p.lagP99Ms)} ms`,
      `${f0(p.rssMb)} MB`,
      f0(p.acceptedPerSecond),
      m.mode === 'cluster' ? f0(p.ownedPerSecond) : '',
      m.mode === 'cluster' ? p.services : o.services,
      `${p.clients} / ${p.pushes}`,
    ]),
  );
  const lease = r.takeovers.map((t) => t.leaseMs);
  const list = r.takeovers.map((t) => t.listMs);
  const sustained = (m: ModeFigures): number => m.storedPerSecond / Math.max(1, m.offeredPerSecond);
  const cores = cpus().length;
  const complete = (m: ModeFigures): boolean =>
    sustained(m) >= 0.95 && m.openStreams >= 0.95 * o.endpoints && m.clientsPushed > 0;
  const limited = !complete(r.cluster) || !complete(r.single);
  const cpuSum =
    r.cluster.replicas.reduce((s, p) => s + p.cpuPercent, 0) +
    r.cluster.redisCpuPercent +
    r.cluster.agentsCpuPercent +
    r.cluster.clientsCpuPercent +
    r.cluster.benchCpuPercent;
  return [
    `${o.endpoints.toLocaleString('en')} endpoints (${o.services} services × ${Math.round(o.endpoints / o.services)}) each sending one sample a second over its own Report stream (many streams per HTTP/2 connection, from one agents process), and ${o.clients} ADS clients (raw HTTP/2, each subscribed to one service's EDS, resources hashed rather than decoded) spread over the replicas; a real \`redis-server\` on loopback without persistence; every replica is \`augur serve\` (tsx) with its defaults except \`xds.warmup 0\`, \`lps.maxEndpoints\`, \`lps.maxStreams\` and \`lps.maxStreamsPerClient\` raised to the endpoints + 1,000 (every simulated agent comes from 127.0.0.1, and one replica takes them all), \`cluster.leaseTtl ${LEASE_TTL_S}\`, \`cluster.renewInterval ${RENEW_S}\` (the defaults). Each mode is measured over ${f0(r.cluster.seconds)} s once every stream is open and every client has its first answer; then, in cluster mode only, ${o.kills} kills. Machine: ${cores} cores; load average at the end of the run: ${load}.`,
    '',
    markdownTable(
      [
        'mode',
        'endpoints',
        'offered samples/s',
        'acked samples/s',
        'accepted by replicas /s',
        'read and stored by owners /s',
        'xDS push p50 / p99 / max (pushes; clients)',
        'CPU of Redis / agents / ADS clients / bench',
      ],
      [modeRow(r.cluster), modeRow(r.single)],
    ),
    '',
    markdownTable(
      [
        'mode',
        'replica',
        'CPU',
        'event-loop lag p99 (worst 5 s)',
        'RSS',
        'samples/s accepted from its agents',
        'samples/s read as owner',
        'services owned',
        'ADS clients / pushes received',
      ],
      replicaRows,
    ),
    '',
    r.takeovers.length > 0
      ? `**Takeover after kill -9 of a service's owner** (${r.takeovers.length} kills, the killed replica restarted each time and given its share back before the next): lease acquired by a survivor p50 ${f0(quantile(lease, 0.5))} ms, max ${f0(Math.max(...lease))} ms; the survivor's first published list of the service p50 ${f0(quantile(list, 0.5))} ms, max ${f0(Math.max(...list))} ms (documented bound ${(LEASE_TTL_S + RENEW_S) * 1000} ms for the lease; the list adds replaying the service's stream and scoring). Each measured from the SIGKILL to the bench seeing, on Redis, the lease held by another replica (polled every 10 ms) and the first list of the service written under the new token (the lists channel). Per kill (ms, lease / list; then, from the new owner's log, the stream entries it replayed, the replay's time and the scoring and first write after it): ${r.takeovers.map((t) => `${t.victim} ${t.service} ${f0(t.leaseMs)} / ${f0(t.listMs)} (${f0(t.replayedEntries)} entries in ${f0(t.replayMs)} ms; ${f0(t.scoreAndWriteMs)} ms)`).join('; ')}.`
      : 'No kills were run (--kills 0).',
    '',
    `**xDS push latency** is the time from the owner's publication of a service's list (cluster: the bench's Redis subscriber receiving the owner's PUBLISH; one replica: the bench's LoadPrediction Watch receiving the list) to an ADS client holding an assignment of that service whose resource bytes differ from its previous one, on every replica, attributed to the latest list of the service published before it (or up to ${SLACK_MS} ms after it: the bench is one more subscriber and may see a publication after a replica has pushed it; such pushes count as 0 ms: ${r.cluster.pushesEarly} of ${r.cluster.pushesMeasured} in cluster mode, ${r.single.pushesEarly} of ${r.single.pushesMeasured} on one replica); lists the owner's hysteresis did not push are not counted. Accepted = samples passed on to Redis by the replicas their agents reach (cluster) or stored (one replica); read and stored by owners = the owners' sample-stream reads stored or already held from their own agents.`,
    '',
    limited
      ? `**The machine is the limit here**: the owners kept up with ${f0(sustained(r.cluster) * 100)} % of the offered samples in cluster mode (${f0(r.cluster.openStreams)} of ${o.endpoints} streams open, ${r.cluster.clientsPushed} of ${o.clients} clients pushed to) and one replica with ${f0(sustained(r.single) * 100)} % (${f0(r.single.openStreams)} open, ${r.single.clientsPushed} clients pushed to); in cluster mode the processes on this ${cores}-core machine took ${f0(cpuSum)} % of a core together (replicas ${r.cluster.replicas.map((p) => `${f0(p.cpuPercent)} %`).join(', ')}; Redis ${f0(r.cluster.redisCpuPercent)} %; agents ${f0(r.cluster.agentsCpuPercent)} %; ADS clients ${f0(r.cluster.clientsCpuPercent)} %; bench ${f0(r.cluster.benchCpuPercent)} %). The load generators share the cores with what they measure; on a machine with a core per replica the figures would differ.`
      : `Both modes kept up with the offered load (≥ 95 % of the streams open and of the offered samples stored, and pushes reached the clients). In cluster mode the processes took ${f0(cpuSum)} % of a core together on this ${cores}-core machine.`,
  ].join('\n');
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, '/'))) {
  const options = parseClusterOptions(process.argv.slice(2));
  const result = await runClusterBench(options);
  const body = clusterSection(result);
  const flags = process.argv.slice(2).filter((a) => a !== '--no-write');
  if (options.write)
    writeBenchmarkSection(
      'Cluster (3 replicas on Redis vs one replica)',
      `npm run bench:cluster${flags.length > 0 ? ` -- ${flags.join(' ')}` : ''}`,
      body,
    );
  else console.log(body);
  process.exit(0);
}
