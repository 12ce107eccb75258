/**
 * `npm run bench:rrm`: what the RRM costs per routing decision, with 1,000 endpoints in the
 * service (lists republished every second, as the LPS's scoring tick does).
 *
 * 1. In process: CPU per decision of the RRM's own work (decode the ProcessingRequest, read
 *    the headers, pick, encode the answer), for the request shapes that matter.
 * 2. Over gRPC: the ext_proc server in its own process, an open-loop load generator opening
 *    one Process stream per request as Envoy does, at 1,000 and 5,000 requests/s: the added
 *    latency of one exchange (write of the request headers to the answer), p50 and p99, and
 *    the server's CPU per exchange (grpc-js transport included); then a closed-loop run for
 *    the most decisions per second one server process gives.
 */
import { fork, type ChildProcess } from 'node:child_process';
import http2 from 'node:http2';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { loadEnvoyProtos } from '../src/common/envoy-protos.js';
import { decodeProcessingRequest } from '../src/rrm/ext-proc/messages.js';
import { markdownTable, quantile, writeBenchmarkSection } from './report.js';
import type { Rrm } from '../src/rrm/rrm.js';
import { BenchListSource, benchRrm } from './rrm-server.js';

const ENDPOINTS = 1000;
const RATES = (process.env.BENCH_RRM_RATES ?? '200,1000,5000').split(',').map(Number);
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

function cpuMicros(u: NodeJS.CpuUsage): number {
  return u.user + u.system;
}

/** Part 1: decisions in a loop, in this process. */
function inProcess(): Array<Array<string | number>> {
  const source = new BenchListSource('bench', ENDPOINTS);
  const rrm = benchRrm(source);
  const highest = benchRrm(source, 'highest-score');
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
  const shapes: Array<{
    name: string;
    next: (i: number) => Uint8Array;
    republishEvery?: number;
    rrm?: Rrm;
  }> = [
    {
      name: 'default (all endpoints; weighted pick: 1,000 equal weights, a new pick each request)',
      next: () => defaultReq,
    },
    {
      name: 'default, list republished every 5,000 decisions',
      next: () => defaultReq,
      republishEvery: 5000,
    },
    {
      name: 'default, `dynamicPicker: highest-score` (one answer per version)',
      next: () => defaultReq,
      rrm: highest,
    },
    {
      name: 'x-augur-endpoints: 5 of 1,000 (20,000 distinct lists)',
      next: (i) => callerLists[i % callerLists.length]!,
    },
    {
      name: 'dynamic off + client-sent destination header',
      next: () => offReq,
    },
  ];
  for (const shape of shapes) {
    const n = 100_000;
    const handler = (shape.rrm ?? rrm).extProc;
    for (let i = 0; i < 5000; i++) handler.answer(decodeProcessingRequest(shape.next(i)));
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      if (shape.republishEvery && i % shape.republishEvery === 0) source.republish();
      bytes += handler.answer(decodeProcessingRequest(shape.next(i))).length;
    }
    const wall = performance.now() - t0;
    const cpu = cpuMicros(process.cpuUsage(c0));
    if (bytes === 0) throw new Error('no answers');
    rows.push([
      shape.name,
      (cpu / n).toFixed(2),
      Math.round((n / wall) * 1000).toLocaleString('en'),
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
  ]);
  void rrm.stop();
  void highest.stop();
  return rows;
}

interface ServerChild {
  child: ChildProcess;
  address: string;
  cpu(): Promise<number>;
  stop(): Promise<void>;
}

async function startServer(variant: 'augur' | 'plain' = 'augur'): Promise<ServerChild> {
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
  private session: http2.ClientHttp2Session;
  private readonly address: string;
  constructor(address: string) {
    this.address = address;
    this.session = this.connect();
  }

  private connect(): http2.ClientHttp2Session {
    const session = http2.connect(`http://${this.address}`);
    session.on('error', () => undefined);
    return session;
  }

  /** One exchange as Envoy holds it: open, send headers, await the answer, half-close. */
  exchange(message: Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      // An overloaded server may refuse streams and drop the connection; open a new one.
      if (this.session.destroyed || this.session.closed) this.session = this.connect();
      const stream = this.session.request({
        ':method': 'POST',
        ':path': PATH,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      const frame = Buffer.allocUnsafe(5 + message.length);
      frame[0] = 0;
      frame.writeUInt32BE(message.length, 1);
      message.copy(frame, 5);
      let answered = false;
      stream.on('data', (chunk: Buffer) => {
        if (answered || chunk.length < 5) return;
        answered = true;
        const dt = performance.now() - t0;
        // Envoy half-closes; the server then ends its side with grpc-status 0.
        stream.end();
        resolve(dt);
      });
      stream.on('trailers', (trailers) => {
        if (!answered)
          reject(new Error(`no answer: grpc-status ${String(trailers['grpc-status'])}`));
      });
      stream.on('error', reject);
      stream.write(frame);
    });
  }

  close(): void {
    this.session.close();
  }
}

