/**
 * `npm run bench:rrm`: what the RRM costs per routing decision, with 1,000 endpoints in the
 * service (lists republished every second, as the LPS's scoring tick does).
 *
 * 1. In process: CPU per request of the RRM's own work (decode the ProcessingRequest, read the
 *    headers, pick, count the request in flight, encode the answer; with the response phase,
 *    decode the response headers and record the response), for the request shapes that matter.
 * 2. Over loopback: servers in turn, each in its own process (a node:http2 server that answers
 *    each message with a fixed one, the floor; augur's ext_proc fast path, `rrm.extProcListen`;
 *    augur's gRPC address, grpc-js), and an open-loop load generator opening one Process stream
 *    per request as Envoy does, at 1,000 and 5,000 requests/s, with the response phase (request
 *    headers, their answer, response headers, their answer: what the shipped bootstraps do) and
 *    without it (request headers only): the latency of the pick (write of the request headers to
 *    their answer), p50 and p99, what augur adds over the floor, and the server's CPU per
 *    exchange; then a closed-loop run for the most exchanges per second.
 * 3. The fast path on worker processes (`rrm.extProcWorkers`: 2, and one per core where there
 *    are more), the load over 4 connections, next to the floor and one process over 4 too.
 */
import { fork, type ChildProcess } from 'node:child_process';
import http2 from 'node:http2';
import net from 'node:net';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { loadEnvoyProtos } from '../src/common/envoy-protos.js';
import { frameMessage } from '../src/common/grpc-framing.js';
import { decodeProcessingRequest } from '../src/rrm/ext-proc/messages.js';
import {
  accessLogBatch,
  accessLogEntryBytes,
  entriesPerBuffer,
  readAccessLogBatch,
} from './als-entry.js';
import { markdownTable, quantile, writeBenchmarkSection } from './report.js';
import type { Rrm } from '../src/rrm/rrm.js';
import { BenchListSource, benchRrm } from './rrm-server.js';

const ENDPOINTS = 1000;
const RATES = (process.env.BENCH_RRM_RATES ?? '1000,5000').split(',').map(Number);
const SECONDS_PER_RATE = Number(process.env.BENCH_RRM_SECONDS ?? 6);
const WARMUP_SECONDS = 1;
/** Set to 1 for the in-process figures only (printed, BENCHMARKS.md left alone): a short run. */
const IN_PROCESS_ONLY = process.env.BENCH_RRM_IN_PROCESS_ONLY === '1';

const requestType = loadEnvoyProtos().root.lookupType(
  'envoy.service.ext_proc.v3.ProcessingRequest',
);

/** Request headers as Envoy sends them for a typical browser/API request, plus `extra`. */
function requestBytes(extra: Array<[string, string]> = []): Uint8Array {
  const headers: Array<[string, string]> = [
    [':authority', 'shop.example.com'],
    [':path', '/api/v1/cart?session=9f2c'],
    [':method', 'GET'],
    [':scheme', 'https'],
    ['user-agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36'],
    ['accept', 'application/json'],
    ['accept-encoding', 'gzip, br'],
    ['cookie', 'sid=4b1d7e0c9a; theme=dark'],
    ['x-forwarded-for', '203.0.113.7'],
    ['x-forwarded-proto', 'https'],
    ['x-request-id', '5b0c9d62-5c6e-4e0e-9f9e-2f0f1e7d3a11'],
    ['x-envoy-expected-rq-timeout-ms', '15000'],
    ...extra,
  ];
  const msg = {
    request_headers: {
      headers: { headers: headers.map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) },
      end_of_stream: true,
    },
    attributes: {
      'envoy.filters.http.ext_proc': {
        fields: {
          'xds.route_name': { stringValue: 'shop-route' },
          'xds.cluster_name': { stringValue: 'bench' },
        },
      },
    },
  };
  return requestType.encode(requestType.fromObject(msg)).finish();
}

