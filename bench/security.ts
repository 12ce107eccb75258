/**
 * `npm run bench:security`: what mutual TLS (with authorisation on) costs against plaintext, in
 * one run; each repetition starts a plaintext and an mTLS server side by side:
 *
 * - ingest: 8 agent streams per server (grpc-js, batches of 100 samples, the next batch once the
 *   last is acknowledged), 3 s per mode in alternating 600 ms slices, only the active mode's
 *   streams sending: samples/s, and the process's CPU per 1,000 samples;
 * - ext_proc: Envoy-like exchanges (request headers, answer, half-close; 16 in flight) on the fast
 *   path (`rrm.extProcListen`), 4 s per mode in alternating 250 ms slices: the process's CPU per
 *   exchange;
 * - xDS push: a new 1,000-endpoint list to 20 ADS clients (a child process per server,
 *   node:http2), 60 pushes per mode, alternating: p50 and p99 from the list's change to each client
 *   holding it.
 *
 * Interleaving makes a change in the machine's load (it is shared) fall on both modes alike; run
 * one after the other, the same code had given −15 % to +43 % for ext_proc between repetitions,
 * and −2.5 % to −23 % for ingest between runs.
 *
 * The ingest and ext_proc clients run in the benchmark's process, so its CPU is the server's and
 * the clients' together (TLS costs both sides). Certificates come from scripts/demo-certs.sh.
 * SECURITY_BENCH_REPS (default 5) sets the repetitions.
 *
 * Two more sections measure memory against a hostile client, with `augur serve` in a child
 * process (bench/security-memory-child.ts) so its memory is the server's alone:
 *
 * - `--only=partial [--base=COMMIT]`: 40 half-sent 4 MiB messages on the ext_proc fast path (one
 *   connection each, 3 MiB of each sent): the server's memory before, while they are held, and
 *   once the clients have gone, for this tree and for a base commit (default be0c628, before the
 *   fast path's limits) in the same run;
 * - `--only=flood`: 6,000 fake endpoint ids, each with the largest hello the limits allow (32
 *   labels, keys of 128 and values of 256), every stream kept open, at the default
 *   lps.maxEndpoints (5,000), then 4,000 streams that never send a message (lps.maxStreams,
 *   6,000, keeps 1,000 of them): the RSS, what the store holds and the streams open, against the
 *   documented bounds (lps.maxEndpoints x 64 KB + lps.maxStreams x 80 KB; src/lps/README.md).
 */
import * as grpc from '@grpc/grpc-js';
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import http2 from 'node:http2';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Authorizer } from '../src/common/auth.js';
import { silentLogger } from '../src/common/logger.js';
import { sharedResponses } from '../src/common/shared-response.js';
import { serverCredentials, TlsMaterial } from '../src/common/tls.js';
import { ProbeHealth } from '../src/gen/augur/v1/common.js';
import {
  TelemetryClient,
  type AgentMessage,
  type ControlMessage,
  type EndpointData,
} from '../src/gen/augur/v1/telemetry.js';
import {
  EndpointState,
  type PrioritizedEndpointList,
  type PrioritizedListSource,
} from '../src/lps/types.js';
import { ExtProcClient } from '../src/rrm/ext-proc/client.js';
import { loadConfig } from '../src/serve/config.js';
import { startControlPlane } from '../src/serve/control-plane.js';
import { defaultXdsConfig } from '../src/xds/config.js';
import { TypeUrl } from '../src/xds/types.js';
import { Xds } from '../src/xds/xds.js';
import { markdownTable, quantile, writeBenchmarkSection } from './report.js';

const REPS = Number(process.env.SECURITY_BENCH_REPS ?? 5);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const STREAMS = 8;
const BATCH = 100;
const INGEST_MS = 3000;
const INGEST_SLICE_MS = 600;
const EXT_PROC_MS = 4000;
const EXT_PROC_SLICE_MS = 250;
const EXT_PROC_IN_FLIGHT = 16;
const XDS_CLIENTS = 20;
const XDS_ROUNDS = 60;
const XDS_SIZE = 1000;
const SERVICE = 'bench';

