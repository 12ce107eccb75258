/**
 * The ext_proc server side of `npm run bench:rrm`, run in its own process so its CPU can be
 * measured apart from the load generator's: an RRM over a list source holding one service of
 * N endpoints, republished (new version, new scores) every second like the LPS's scoring tick.
 * Talks to the parent over IPC: sends `{ ready, address }`, answers `cpu` with its cpuUsage.
 */
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import net, { type AddressInfo, type Socket } from 'node:net';
import { GrpcHost } from '../src/common/grpc-host.js';
import { frameMessage } from '../src/common/grpc-framing.js';
import { extProcServiceDefinition } from '../src/rrm/ext-proc/server.js';
import { createRegistry } from '../src/common/http-host.js';
import { silentLogger } from '../src/common/logger.js';
import { loadConfig } from '../src/serve/config.js';
import { EndpointState } from '../src/gen/augur/v1/common.js';
import {
  LoadPredictionService,
  type PrioritizedEndpointList,
} from '../src/gen/augur/v1/load_prediction.js';
import type { PrioritizedListSource } from '../src/lps/types.js';
import { Rrm } from '../src/rrm/rrm.js';
import { ExtProcWorkers } from '../src/serve/ext-proc-workers.js';

export function benchList(
  service: string,
  n: number,
  version: number,
  random: () => number,
): PrioritizedEndpointList {
  const endpoints = Array.from({ length: n }, (_, i) => ({
    endpointId: `ep-${i}`,
    score: random(),
    weight: 1 / n,
    address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    port: 8080,
    state: EndpointState.ENDPOINT_STATE_ACTIVE,
  })).sort((a, b) => b.score - a.score);
  return { service, version, computedAt: new Date(), endpoints };
}