/** Response headers as Envoy sends them on the routed path, with the endpoint that answered. */
function responseBytes(upstreamAddress: string): Uint8Array {
  const msg = {
    response_headers: {
      headers: {
        headers: [
          [':status', '200'],
          ['content-type', 'application/json'],
          ['content-length', '512'],
          ['date', 'Tue, 01 Dec 2026 10:00:00 GMT'],
          ['x-envoy-upstream-service-time', '12'],
        ].map(([key, v]) => ({ key, raw_value: Buffer.from(v!) })),
      },
      end_of_stream: false,
    },
    attributes: {
      'envoy.filters.http.ext_proc': {
        fields: { 'upstream.address': { stringValue: upstreamAddress } },
      },
    },
  };
  return requestType.encode(requestType.fromObject(msg)).finish();
}

function cpuMicros(u: NodeJS.CpuUsage): number {
  return u.user + u.system;
}

/** Part 1: requests in a loop, in this process. */
function inProcess(): Array<Array<string | number>> {
  const source = new BenchListSource('bench', ENDPOINTS);
  const rrm = benchRrm(source);
  const highest = benchRrm(source, 'highest-score');
  const small = benchRrm(new BenchListSource('bench', 10));
  const rows: Array<Array<string | number>> = [];
  const random = (n: number) => Math.floor(Math.random() * n);
  const callerLists = Array.from({ length: 20_000 }, () =>
    requestBytes([
      ['x-augur-endpoints', Array.from({ length: 5 }, () => `ep-${random(ENDPOINTS)}`).join(',')],
    ]),
  );
  const defaultReq = requestBytes();
  const offReq = requestBytes([
    ['x-augur-dynamic-routing', 'false'],
    ['x-gateway-destination-endpoint', '6.6.6.6:22'],
  ]);
  // The response headers name the pick's address, as Envoy's upstream.address does.
  const responses = new Map<string, Uint8Array>();
  const responseFor = (answer: Uint8Array): Uint8Array => {
    const text = Buffer.from(answer.buffer, answer.byteOffset, answer.byteLength).toString(
      'latin1',
    );
    const pick = /(\d+\.\d+\.\d+\.\d+:\d+)/.exec(text)?.[1] ?? '0.0.0.0:0';
    let bytes = responses.get(pick);
    if (!bytes) responses.set(pick, (bytes = responseBytes(pick)));
    return bytes;
  };
  const shapes: Array<{
    name: string;
    next: (i: number) => Uint8Array;
    republishEvery?: number;
    rrm?: Rrm;
    /** Send the response headers too (the response phase), answered by the pick. */
    respond?: boolean;
  }> = [
    {
      name: 'default, request headers only (1,000 endpoints; expected-delay: 16 drawn by weight)',
      next: () => defaultReq,
    },
    {
      name: 'default, with the response phase (request and response headers, the shipped bootstraps)',
      next: () => defaultReq,
      respond: true,
    },
    {
      name: 'default with the response phase, list republished every 5,000 requests',
      next: () => defaultReq,
      republishEvery: 5000,
      respond: true,
    },
    {
      name: 'a service of 10 endpoints, with the response phase (all 10 considered)',
      next: () => defaultReq,
      rrm: small,
      respond: true,
    },
    {
      name: '`dynamicPicker: highest-score`, request headers only (one answer per version)',
      next: () => defaultReq,
      rrm: highest,
    },
    {
      name: 'x-augur-endpoints: 5 of 1,000 (20,000 distinct lists), with the response phase',
      next: (i) => callerLists[i % callerLists.length]!,
      respond: true,
    },
    {
      name: 'dynamic off + client-sent destination header, request headers only',
      next: () => offReq,
    },
  ];
  // Each shape: 5 runs of 40,000 requests; the median run is reported (this machine is shared
  // and a single run can be a quarter off either way).
  const RUNS = 5;
  const n = 40_000;
  for (const shape of shapes) {
    const handler = (shape.rrm ?? rrm).extProc;
    const one = (i: number): number => {
      const exchange = handler.open('127.0.0.1');
      const answer = exchange.answer(decodeProcessingRequest(shape.next(i)));
      let bytes = answer.length;
      if (shape.respond)
        bytes += exchange.answer(decodeProcessingRequest(responseFor(answer))).length;
      exchange.close();
      return bytes;
    };
    for (let i = 0; i < 5000; i++) one(i);
    const runs: Array<{ cpu: number; wall: number }> = [];
    let bytes = 0;
    let k = 0;
    for (let run = 0; run < RUNS; run++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < n; i++, k++) {
        if (shape.republishEvery && k % shape.republishEvery === 0) source.republish();
        bytes += one(k);
      }
      runs.push({ wall: performance.now() - t0, cpu: cpuMicros(process.cpuUsage(c0)) });
    }
    if (bytes === 0) throw new Error('no answers');
    runs.sort((a, b) => a.cpu - b.cpu);
    const median = runs[RUNS >> 1]!;
    rows.push([
      shape.name,
      (median.cpu / n).toFixed(2),
      `${(runs[0]!.cpu / n).toFixed(1)}-${(runs[RUNS - 1]!.cpu / n).toFixed(1)}`,
      Math.round(1e6 / (median.cpu / n)).toLocaleString('en'),
    ]);
  }
  // The other way to hear of responses: Envoy's gRPC access log, one batch per 16 KiB of entries.
  {
    const perBatch = entriesPerBuffer();
    const batch = accessLogBatch(perBatch);
    for (let i = 0; i < 500; i++) readAccessLogBatch(batch);
    const runs: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const c0 = process.cpuUsage();
      for (let i = 0; i < 1000; i++) readAccessLogBatch(batch);
      runs.push(cpuMicros(process.cpuUsage(c0)) / (1000 * perBatch));
    }
    runs.sort((a, b) => a - b);
    rows.push([
      `for comparison: reading the responses from Envoy's gRPC access log instead (decode a batch of ${perBatch} entries of ${Math.round(accessLogEntryBytes())} bytes, per entry; no pick)`,
      runs[RUNS >> 1]!.toFixed(2),
      `${runs[0]!.toFixed(1)}-${runs[RUNS - 1]!.toFixed(1)}`,
      Math.round(1e6 / runs[RUNS >> 1]!).toLocaleString('en'),
    ]);
  }
  // What one new list version costs (table build), the price paid once per LPS tick.
  const t0 = process.cpuUsage();
  for (let i = 0; i < 50; i++) source.republish();
  const perTable = cpuMicros(process.cpuUsage(t0)) / 50;
  rows.push([
    'new list version of 1,000 endpoints (per LPS tick, incl. building it)',
    perTable.toFixed(0),
    '-',
    '-',
  ]);
  void rrm.stop();
  void highest.stop();
  void small.stop();
  return rows;
}