type Mode = 'plaintext' | 'mtls';
const pki = mkdtempSync(join(tmpdir(), 'augur-bench-pki-'));
execFileSync(join(ROOT, 'scripts/demo-certs.sh'), [pki], { stdio: 'ignore' });
const file = (name: string) => join(pki, name);
const principals = [
  { name: 'spiffe://augur.demo/agent/*', roles: ['agent'] as const },
  { name: 'spiffe://augur.demo/envoy', roles: ['dataPlane'] as const },
].map((p) => ({ ...p, roles: [...p.roles], endpoints: '*', services: '*', tokenSha256: [] }));
const tlsConfig = {
  cert: file('augur.crt'),
  key: file('augur.key'),
  ca: file('ca.crt'),
  clientCert: 'required' as const,
  reloadInterval: 5,
  serverName: '',
};
const cpuMs = (since: NodeJS.CpuUsage): number => {
  const c = process.cpuUsage(since);
  return (c.user + c.system) / 1000;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sample(sequence: number): EndpointData {
  return {
    endpointId: '',
    cpuUsage: 0.3,
    memoryUsage: 0.4,
    networkIo: 1000,
    networkCapacity: 0,
    responseTime: 0.01,
    timestamp: new Date(),
    sequence,
    health: ProbeHealth.PROBE_HEALTH_SERVING,
    requestRate: 10,
  };
}

/** augur serve in `mode` (plaintext, or mTLS with authorisation on), on loopback. */
async function startPlane(mode: Mode) {
  const dataDir = mkdtempSync(join(tmpdir(), 'augur-bench-sec-'));
  const secure = mode === 'mtls';
  const config = loadConfig({
    env: {},
    flags: {
      grpcListen: '127.0.0.1:0',
      httpListen: '127.0.0.1:0',
      dataDir,
      logLevel: 'silent',
      lps: { maxSamplesPerSecond: 1e9 },
      rrm: { extProcListen: '127.0.0.1:0' },
      forecast: { lstm: { enabled: false } },
      dashboard: { enabled: false },
      xds: { enabled: false },
      ...(secure && { security: { tls: tlsConfig, principals } }),
    },
  });
  const plane = await startControlPlane({ config, logger: silentLogger });
  return {
    plane,
    mode,
    async stop() {
      await plane.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
type Plane = Awaited<ReturnType<typeof startPlane>>;

/**
 * Agent streams into `plane` that send batches as fast as they are acknowledged while `sending()`
 * says so, and otherwise wait.
 */
async function ingestStreams({ plane, mode }: Plane, sending: () => boolean) {
  const secure = mode === 'mtls';
  const credentials = secure
    ? grpc.credentials.createSsl(
        readFileSync(file('ca.crt')),
        readFileSync(file('agent-1.key')),
        readFileSync(file('agent-1.crt')),
      )
    : grpc.credentials.createInsecure();
  const clients: InstanceType<typeof TelemetryClient>[] = [];
  let stop = false;
  const streams = Array.from({ length: STREAMS }, async (_, i) => {
    const client = new TelemetryClient(plane.grpcAddress, credentials, {
      'grpc.ssl_target_name_override': 'localhost',
    });
    clients.push(client);
    const call = client.report() as grpc.ClientDuplexStream<AgentMessage, ControlMessage>;
    call.on('error', () => undefined);
    let acked = 0;
    let wake: (() => void) | undefined;
    call.on('data', (m: ControlMessage) => {
      if (m.ack) acked = m.ack.lastSequence;
      wake?.();
    });
    call.write({
      hello: {
        endpointId: `bench-${i}`,
        service: SERVICE,
        address: '127.0.0.1',
        port: 9000 + i,
        labels: {},
        agentVersion: 'bench',
        capacity: { cpuCores: 2, memoryBytes: 1 << 30, networkBytesPerSecond: 1e9 },
      },
    });
    let seq = 0;
    while (!stop) {
      if (!sending()) {
        await sleep(5);
        continue;
      }
      const samples = Array.from({ length: BATCH }, () => sample(++seq));
      call.write({ batch: { samples } });
      while (acked < seq && !stop)
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 200);
        });
    }
    call.end();
  });
  const stored = () =>
    plane.lps.store
      .all()
      .reduce((s, r) => s + (r.id.startsWith('bench-') ? r.samplesStored : 0), 0);
  return {
    stored,
    async close() {
      stop = true;
      await Promise.all(streams);
      for (const c of clients) c.close();
    },
  };
}

/**
 * Ingest on both planes, in alternating slices of INGEST_SLICE_MS (INGEST_MS per mode in all):
 * only the active mode's streams send; the first 100 ms of a slice, while the other mode's last
 * batches may still be in its server, are not counted.
 */
async function ingestFigures(
  planes: Record<Mode, Plane>,
  first: Mode,
): Promise<Record<Mode, { samplesPerSecond: number; cpuPer1000: number }>> {
  let active: Mode | undefined = undefined;
  const streams = {
    plaintext: await ingestStreams(planes.plaintext, () => active === 'plaintext'),
    mtls: await ingestStreams(planes.mtls, () => active === 'mtls'),
  };
  const totals = {
    plaintext: { samples: 0, cpu: 0, ms: 0 },
    mtls: { samples: 0, cpu: 0, ms: 0 },
  };
  // Connected and warm: each mode sends for a slice before anything is counted.
  for (const mode of ['plaintext', 'mtls'] as const) {
    active = mode;
    await sleep(INGEST_SLICE_MS);
  }
  const other: Mode = first === 'plaintext' ? 'mtls' : 'plaintext';
  const slices = Math.round(INGEST_MS / (INGEST_SLICE_MS - 100));
  for (let i = 0; i < 2 * slices; i++) {
    const mode: Mode = i % 2 === 0 ? first : other;
    active = mode;
    await sleep(100);
    const n0 = streams[mode].stored();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await sleep(INGEST_SLICE_MS - 100);
    totals[mode].samples += streams[mode].stored() - n0;
    totals[mode].cpu += cpuMs(cpu0);
    totals[mode].ms += performance.now() - t0;
  }
  active = undefined;
  await streams.plaintext.close();
  await streams.mtls.close();
  const figures = (t: { samples: number; cpu: number; ms: number }) => ({
    samplesPerSecond: t.samples / (t.ms / 1000),
    cpuPer1000: (t.cpu / t.samples) * 1000,
  });
  return { plaintext: figures(totals.plaintext), mtls: figures(totals.mtls) };
}

/** An Envoy-like ext_proc client of `plane`'s fast path, once its service has a list. */
async function extProcExchanger({ plane, mode }: Plane) {
  const start = Date.now();
  while (!plane.lps.lists.get(SERVICE)?.endpoints.length) {
    if (Date.now() - start > 10_000) throw new Error('no list for the bench service');
    await sleep(50);
  }
  const client = new ExtProcClient(
    plane.extProcAddress!,
    mode === 'mtls'
      ? {
          ca: readFileSync(file('ca.crt')),
          cert: readFileSync(file('envoy.crt')),
          key: readFileSync(file('envoy.key')),
          servername: 'localhost',
        }
      : undefined,
  );
  const request = {
    headers: [
      [':method', 'GET'],
      [':path', '/'],
      [':authority', 'bench'],
    ] as Array<[string, string]>,
    endOfStream: true,
    clusterName: SERVICE,
  };
  const exchange = async () => {
    const stream = await client.start(request, 2000);
    stream.end();
  };
  for (let i = 0; i < 200; i++) await exchange(); // warm-up
  return { client, exchange };
}

/**
 * ext_proc CPU per exchange on both planes, measured in alternating slices of EXT_PROC_SLICE_MS
 * (EXT_PROC_MS per mode in all), so that a change in the machine's load falls on both alike.
 */
async function extProcFigures(planes: Record<Mode, Plane>): Promise<Record<Mode, number>> {
  const ex = {
    plaintext: await extProcExchanger(planes.plaintext),
    mtls: await extProcExchanger(planes.mtls),
  };
  const cpu: Record<Mode, number> = { plaintext: 0, mtls: 0 };
  const count: Record<Mode, number> = { plaintext: 0, mtls: 0 };
  const slices = Math.round(EXT_PROC_MS / EXT_PROC_SLICE_MS);
  for (let i = 0; i < 2 * slices; i++) {
    const mode: Mode = i % 2 === 0 ? 'plaintext' : 'mtls';
    const { exchange } = ex[mode];
    const until = performance.now() + EXT_PROC_SLICE_MS;
    const cpu0 = process.cpuUsage();
    await Promise.all(
      Array.from({ length: EXT_PROC_IN_FLIGHT }, async () => {
        while (performance.now() < until) {
          await exchange();
          count[mode]++;
        }
      }),
    );
    cpu[mode] += cpuMs(cpu0);
  }
  ex.plaintext.client.close();
  ex.mtls.client.close();
  return {
    plaintext: (cpu.plaintext / count.plaintext) * 1000,
    mtls: (cpu.mtls / count.mtls) * 1000,
  };
}

class Board implements PrioritizedListSource {
  private list: PrioritizedEndpointList | undefined;
  private readonly listeners = new Set<(l: PrioritizedEndpointList) => void>();
  get(s: string) {
    return s === SERVICE ? this.list : undefined;
  }
  services() {
    return this.list ? [SERVICE] : [];
  }
  subscribe(f: (l: PrioritizedEndpointList) => void) {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }
  put(l: PrioritizedEndpointList) {
    this.list = l;
    for (const f of this.listeners) f(l);
  }
}

let version = 0;
function randomList(n: number): PrioritizedEndpointList {
  const raw = Array.from({ length: n }, () => 0.2 + Math.random());
  const sum = raw.reduce((a, b) => a + b, 0);
  return {
    service: SERVICE,
    version: ++version,
    endpoints: raw.map((w, i) => ({
      endpointId: `ep-${i}`,
      score: w / 1.2,
      weight: w / sum,
      address: `10.0.${(i >> 8) & 255}.${i & 255}`,
      port: 8080,
      state: EndpointState.ENDPOINT_STATE_ACTIVE,
      locality: { region: 'r1', zone: `z${i % 3}`, subZone: '' },
    })),
  };
}

/** xDS push latency to XDS_CLIENTS clients in `mode`: p50 and p99, ms. */
/** An xDS server in `mode` with XDS_CLIENTS ADS clients (a child process); `push` times one push. */
async function startXds(mode: Mode) {
  const secure = mode === 'mtls';
  const board = new Board();
  const xds = new Xds({
    config: { ...defaultXdsConfig(), warmup: 0 },
    source: board,
    logger: silentLogger,
  });
  const material = secure ? TlsMaterial.load(tlsConfig) : undefined;
  const authorizer = new Authorizer(secure ? principals : []);
  const server = new grpc.Server({
    interceptors: [...(authorizer.enabled ? [authorizer.interceptor()] : []), sharedResponses],
  });
  xds.register((_n, def, impl) => server.addService(def, impl));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', serverCredentials(material), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  xds.start();
  board.put(randomList(XDS_SIZE));
  const child = fork(
    fileURLToPath(new URL('./xds-clients.ts', import.meta.url)),
    [`127.0.0.1:${port}`, '0', String(XDS_CLIENTS), SERVICE],
    {
      execArgv: ['--import', 'tsx'],
      env: {
        ...process.env,
        ...(secure && {
          XDS_BENCH_TLS: [file('ca.crt'), file('envoy.crt'), file('envoy.key')].join(','),
        }),
      },
    },
  );
  type Arrival = { client: number; at: number; version: string };
  let arrivals: Arrival[] = [];
  const heard = new Set<number>();
  let waiting: (() => void) | undefined;
  child.on('message', (m: { arrivals: Arrival[] } | { ready: boolean }) => {
    if ('ready' in m) return;
    arrivals.push(...m.arrivals);
    for (const a of m.arrivals) heard.add(a.client);
    if (waiting && heard.size >= XDS_CLIENTS) waiting();
  });
  const allArrive = () =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${mode}: only ${heard.size}/${XDS_CLIENTS} clients got the push`)),
        30_000,
      );
      waiting = () => {
        clearTimeout(timer);
        waiting = undefined;
        resolve();
      };
      if (heard.size >= XDS_CLIENTS) waiting();
    });
  const now = () => performance.timeOrigin + performance.now();
  await allArrive();
  return {
    /** One new list: each client's latency from the change to holding it, in ms. */
    async push(): Promise<number[]> {
      arrivals = [];
      heard.clear();
      const t0 = now();
      board.put(randomList(XDS_SIZE));
      await allArrive();
      const expected = xds.cache.getSnapshot('grpc')!.version(TypeUrl.ClusterLoadAssignment);
      return arrivals.filter((a) => a.version === expected).map((a) => a.at - t0);
    },
    async stop(): Promise<void> {
      child.send({ stop: true });
      await new Promise((r) => child.once('exit', r));
      xds.stop();
      server.forceShutdown();
      material?.close();
    },
  };
}

/**
 * xDS push latency on both servers, their pushes alternating (both up), so that a change in the
 * machine's load falls on both alike.
 */
async function xdsFigures(): Promise<Record<Mode, { p50: number; p99: number }>> {
  const servers = { plaintext: await startXds('plaintext'), mtls: await startXds('mtls') };
  try {
    const latencies: Record<Mode, number[]> = { plaintext: [], mtls: [] };
    for (let round = -5; round < XDS_ROUNDS; round++)
      for (const mode of ['plaintext', 'mtls'] as const) {
        await sleep(50);
        const l = await servers[mode].push();
        if (round >= 0) latencies[mode].push(...l); // the first five are a warm-up
      }
    const figures = (l: number[]) => ({ p50: quantile(l, 0.5), p99: quantile(l, 0.99) });
    return { plaintext: figures(latencies.plaintext), mtls: figures(latencies.mtls) };
  } finally {
    await servers.plaintext.stop();
    await servers.mtls.stop();
  }
}

type Figures = Awaited<ReturnType<typeof ingestFigures>>[Mode] &
  Awaited<ReturnType<typeof xdsFigures>>[Mode] & { extProcCpuUs: number };

interface ChildMemory {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  endpoints: number;
  /** Report streams the LPS has open (lps.maxStreams); -1 from a tree without the count. */
  streams: number;
}

/** `augur serve` of the tree at `dir` in a child process, with its addresses. */
async function memoryChild(
  dir: string,
): Promise<{ child: ChildProcess; grpc: string; extProc: string }> {
  const child = fork(join(dir, 'bench', 'security-memory-child.ts'), [], {
    cwd: dir,
    execArgv: ['--expose-gc', '--import', 'tsx'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const ready = await new Promise<{ grpc: string; extProc: string }>((resolve, reject) => {
    child.once('message', (m) => resolve(m as { grpc: string; extProc: string }));
    child.once('exit', (code) => reject(new Error(`memory child in ${dir} exited with ${code}`)));
  });
  return { child, ...ready };
}

function measure(child: ChildProcess): Promise<ChildMemory> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as ChildMemory));
    child.send({ cmd: 'measure' });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.send({ cmd: 'stop' });
  await exited;
}

/** The base commit's src/ in a temporary folder, with this checkout's node_modules and the child. */
function baseTree(commit: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'augur-security-base-'));
  const tar = execFileSync(
    'git',
    ['archive', commit, 'src', 'package.json', 'tsconfig.json', 'proto'],
    {
      cwd: ROOT,
      maxBuffer: 1 << 30,
    },
  );
  execFileSync('tar', ['-x', '-C', dir], { input: tar });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  mkdirSync(join(dir, 'bench'));
  cpSync(
    join(ROOT, 'bench', 'security-memory-child.ts'),
    join(dir, 'bench', 'security-memory-child.ts'),
  );
  return dir;
}

const MiB = 1 << 20;
const PARTIAL_MESSAGES = 40;
const PARTIAL_DECLARED = 4 * MiB;
const PARTIAL_SENT = 3 * MiB;

/** 40 connections each sending 3 MiB of a 4 MiB message; the server's memory along the way. */
async function partialFigures(dir: string) {
  const { child, extProc } = await memoryChild(dir);
  const sessions: http2.ClientHttp2Session[] = [];
  try {
    const before = await measure(child);
    const frame = Buffer.alloc(5 + PARTIAL_SENT, 0x0a);
    frame[0] = 0;
    frame.writeUInt32BE(PARTIAL_DECLARED, 1);
    let refused = 0;
    await Promise.all(
      Array.from({ length: PARTIAL_MESSAGES }, async () => {
        const session = http2.connect(`http://${extProc}`);
        session.on('error', () => undefined);
        sessions.push(session);
        const stream = session.request({
          ':method': 'POST',
          ':path': '/envoy.service.ext_proc.v3.ExternalProcessor/Process',
          'content-type': 'application/grpc',
          te: 'trailers',
        });
        stream.on('error', () => undefined);
        stream.on('response', (h) => {
          if (h['grpc-status'] !== undefined) refused++;
        });
        stream.on('trailers', (h) => {
          if (h['grpc-status'] !== undefined) refused++;
        });
        // Sent once the server has read it all (flow control), or refused; 20 s at most.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 20_000);
          const done = () => {
            clearTimeout(timer);
            resolve();
          };
          stream.write(frame, done);
          stream.once('close', done);
        });
      }),
    );
    await sleep(1000);
    const held = await measure(child);
    // Past rrm.extProcPartialTimeout (10 s), the clients still connected and silent.
    await sleep(11_000);
    const stalled = await measure(child);
    for (const s of sessions) s.destroy();
    await sleep(1000);
    const after = await measure(child);
    return { before, held, stalled, after, refused };
  } finally {
    for (const s of sessions) s.destroy();
    await stopChild(child);
  }
}