interface RateResult {
  rate: number;
  achieved: number;
  p50: number;
  p99: number;
  max: number;
  serverCpuPerExchange: number;
  errors: number;
  firstError: string;
}

async function openLoop(
  server: ServerChild,
  client: RawExtProcClient,
  rate: number,
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
        void server.cpu().then((c) => (cpu0 = c));
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
        const p = client.exchange(request).then(
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
  return {
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
          await client.exchange(request);
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

async function main(): Promise<void> {
  const loadBefore = loadavg()[0]!;
  console.log(`in-process decisions, ${ENDPOINTS} endpoints ...`);
  const decisionRows = inProcess();
  console.log(
    markdownTable(['request shape', 'CPU µs / decision', 'decisions/s (one core)'], decisionRows),
  );
  if (IN_PROCESS_ONLY) return;

  const server = await startServer();
  const client = new RawExtProcClient(server.address);
  // Warm both sides (JIT, HTTP/2 connection) before measuring.
  for (let i = 0; i < 2000; i++) await client.exchange(Buffer.from(requestBytes()));
  const rateResults: RateResult[] = [];
  for (const rate of RATES) {
    console.log(`open loop at ${rate} req/s for ${SECONDS_PER_RATE} s ...`);
    const r = await openLoop(server, client, rate);
    console.log(r);
    rateResults.push(r);
  }
  console.log('closed loop, 64 streams in flight ...');
  const max = await closedLoop(server, client, 64, 4);
  console.log(max);
  client.close();
  await server.stop();

  // The same server as a bare grpc-js server with channelz off (GrpcHost leaves it on).
  const plain = await startServer('plain');
  const plainClient = new RawExtProcClient(plain.address);
  for (let i = 0; i < 2000; i++) await plainClient.exchange(Buffer.from(requestBytes()));
  const plainMax = await closedLoop(plain, plainClient, 64, 4);
  console.log('channelz off', plainMax);
  plainClient.close();
  await plain.stop();

  const body = [
    `One service of ${ENDPOINTS.toLocaleString('en')} endpoints; its list is republished (new version, new scores) every second, as the LPS's scoring tick does. Targets: p99 of one exchange under 1 ms, under 30 µs of CPU per decision.`,
    '',
    "**The RRM's own work per decision** (in process, no transport: decode the ProcessingRequest with 12 headers and the route/cluster attributes, read the headers, pick, encode the answer; the pipeline runs once per list version and request shape, and the encoded answer is reused):",
    '',
    markdownTable(['request shape', 'CPU µs / decision', 'decisions/s (one core)'], decisionRows),
    '',
    `**One ext_proc exchange over gRPC** (server in its own process; the load generator opens one Process stream per request as Envoy does, sends the request headers, waits for the answer, half-closes; open loop, ${SECONDS_PER_RATE} s measured after ${WARMUP_SECONDS} s of warm-up; latency from the write of the headers to the answer; server CPU includes grpc-js's HTTP/2 stream handling):`,
    '',
    markdownTable(
      [
        'offered req/s',
        'achieved req/s',
        'p50 ms',
        'p99 ms',
        'max ms',
        'server CPU µs / exchange',
        'errors',
      ],
      rateResults.map((r) => [
        r.rate,
        r.achieved,
        r.p50.toFixed(3),
        r.p99.toFixed(3),
        r.max.toFixed(1),
        r.serverCpuPerExchange.toFixed(1),
        r.errors,
      ]),
    ),
    '',
    ...rateResults
      .filter((r) => r.errors > 0)
      .map(
        (r) =>
          `At ${r.rate} req/s offered, ${r.errors} exchanges failed (first: "${r.firstError}"): the server could not get the CPU to keep up, streams queued, and Node's HTTP/2 session refused new ones once its memory cap was reached. Envoy would count these as ext_proc failures and, with \`failure_mode_allow\`, send the requests on through the cluster's fallback policy.\n`,
      ),
    `Closed loop, 64 streams in flight: **${max.perSecond.toLocaleString('en')} decisions/s** from one server process (${max.serverCores.toFixed(2)} cores busy, ${max.serverCpuPerExchange.toFixed(1)} µs CPU per exchange).`,
    '',
    `The same server on a bare grpc-js server with channelz off (\`grpc.enable_channelz: 0\`; augur's GrpcHost keeps grpc-js's default, on): **${plainMax.perSecond.toLocaleString('en')} decisions/s**, ${plainMax.serverCpuPerExchange.toFixed(1)} µs CPU per exchange.`,
    '',
    `The load generator shares the machine with the server (and, during this run, with other developers' builds and tests: load average ${loadBefore.toFixed(1)} at the start and ${loadavg()[0]!.toFixed(1)} at the end on ${cpus().length} cores), so the exchange latencies are mostly the wait for a core; where the achieved rate falls short of the offered one, the server process could not get the CPU it needed and requests queued. The in-process figures are the RRM's own cost; the rest of the server CPU per exchange is grpc-js's HTTP/2 stream handling (a new stream, metadata, status and trailers per request).`,
  ].join('\n');
  writeBenchmarkSection('RRM: ext_proc decisions', 'npm run bench:rrm', body);
}

await main();