/** The server's event-loop delay over a window, ms. */
interface LoopDelay {
  p50: number;
  p99: number;
  max: number;
}

interface ServerChild {
  child: ChildProcess;
  address: string;
  cpu(): Promise<number>;
  /** Event-loop delay since the last call (the echo server has none). */
  loop(): Promise<LoopDelay>;
  stop(): Promise<void>;
}

type Variant = 'augur' | 'plain' | 'http2' | 'floor' | 'echo' | `workers:${number}`;

async function startServer(variant: Variant = 'augur'): Promise<ServerChild> {
  const child = fork(
    fileURLToPath(new URL('./rrm-server.ts', import.meta.url)),
    [String(ENDPOINTS), variant],
    {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const address = await new Promise<string>((resolve, reject) => {
    child.once('message', (m: { address?: string }) =>
      m.address ? resolve(m.address) : reject(new Error('no address')),
    );
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
  return {
    child,
    address,
    cpu: () =>
      new Promise((resolve) => {
        child.once('message', (m: { cpu: NodeJS.CpuUsage }) => resolve(cpuMicros(m.cpu)));
        child.send({ cmd: 'cpu' });
      }),
    loop: () =>
      new Promise((resolve) => {
        child.once('message', (m: { loop: LoopDelay }) => resolve(m.loop));
        child.send({ cmd: 'loop' });
      }),
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.send({ cmd: 'stop' });
      }),
  };
}

const PATH = '/envoy.service.ext_proc.v3.ExternalProcessor/Process';

/**
 * The load generator speaks gRPC over node:http2 directly (length-prefixed messages on one
 * HTTP/2 connection, a stream per request), as Envoy's own gRPC client does: the grpc-js
 * client costs about 1 ms of CPU per stream here and would measure itself, not the server.
 */
class RawExtProcClient {
  private readonly sessions: http2.ClientHttp2Session[];
  private readonly address: string;
  private next = 0;
  /** `connections` HTTP/2 connections, used in turn (as Envoy's worker threads each hold one). */
  constructor(address: string, connections = 1) {
    this.address = address;
    this.sessions = Array.from({ length: connections }, () => this.connect());
  }

  private connect(): http2.ClientHttp2Session {
    // Envoy sets TCP_NODELAY on its upstream connections; so does this client.
    const [host, port] = [
      this.address.slice(0, this.address.lastIndexOf(':')),
      this.address.slice(this.address.lastIndexOf(':') + 1),
    ];
    const session = http2.connect(`http://${this.address}`, {
      createConnection: () => net.connect({ host, port: Number(port), noDelay: true }),
    });
    session.on('error', () => undefined);
    return session;
  }

  /**
   * One exchange as Envoy holds it: open, send the request headers, await their answer; with
   * `response`, send it (the response headers) and await its answer and the server's end of
   * the stream; else half-close. Resolves with the milliseconds to the first answer (the pick).
   */
  exchange(message: Buffer, response?: (answer: Buffer) => Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      const i = this.next++ % this.sessions.length;
      // An overloaded server may refuse streams and drop the connection; open a new one.
      if (this.sessions[i]!.destroyed || this.sessions[i]!.closed)
        this.sessions[i] = this.connect();
      const stream = this.sessions[i]!.request({
        ':method': 'POST',
        ':path': PATH,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      let answers = 0;
      let picked = 0;
      stream.on('data', (chunk: Buffer) => {
        if (chunk.length < 5) return;
        answers++;
        if (answers === 1) {
          picked = performance.now() - t0;
          if (response) stream.write(frameMessage(response(chunk)));
          else {
            // Envoy half-closes; the server then ends its side with grpc-status 0.
            stream.end();
            resolve(picked);
          }
        } else if (answers === 2) {
          stream.end();
        }
      });
      stream.on('trailers', (trailers) => {
        if (answers === 0)
          reject(new Error(`no answer: grpc-status ${String(trailers['grpc-status'])}`));
      });
      stream.on('close', () => {
        if (response && answers >= 2) resolve(picked);
        else if (response) reject(new Error(`stream closed after ${answers} answers`));
      });
      stream.on('error', reject);
      stream.write(frameMessage(message));
    });
  }

  close(): void {
    for (const s of this.sessions) s.close();
  }
}

interface RateResult {
  /** Event-loop delay of the server and of the load generator over the window. */
  serverLoop: LoopDelay;
  generatorLoop: LoopDelay;
  rate: number;
  achieved: number;
  p50: number;
  p99: number;
  max: number;
  serverCpuPerExchange: number;
  errors: number;
  firstError: string;
}

/** The load generator's own event-loop delay (its waits are in every latency it measures). */
const generatorLoop = monitorEventLoopDelay({ resolution: 1 });
generatorLoop.enable();

async function openLoop(
  server: ServerChild,
  client: RawExtProcClient,
  rate: number,
  response: ((answer: Buffer) => Buffer) | undefined,
): Promise<RateResult> {
  const request = Buffer.from(requestBytes());
  const latencies: number[] = [];
  let errors = 0;
  let firstError = '';
  let inWindow = false;
  let sentInWindow = 0;
  const start = performance.now();
  const windowStart = start + WARMUP_SECONDS * 1000;
  const end = windowStart + SECONDS_PER_RATE * 1000;
  let cpu0 = 0;
  let windowT0 = 0;
  const pending = new Set<Promise<void>>();
  let due = 0;
  let last = start;
  await new Promise<void>((done) => {
    const timer = setInterval(() => {
      const now = performance.now();
      if (!inWindow && now >= windowStart) {
        inWindow = true;
        windowT0 = now;
        void server.cpu().then((c) => {
          cpu0 = c;
          return server.loop(); // resets the server's loop-delay histogram
        });
        generatorLoop.reset();
      }
      if (now >= end) {
        clearInterval(timer);
        done();
        return;
      }
      due += ((now - last) / 1000) * rate;
      last = now;
      const record = inWindow;
      while (due >= 1) {
        due -= 1;
        if (record) sentInWindow++;
        const p = client.exchange(request, response).then(
          (ms) => {
            if (record) latencies.push(ms);
          },
          (err: Error) => {
            if (errors++ === 0) firstError = err.message;
          },
        );
        pending.add(p);
        void p.finally(() => pending.delete(p));
      }
    }, 1);
  });
  const windowSeconds = (performance.now() - windowT0) / 1000;
  await Promise.all(pending);
  const cpu1 = await server.cpu();
  const serverLoop = await server.loop();
  return {
    serverLoop,
    generatorLoop: {
      p50: generatorLoop.percentile(50) / 1e6,
      p99: generatorLoop.percentile(99) / 1e6,
      max: generatorLoop.max / 1e6,
    },
    rate,
    achieved: Math.round(sentInWindow / windowSeconds),
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    max: quantile(latencies, 1),
    serverCpuPerExchange: (cpu1 - cpu0) / latencies.length,
    errors,
    firstError,
  };
}

async function closedLoop(
  server: ServerChild,
  client: RawExtProcClient,
  concurrency: number,
  seconds: number,
  response: ((answer: Buffer) => Buffer) | undefined,
) {
  const request = Buffer.from(requestBytes());
  let count = 0;
  const end = performance.now() + seconds * 1000;
  const cpu0 = await server.cpu();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        try {
          await client.exchange(request, response);
          count++;
        } catch {
          // counted as not done; the open-loop runs report errors
        }
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const cpu = (await server.cpu()) - cpu0;
  return {
    perSecond: Math.round(count / wall),
    serverCpuPerExchange: cpu / count,
    serverCores: cpu / 1e6 / wall,
  };
}

/** `count` one-byte round trips in a row over one TCP connection; each one's milliseconds. */
async function tcpEcho(address: string, count: number): Promise<number[]> {
  const at = address.lastIndexOf(':');
  const socket = net.connect({
    host: address.slice(0, at),
    port: Number(address.slice(at + 1)),
    noDelay: true,
  });
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const out: number[] = [];
  for (let i = 0; i < count + 500; i++) {
    const t0 = performance.now();
    await new Promise((resolve) => {
      socket.once('data', resolve);
      socket.write('x');
    });
    if (i >= 500) out.push(performance.now() - t0); // the first 500 warm up
  }
  socket.destroy();
  return out;
}

async function main(): Promise<void> {
  const loadBefore = loadavg()[0]!;
  console.log(`in-process decisions, ${ENDPOINTS} endpoints ...`);
  const decisionRows = inProcess();
  const decisionTable = markdownTable(
    [
      'request shape',
      'CPU µs / decision (median of 5 runs)',
      'range of the 5 runs',
      'requests/s per core (1 / CPU)',
    ],
    decisionRows,
  );
  console.log(decisionTable);
  if (IN_PROCESS_ONLY) return;

  // The round trip between two processes here, before any HTTP/2: 5,000 one-byte TCP echoes in a row.
  const echo = await startServer('echo');
  const echoLatencies = await tcpEcho(echo.address, 5000);
  await echo.stop();
  console.log('tcp echo', quantile(echoLatencies, 0.5), quantile(echoLatencies, 0.99));

  // The response headers name the pick (the first address of the answer), as Envoy's
  // upstream.address does when the pick answered.
  const responses = new Map<string, Buffer>();
  const responseFor = (answer: Buffer): Buffer => {
    const pick = /(\d+\.\d+\.\d+\.\d+:\d+)/.exec(answer.toString('latin1'))?.[1] ?? '0.0.0.0:0';
    let bytes = responses.get(pick);
    if (!bytes) responses.set(pick, (bytes = Buffer.from(responseBytes(pick))));
    return bytes;
  };
  const variants: Array<{
    variant: Variant;
    name: string;
    respond: boolean;
    connections?: number;
  }> = [
    {
      variant: 'floor',
      name: 'floor: node:http2, fixed answers, no RRM; request headers only',
      respond: false,
    },
    {
      variant: 'floor',
      name: 'floor: node:http2, fixed answers, no RRM; request + response headers',
      respond: true,
    },
    {
      variant: 'http2',
      name: 'augur, `rrm.extProcListen` (node:http2); request headers only',
      respond: false,
    },
    {
      variant: 'http2',
      name: 'augur, `rrm.extProcListen` (node:http2); request + response headers',
      respond: true,
    },
    {
      variant: 'augur',
      name: 'augur, the gRPC address (grpc-js); request + response headers',
      respond: true,
    },
    // The fast path on worker processes (`rrm.extProcWorkers`), which share its port by
    // connection: the load comes over 4 connections, as from an Envoy with 4 worker threads.
    {
      variant: 'floor',
      name: 'floor, 4 connections; request + response headers',
      respond: true,
      connections: 4,
    },
    {
      variant: 'http2',
      name: 'augur fast path, 1 process, 4 connections; request + response headers',
      respond: true,
      connections: 4,
    },
    ...[...new Set([2, availableParallelism()])].map((n) => ({
      variant: `workers:${n}` as Variant,
      name: `augur fast path, \`rrm.extProcWorkers: ${n}\`, 4 connections; request + response headers`,
      respond: true,
      connections: 4,
    })),
  ];
  const rateRows: Array<Array<string | number>> = [];
  const maxRows: Array<Array<string | number>> = [];
  const failures: string[] = [];
  const floorAt = new Map<string, RateResult>();
  for (const { variant, name, respond, connections } of variants) {
    const server = await startServer(variant);
    const client = new RawExtProcClient(server.address, connections);
    const response = respond ? responseFor : undefined;
    // Warm both sides (JIT, HTTP/2 connection) before measuring.
    for (let i = 0; i < 2000; i++) await client.exchange(Buffer.from(requestBytes()), response);
    for (const rate of RATES) {
      console.log(`${name}: open loop at ${rate} req/s for ${SECONDS_PER_RATE} s ...`);
      const r = await openLoop(server, client, rate, response);
      console.log(r);
      if (variant === 'floor') floorAt.set(`${respond}-${connections ?? 1}-${rate}`, r);
      const floor = floorAt.get(`${respond}-${connections ?? 1}-${rate}`);
      const over = (x: number, f: number | undefined): string =>
        variant === 'floor' || f === undefined || r.errors > 0 ? '-' : (x - f).toFixed(3);
      rateRows.push([
        name,
        r.rate,
        r.achieved,
        r.p50.toFixed(3),
        r.p99.toFixed(3),
        r.max.toFixed(1),
        over(r.p50, floor?.p50),
        over(r.p99, floor?.p99),
        `${r.serverLoop.p99.toFixed(1)} / ${r.serverLoop.max.toFixed(1)}`,
        `${r.generatorLoop.p99.toFixed(1)} / ${r.generatorLoop.max.toFixed(1)}`,
        r.serverCpuPerExchange.toFixed(1),
        r.errors,
      ]);
      if (r.errors > 0)
        failures.push(
          `${name} at ${r.rate} req/s: ${r.errors} exchanges failed (first: "${r.firstError}"): the server could not keep up, streams queued, and Node's HTTP/2 session refused new ones. Envoy would count these as ext_proc failures and, with \`failure_mode_allow\`, send the requests on through the cluster's fallback policy.`,
        );
    }
    console.log(`${name}: closed loop, 64 streams in flight ...`);
    const max = await closedLoop(server, client, 64, 4, response);
    console.log(max);
    maxRows.push([
      name,
      max.perSecond.toLocaleString('en'),
      max.serverCores.toFixed(2),
      max.serverCpuPerExchange.toFixed(1),
    ]);
    client.close();
    await server.stop();
  }

  const body = [
    `One service of ${ENDPOINTS.toLocaleString('en')} endpoints; its list is republished (new version, new scores) every second, as the LPS's scoring tick does. Targets: p99 of one exchange under 1 ms, under 30 µs of CPU per decision.`,
    '',
    "**The RRM's own work per decision** (in process, no transport: decode the ProcessingRequest with 12 headers and the route/cluster attributes, read the headers, pick, encode the answer; the pipeline runs once per list version and request shape, and the encoded answer is reused):",
    '',
    decisionTable,
    '',
    `**The machine's floor**: a one-byte TCP echo between two processes, 5,000 in a row: p50 ${quantile(echoLatencies, 0.5).toFixed(3)} ms, p99 ${quantile(echoLatencies, 0.99).toFixed(3)} ms. A p99 under 1 ms for a whole ext_proc exchange cannot be shown on a machine whose bare round trip is this; the figures below compare augur with the same exchange against a server that does nothing.`,
    '',
    `**One ext_proc exchange over loopback** (each server in its own process; the load generator speaks gRPC on node:http2 as Envoy does: one Process stream per request on one connection, TCP_NODELAY, the request headers sent, the answer awaited, the stream half-closed; open loop, ${SECONDS_PER_RATE} s measured after ${WARMUP_SECONDS} s of warm-up; latency from the write of the headers to the answer). The floor is the same exchange against a node:http2 server that answers a fixed message and does nothing else: what loopback, the two processes' event loops and HTTP/2 cost on this machine; "added" is augur's figure minus the floor's at the same rate and percentile. The loop delays say where the waits are: how late each process's event loop ran (a request that arrived waited at most that long before anything of it ran there).`,
    '',
    markdownTable(
      [
        'server',
        'offered req/s',
        'achieved req/s',
        'p50 ms',
        'p99 ms',
        'max ms',
        'added p50 ms',
        'added p99 ms',
        'server loop delay p99 / max ms',
        'generator loop delay p99 / max ms',
        'server CPU µs / exchange',
        'errors',
      ],
      rateRows,
    ),
    '',
    `The rows with 4 connections compare the fast path on worker processes (\`rrm.extProcWorkers\`, node:cluster handing each connection to the next worker; each worker an RRM over a Watch stream to the server process, whose CPU the figures include) with one process and with the floor, each over 4 connections as from an Envoy with 4 worker threads. Workers pay where the machine has cores to spare: on ${availableParallelism()} cores, shared with the load generator, more processes mostly add context switches.`,
    '',
    ...failures.map((f) => `${f}\n`),
    '**Most decisions per second** (closed loop, 64 streams in flight, 4 s):',
    '',
    markdownTable(
      ['server', 'exchanges/s', 'server cores busy', 'server CPU µs / exchange'],
      maxRows,
    ),
    '',
    `Load average of the 2-core machine: ${loadBefore.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end (${cpus().length} cores). The load generator shares the machine with the server. The in-process figures are the RRM's own cost; the rest of the server CPU per exchange is HTTP/2 stream handling (a new stream, headers, the answer, trailers per request), about three times as much through grpc-js as on node:http2 directly.`,
  ].join('\n');
  writeBenchmarkSection('RRM: ext_proc decisions', 'npm run bench:rrm', body);
}

await main();