const FLOOD_IDS = 6_000;
/** Streams opened after the ids that never send a message (each would hold its place). */
const FLOOD_SILENT = 4_000;
const FLOOD_CLIENTS = 16;
const DEFAULT_MAX_ENDPOINTS = 5000;
const DEFAULT_MAX_STREAMS = 6000;
const BOUND_PER_ENDPOINT = 64 * 1024;
/** The documented cost of one open Report stream beyond its record (src/lps/README.md). */
const BOUND_PER_STREAM = 80 * 1024;

/** 6,000 fake ids with the largest hellos, each stream kept open (so its record is kept). */
async function floodFigures() {
  const { child, grpc: address } = await memoryChild(ROOT);
  const clients = Array.from(
    { length: FLOOD_CLIENTS },
    // A connection each (grpc-js would share one): lps.maxStreamsPerConnection is not the limit
    // this measures.
    () =>
      new TelemetryClient(address, grpc.credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
      }),
  );
  try {
    const before = await measure(child);
    const calls: Array<{ cancel(): void }> = [];
    let next = 0;
    let taken = 0;
    let exhausted = 0;
    const t0 = Date.now();
    await Promise.all(
      clients.map(async (client) => {
        while (next < FLOOD_IDS) {
          const i = next++;
          const labels = Object.fromEntries(
            Array.from({ length: 32 }, (_, k) => [
              `${String(k).padStart(2, '0')}${'k'.repeat(126)}`,
              `${i}`.padEnd(256, 'v'),
            ]),
          );
          const outcome = await new Promise<'taken' | grpc.status>((resolve) => {
            const call = client.report();
            call.on('error', () => undefined);
            call.on('data', (m: ControlMessage) => {
              if (m.config) resolve('taken');
            });
            call.on('status', (st: grpc.StatusObject) => resolve(st.code));
            call.write({
              hello: {
                endpointId: `fake-${i}`,
                service: `svc-${i % 10}`,
                address: '127.0.0.1',
                port: 9000,
                labels,
                agentVersion: 'flood',
              },
            });
            calls.push(call);
          });
          if (outcome === 'taken') taken++;
          else if (outcome === grpc.status.RESOURCE_EXHAUSTED) exhausted++;
        }
      }),
    );
    // Then streams that never say hello: the LPS keeps each open until lps.maxStreams and
    // refuses the rest as they start.
    let silentRefused = 0;
    for (let i = 0; i < FLOOD_SILENT; i++) {
      const call = clients[i % FLOOD_CLIENTS]!.report();
      call.on('error', () => undefined);
      call.on('status', (st: grpc.StatusObject) => {
        if (st.code === grpc.status.RESOURCE_EXHAUSTED) silentRefused++;
      });
      calls.push(call);
    }
    // Settled: every silent stream is either open at the LPS or refused.
    const settleBy = Date.now() + 60_000;
    for (;;) {
      const { streams } = await measure(child);
      if (streams - taken + silentRefused >= FLOOD_SILENT || Date.now() > settleBy) break;
      await sleep(200);
    }
    const seconds = (Date.now() - t0) / 1000;
    await sleep(1000);
    const after = await measure(child);
    for (const c of calls) c.cancel();
    return { before, after, taken, exhausted, silentRefused, seconds };
  } finally {
    for (const c of clients) c.close();
    await stopChild(child);
  }
}