/** One service, republished on demand. */
export class BenchListSource implements PrioritizedListSource {
  private list: PrioritizedEndpointList;
  private readonly listeners = new Set<(l: PrioritizedEndpointList) => void>();
  private seed = 1;
  constructor(
    readonly service: string,
    readonly size: number,
  ) {
    this.list = benchList(service, size, 1, () => this.random());
  }
  private random(): number {
    this.seed = (this.seed * 16807) % 2147483647;
    return this.seed / 2147483647;
  }
  republish(): void {
    this.list = benchList(this.service, this.size, this.list.version + 1, () => this.random());
    for (const l of this.listeners) l(this.list);
  }
  get(service: string) {
    return service === this.service ? this.list : undefined;
  }
  services() {
    return [this.service];
  }
  subscribe(listener: (l: PrioritizedEndpointList) => void) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export function benchRrm(
  source: PrioritizedListSource,
  dynamicPicker: 'expected-delay' | 'highest-score' = 'expected-delay',
  extProcListen = '',
): Rrm {
  const config = loadConfig({
    env: {},
    flags: {
      logLevel: 'silent',
      rrm: { defaultService: 'bench', dynamicPicker, extProcListen },
    },
  });
  return new Rrm({
    config,
    logger: silentLogger,
    registry: createRegistry(false),
    lists: source,
    monitoring: { setMonitoringInterval: async (_s, ids) => ids },
  });
}

async function main(): Promise<void> {
  const size = Number(process.argv[2] ?? 1000);
  const source = new BenchListSource('bench', size);
  // 'augur': ext_proc on augur's gRPC address (GrpcHost, grpc-js); 'http2': on the extra
  // node:http2 listener (rrm.extProcListen); 'plain': a bare grpc-js server with channelz off,
  // to show what GrpcHost's defaults cost; 'floor': no RRM, node:http2 answering a fixed message;
  // 'echo': a TCP echo server.
  // 'workers:N': the fast path on N worker processes (rrm.extProcWorkers), each watching this
  // process's list over WatchPrioritizedEndpoints.
  const variant = process.argv[3] ?? 'augur';
  const rrm = benchRrm(source, 'expected-delay', variant === 'http2' ? '127.0.0.1:0' : '');
  let port: number;
  let stopServer: () => Promise<void>;
  /** CPU of the server's other processes (the workers), µs. */
  let othersCpu = async (): Promise<number> => 0;
  if (variant.startsWith('workers:')) {
    const host = new GrpcHost({ listen: '127.0.0.1:0' });
    host.addService('augur.v1.LoadPrediction', LoadPredictionService, {
      watchPrioritizedEndpoints: (
        call: grpc.ServerWritableStream<unknown, PrioritizedEndpointList>,
      ) => {
        call.sendMetadata(new grpc.Metadata());
        const list = source.get(source.service);
        if (list) call.write(list);
        const unsubscribe = source.subscribe((l) => call.write(l));
        call.on('cancelled', unsubscribe);
        call.on('close', unsubscribe);
      },
    });
    const lps = await host.start();
    const registry = createRegistry();
    const workers = new ExtProcWorkers({
      count: Number(variant.slice('workers:'.length)),
      config: loadConfig({
        env: {},
        flags: {
          logLevel: 'silent',
          rrm: { defaultService: 'bench', extProcListen: '127.0.0.1:0' },
        },
      }),
      lps: `127.0.0.1:${lps.port}`,
      logger: silentLogger,
      registry,
    });
    port = (await workers.start()).port;
    // The workers have the list once a decision names an endpoint; the bench warms up anyway.
    othersCpu = async () => {
      const text = await workers.metrics();
      let seconds = 0;
      for (const m of text.matchAll(/^process_cpu_seconds_total\{worker="\d+"\} (\S+)$/gm))
        seconds += Number(m[1]);
      return seconds * 1e6;
    };
    stopServer = async () => {
      await workers.stop();
      await host.stop();
    };
  } else if (variant === 'echo') {
    // Below the floor: a TCP echo, the round trip between two processes on this machine.
    const server = net.createServer((socket) => {
      socket.setNoDelay(true);
      socket.on('data', (d) => socket.write(d));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    stopServer = () => new Promise((resolve) => server.close(() => resolve()));
  } else if (variant === 'floor') {
    // The floor: node:http2 answering each stream with a fixed message and doing nothing else.
    const answer = frameMessage(Buffer.alloc(200, 1));
    const server = http2.createServer({ settings: { maxConcurrentStreams: 10_000 } });
    server.on('connection', (socket: Socket) => socket.setNoDelay(true));
    server.on('stream', (stream) => {
      stream.on('error', () => undefined);
      stream.respond(
        { ':status': 200, 'content-type': 'application/grpc' },
        { waitForTrailers: true },
      );
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      // Each message (a chunk here: they are small) gets the fixed answer.
      stream.on('data', (chunk: Buffer) => {
        if (chunk.length >= 5) stream.write(answer);
      });
      stream.on('end', () => stream.end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    stopServer = () => new Promise((resolve) => server.close(() => resolve()));
  } else if (variant === 'plain') {
    const server = new grpc.Server({ 'grpc.enable_channelz': 0 });
    server.addService(extProcServiceDefinition, rrm.extProc.implementation());
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    stopServer = async () => server.forceShutdown();
  } else {
    const host = new GrpcHost({ listen: '127.0.0.1:0' });
    rrm.register(host);
    port = (await host.start()).port;
    if (variant === 'http2') port = (await rrm.listenExtProc())!.port;
    stopServer = () => host.stop();
  }
  const tick = setInterval(() => source.republish(), 1000);
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  process.on('message', (msg: { cmd: string }) => {
    if (msg.cmd === 'cpu') {
      const own = process.cpuUsage();
      void othersCpu().then((others) =>
        process.send!({ cpu: { user: own.user + others, system: own.system } }),
      );
    }
    // The event loop's delay since the last ask (ms): how long a request that arrived could wait
    // for this process before anything of it ran.
    if (msg.cmd === 'loop') {
      process.send!({
        loop: {
          p50: loop.percentile(50) / 1e6,
          p99: loop.percentile(99) / 1e6,
          max: loop.max / 1e6,
        },
      });
      loop.reset();
    }
    if (msg.cmd === 'stop') {
      clearInterval(tick);
      void rrm
        .stop()
        .then(stopServer)
        .then(() => process.exit(0));
    }
  });
  // If the bench dies, do not linger.
  process.on('disconnect', () => process.exit(0));
  process.send!({ ready: true, address: `127.0.0.1:${port}` });
}

// Run as the forked server only (bench/rrm.ts imports the helpers above).
if (process.send && process.argv[1]?.endsWith('rrm-server.ts')) void main();