const mb = (bytes: number) => (bytes / MiB).toFixed(1);
const median = (v: number[]) => quantile(v, 0.5);
const span = (v: number[], d = 1) =>
  `${median(v).toFixed(d)} (${Math.min(...v).toFixed(d)}-${Math.max(...v).toFixed(d)})`;

async function partialMain(base: string): Promise<void> {
  const loadStart = loadavg()
    .map((l) => l.toFixed(1))
    .join(', ');
  const baseDir = baseTree(base);
  const trees: Array<[string, string]> = [
    [`base ${base}`, baseDir],
    ['this tree', ROOT],
  ];
  const runs = new Map<string, Array<Awaited<ReturnType<typeof partialFigures>>>>();
  try {
    for (let rep = 0; rep < REPS; rep++) {
      const order = rep % 2 === 0 ? trees : [...trees].reverse();
      for (const [label, dir] of order) {
        const f = await partialFigures(dir);
        runs.set(label, [...(runs.get(label) ?? []), f]);
        console.log(
          `rep ${rep + 1} ${label}: RSS ${mb(f.before.rss)} -> held ${mb(f.held.rss)} -> 11 s ${mb(f.stalled.rss)} -> after ${mb(f.after.rss)} MiB; buffers ${mb(f.before.arrayBuffers)} -> ${mb(f.held.arrayBuffers)} -> ${mb(f.stalled.arrayBuffers)} -> ${mb(f.after.arrayBuffers)} MiB; ${f.refused} refused`,
        );
      }
    }
  } finally {
    rmSync(baseDir, { recursive: true, force: true });
  }
  const loadEnd = loadavg()
    .map((l) => l.toFixed(1))
    .join(', ');
  const rows = trees.map(([label]) => {
    const r = runs.get(label)!;
    const grow = (k: 'held' | 'stalled' | 'after', field: 'rss' | 'arrayBuffers') =>
      span(r.map((f) => (f[k][field] - f.before[field]) / MiB));
    return [
      label,
      span(r.map((f) => f.before.rss / MiB)),
      grow('held', 'rss'),
      grow('stalled', 'rss'),
      grow('after', 'rss'),
      grow('held', 'arrayBuffers'),
      grow('stalled', 'arrayBuffers'),
      grow('after', 'arrayBuffers'),
      span(
        r.map((f) => f.refused),
        0,
      ),
    ];
  });
  const body = [
    `${PARTIAL_MESSAGES} half-sent messages on the ext_proc fast path (\`rrm.extProcListen\`, defaults otherwise): one`,
    `HTTP/2 connection each, a frame declaring ${PARTIAL_DECLARED / MiB} MiB and ${PARTIAL_SENT / MiB} MiB of it sent, never the rest. \`augur serve\``,
    `runs in a child process (bench/security-memory-child.ts); its memory after a full GC: before,`,
    `while the messages are held (1 s after the last write was taken or refused), 11 s later with the`,
    `clients still connected and silent (past rrm.extProcPartialTimeout, 10 s), and 1 s after the`,
    `clients closed their connections. "buffers" is Node's ArrayBuffer memory (where received bytes`,
    `live); RSS is what the OS counts (the allocator may keep freed pages). The base is commit`,
    `\`${base}\` (before the fast path's limits; \`git archive\`, this checkout's node_modules), alternating`,
    `with this tree per repetition; ${REPS} repetitions, median (range), growth over "before" in MiB.`,
    `Load average at the start: ${loadStart}; at the end: ${loadEnd}; ${cpus().length} cores.`,
    '',
    markdownTable(
      [
        'tree',
        'RSS before, MiB',
        'RSS held',
        'RSS 11 s later',
        'RSS after the clients left',
        'buffers held',
        'buffers 11 s later',
        'buffers after the clients left',
        'streams refused',
      ],
      rows,
    ),
  ].join('\n');
  writeBenchmarkSection(
    'bench:security: half-sent ext_proc messages',
    `npm run bench:security -- --only=partial --base=${base}`,
    body,
  );
}

async function floodMain(): Promise<void> {
  const loadStart = loadavg()
    .map((l) => l.toFixed(1))
    .join(', ');
  const runs: Array<Awaited<ReturnType<typeof floodFigures>>> = [];
  for (let rep = 0; rep < REPS; rep++) {
    const f = await floodFigures();
    runs.push(f);
    console.log(
      `rep ${rep + 1}: RSS ${mb(f.before.rss)} -> ${mb(f.after.rss)} MiB, heap ${mb(f.before.heapUsed)} -> ${mb(f.after.heapUsed)} MiB, ${f.after.endpoints} held, ${f.taken} taken, ${f.exhausted} RESOURCE_EXHAUSTED, ${f.after.streams} streams open, ${f.silentRefused} silent refused, ${f.seconds.toFixed(1)} s, load ${loadavg()[0]!.toFixed(1)}`,
    );
  }
  const loadEnd = loadavg()
    .map((l) => l.toFixed(1))
    .join(', ');
  const bound = (DEFAULT_MAX_ENDPOINTS * BOUND_PER_ENDPOINT) / MiB;
  const total =
    (DEFAULT_MAX_ENDPOINTS * BOUND_PER_ENDPOINT + DEFAULT_MAX_STREAMS * BOUND_PER_STREAM) / MiB;
  const rows = [
    [
      'endpoints held',
      span(
        runs.map((f) => f.after.endpoints),
        0,
      ),
    ],
    [
      'hellos taken / refused (RESOURCE_EXHAUSTED)',
      `${span(
        runs.map((f) => f.taken),
        0,
      )} / ${span(
        runs.map((f) => f.exhausted),
        0,
      )}`,
    ],
    [
      `silent streams (no message) open / refused at start (RESOURCE_EXHAUSTED), of ${FLOOD_SILENT.toLocaleString('en')}`,
      `${span(
        runs.map((f) => f.after.streams - f.taken),
        0,
      )} / ${span(
        runs.map((f) => f.silentRefused),
        0,
      )}`,
    ],
    [
      'Report streams open at the LPS (lps.maxStreams 6,000)',
      span(
        runs.map((f) => f.after.streams),
        0,
      ),
    ],
    ['RSS before, MiB', span(runs.map((f) => f.before.rss / MiB))],
    ['RSS after the flood, MiB', span(runs.map((f) => f.after.rss / MiB))],
    ['RSS growth, MiB', span(runs.map((f) => (f.after.rss - f.before.rss) / MiB))],
    ['heap growth, MiB', span(runs.map((f) => (f.after.heapUsed - f.before.heapUsed) / MiB))],
    [
      'RSS growth per open stream (5,000 of them holding a record), KB',
      span(runs.map((f) => (f.after.rss - f.before.rss) / 1024 / Math.max(1, f.after.streams))),
    ],
    [
      'heap growth per endpoint held, KB',
      span(
        runs.map(
          (f) => (f.after.heapUsed - f.before.heapUsed) / 1024 / Math.max(1, f.after.endpoints),
        ),
      ),
    ],
    [
      'documented store bound (lps.maxEndpoints x 64 KB; compare the heap growth), MiB',
      bound.toFixed(1),
    ],
    [
      'documented total bound (lps.maxEndpoints x 64 KB + lps.maxStreams x 80 KB; compare the RSS growth), MiB',
      total.toFixed(1),
    ],
    ['flood duration, s', span(runs.map((f) => f.seconds))],
  ];
  const body = [
    `${FLOOD_IDS.toLocaleString('en')} fake endpoint ids against \`augur serve\` with the default limits (lps.maxEndpoints ${DEFAULT_MAX_ENDPOINTS.toLocaleString('en')},`,
    `1,000 per service; 10 services), each hello as large as the limits allow (32 labels, keys of 128,`,
    `values of 256 characters), ${FLOOD_CLIENTS} clients on a connection each, every stream kept open so its record stays (the issue's`,
    `flood: 17,854 ids took RSS from 177 MB to 1.7 GB; a dropped stream's record without samples is`,
    `forgotten after lps.forgetUnsampledAfter, 60 s); then ${FLOOD_SILENT.toLocaleString('en')} more streams on the same connections that`,
    `never send a message (lps.maxStreams, ${DEFAULT_MAX_STREAMS.toLocaleString('en')}, keeps ${(DEFAULT_MAX_STREAMS - DEFAULT_MAX_ENDPOINTS).toLocaleString('en')} of them open and refuses the rest as they`,
    `start). \`augur serve\` runs in a child process; memory after a full GC, 1 s after the last answer,`,
    `the streams still open. The bounds are src/lps/README.md's "Memory under an`,
    `endpoint-id flood". ${REPS} repetitions, median (range). Load average at the start: ${loadStart};`,
    `at the end: ${loadEnd}; ${cpus().length} cores.`,
    '',
    markdownTable(['', 'this tree'], rows),
  ].join('\n');
  writeBenchmarkSection(
    'bench:security: endpoint-id flood',
    'npm run bench:security -- --only=flood',
    body,
  );
}

async function tlsMain(): Promise<void> {
  const load = loadavg()[0]!.toFixed(1);
  const runs: Record<Mode, Figures[]> = { plaintext: [], mtls: [] };
  for (let rep = 0; rep < REPS; rep++) {
    const order: Mode[] = rep % 2 === 0 ? ['plaintext', 'mtls'] : ['mtls', 'plaintext'];
    const planes = { plaintext: await startPlane('plaintext'), mtls: await startPlane('mtls') };
    let ingest: Awaited<ReturnType<typeof ingestFigures>>;
    let extProc: Record<Mode, number>;
    try {
      ingest = await ingestFigures(planes, order[0]!);
      extProc = await extProcFigures(planes);
    } finally {
      await planes.plaintext.stop();
      await planes.mtls.stop();
    }
    const xds = await xdsFigures();
    for (const mode of order) {
      const f = { ...ingest[mode], extProcCpuUs: extProc[mode], ...xds[mode] };
      runs[mode].push(f);
      console.log(
        `rep ${rep + 1} ${mode}: ${f.samplesPerSecond.toFixed(0)} samples/s, ${f.cpuPer1000.toFixed(1)} ms CPU/1000 samples, ext_proc ${f.extProcCpuUs.toFixed(0)} us CPU/exchange, xDS push p50 ${f.p50.toFixed(1)} ms p99 ${f.p99.toFixed(1)} ms`,
      );
    }
  }
  const metrics: Array<[string, keyof Figures, number]> = [
    ['ingest, samples/s', 'samplesPerSecond', 0],
    ['CPU per 1,000 samples, ms', 'cpuPer1000', 1],
    ['ext_proc CPU per exchange, us', 'extProcCpuUs', 0],
    ['xDS push p50, ms', 'p50', 1],
    ['xDS push p99, ms', 'p99', 1],
  ];
  const median = (v: number[]) => quantile(v, 0.5);
  const span = (v: number[], d: number) =>
    `${median(v).toFixed(d)} (${Math.min(...v).toFixed(d)}-${Math.max(...v).toFixed(d)})`;
  const rows = metrics.map(([label, key, d]) => {
    const plain = runs.plaintext.map((f) => f[key]);
    const mtls = runs.mtls.map((f) => f[key]);
    const ratios = mtls.map((m, i) => m / plain[i]!);
    const change = (r: number) => `${r >= 1 ? '+' : ''}${((r - 1) * 100).toFixed(1)} %`;
    return [
      label,
      span(plain, d),
      span(mtls, d),
      `${change(median(ratios))} (${change(Math.min(...ratios))} to ${change(Math.max(...ratios))})`,
    ];
  });
  const body = [
    `mTLS (client certificates required, authorisation on) against plaintext, both servers up in`,
    `each repetition; ${REPS} repetitions, median (range); the change is the ratio within each`,
    `repetition. Ingest: ${STREAMS} agent streams per server, batches of ${BATCH}, ${INGEST_MS / 1000} s per mode in alternating slices of`,
    `${INGEST_SLICE_MS} ms (the first 100 ms of each not counted), the first mode alternating per repetition. ext_proc:`,
    `the fast path, ${EXT_PROC_IN_FLIGHT} exchanges in flight, ${EXT_PROC_MS / 1000} s per mode in alternating slices of`,
    `${EXT_PROC_SLICE_MS} ms (both servers up), so the machine's load falls on both alike. The ingest and ext_proc clients run`,
    `in the benchmark's process, so its CPU is server and clients together. xDS: ${XDS_CLIENTS} ADS clients`,
    `per server (a child process each), ${XDS_ROUNDS} pushes of a ${XDS_SIZE}-endpoint list per mode and repetition, the`,
    `two servers' pushes alternating. Load average at the`,
    `start: ${load}. Target: under 15 % on each.`,
    '',
    markdownTable(['metric', 'plaintext', 'mTLS', 'mTLS vs plaintext'], rows),
  ].join('\n');
  writeBenchmarkSection('bench:security', 'npm run bench:security', body);
}

async function main(): Promise<void> {
  const args = new Map(
    process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]),
  );
  const only = args.get('only') ?? 'tls';
  if (only === 'tls') await tlsMain();
  else if (only === 'partial') await partialMain(args.get('base') ?? 'be0c628');
  else if (only === 'flood') await floodMain();
  else throw new Error(`--only=${only}: expected tls, partial or flood`);
}

try {
  await main();
} finally {
  rmSync(pki, { recursive: true, force: true });
}
