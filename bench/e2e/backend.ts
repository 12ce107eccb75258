/**
 * One benchmark backend: a FIFO queue served by a few workers, each request taking its work
 * divided by the backend's speed (1 − the background CPU of a real trace at that moment). The
 * service is simulated with timers, not burned CPU, so eight backends fit on two cores.
 *
 * One port speaks both gRPC (the `Work` method, with a per-call ORCA report in the trailers, as
 * grpc-js's `weighted_round_robin` reads it) and HTTP/1.1 (`POST /work` for the RRM arm's data
 * plane, `GET /load` for the agent, `GET /healthz` for its probe): the agent reports one address,
 * which xDS publishes to gRPC clients and the RRM names to the HTTP data plane, as one service
 * reachable over both would be. Connections are told apart by their first bytes (the HTTP/2
 * preface) and counted, so client reconnects are measured where they land.
 */
import * as grpc from '@grpc/grpc-js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { nowMs } from './clock.js';
import { LoadMeter, type SpeedSchedule } from './load-meter.js';
import {
  WORK_HEADER,
  WORK_PATH,
  checkWork,
  decodeWork,
  doneHeaders,
  encodeDone,
  workService,
  type WorkDone,
} from './wire.js';

export interface BackendOptions {
  index: number;
  id: string;
  workers: number;
  host?: string;
}

export interface BackendStats {
  index: number;
  id: string;
  /** gRPC connections opened to this backend since it started. */
  grpcConnections: number;
  /**
   * HTTP connections opened since it started whose first request was a work request (a data
   * plane's); the agent's probe and load reads are not counted.
   */
  httpWorkConnections: number;
  completed: number;
  /** Requests whose caller gave up before a worker took them (skipped, never served). */
  abandoned: number;
  queued: number;
  busy: number;
  /** How late the completion timers fired since the last reset: the harness's own error. */
  timerLateP99Ms: number;
  timerLateMaxMs: number;
}

interface Job {
  work: number;
  arrivedAt: number;
  abandoned: boolean;
  finish: (done: WorkDone) => void;
}

const HTTP2_PREFACE = 'PRI';

export class TraceBackend {
  readonly index: number;
  readonly id: string;
  readonly meter: LoadMeter;
  private readonly workers: number;
  private readonly host: string;
  private idle: number;
  private queue: Job[] = [];
  private head = 0;
  private readonly listener: net.Server;
  private readonly http: Server;
  private readonly grpc: grpc.Server;
  private readonly injector: grpc.ConnectionInjector;
  private readonly sockets = new Set<Socket>();
  private readonly timerLate: RecordableHistogram = createHistogram();
  private port = 0;
  private grpcConnections = 0;
  private httpWorkConnections = 0;
  private completedCount = 0;
  private abandonedCount = 0;

  constructor(options: BackendOptions) {
    this.index = options.index;
    this.id = options.id;
    this.workers = options.workers;
    this.idle = options.workers;
    this.host = options.host ?? '127.0.0.1';
    this.meter = new LoadMeter(options.workers, nowMs());
    // grpc-js writes the call's metrics recorder into the trailers only with this option.
    this.grpc = new grpc.Server({ 'grpc.server_call_metric_recording': 1 });
    this.grpc.addService(workService, { Work: this.onGrpc });
    this.injector = this.grpc.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    this.http = createServer((req, res) => this.onHttp(req, res));
    this.http.keepAliveTimeout = 60_000;
    this.listener = net.createServer((socket) => this.onConnection(socket));
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.listener.once('error', reject);
      this.listener.listen(0, this.host, () => resolve());
    });
    this.port = (this.listener.address() as AddressInfo).port;
    return this.address;
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  setSchedule(schedule: SpeedSchedule): void {
    this.meter.setSchedule(schedule, nowMs());
  }

  stats(): BackendStats {
    return {
      index: this.index,
      id: this.id,
      grpcConnections: this.grpcConnections,
      httpWorkConnections: this.httpWorkConnections,
      completed: this.completedCount,
      abandoned: this.abandonedCount,
      queued: this.queue.length - this.head,
      busy: this.workers - this.idle,
      timerLateP99Ms: this.timerLate.count ? this.timerLate.percentile(99) / 1000 : 0,
      timerLateMaxMs: this.timerLate.count ? this.timerLate.max / 1000 : 0,
    };
  }

  resetTimerStats(): void {
    this.timerLate.reset();
  }

  async stop(): Promise<void> {
    this.injector.destroy();
    this.grpc.forceShutdown();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.listener.close(() => resolve()));
    this.http.close();
  }

  private onConnection(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.setNoDelay(true);
    let seen = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      seen = Buffer.concat([seen, chunk]);
      if (seen.length < HTTP2_PREFACE.length) return;
      socket.off('data', onData);
      socket.pause();
      socket.unshift(seen);
      if (seen.subarray(0, HTTP2_PREFACE.length).toString('latin1') === HTTP2_PREFACE) {
        this.grpcConnections++;
        // The HTTP/2 session reads what is buffered itself (on its next tick): no resume here,
        // which would hand the bytes to a 'data' event nobody listens to.
        this.injector.injectConnection(socket);
      } else {
        if (seen.toString('latin1').startsWith(`POST ${WORK_PATH}`)) this.httpWorkConnections++;
        this.http.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('data', onData);
  }

  private readonly onGrpc = (
    call: grpc.ServerUnaryCall<Buffer, Buffer>,
    callback: grpc.sendUnaryData<Buffer>,
  ): void => {
    let work: number;
    try {
      work = decodeWork(call.request);
    } catch (err) {
      callback({ code: grpc.status.INVALID_ARGUMENT, details: (err as Error).message });
      return;
    }
    const job = this.enqueue(work, (done) => {
      // What the host shows now, as a server's ORCA recorder would hold it.
      const load = this.meter.recentLoad(nowMs());
      const orca = call.getMetricsRecorder();
      orca.recordCPUUtilizationMetric(load.utilization);
      // grpc-js 1.14's weighted_round_robin reads application_utilization only.
      orca.recordApplicationUtilizationMetric(load.utilization);
      orca.recordQpsMetric(load.qps);
      callback(null, encodeDone(done));
    });
    call.once('cancelled', () => {
      job.abandoned = true;
    });
  };

  private onHttp(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    const path = req.url ?? '/';
    if (path === '/load' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(this.meter.report(nowMs())));
      return;
    }
    if (path === '/healthz') {
      // A health endpoint answers on its own, not behind the workers (as most services do).
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
      return;
    }
    if (path !== WORK_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`no such path ${path}\n`);
      return;
    }
    let work: number;
    try {
      work = checkWork(Number(req.headers[WORK_HEADER]));
    } catch (err) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(`${WORK_HEADER}: ${(err as Error).message}\n`);
      return;
    }
    const job = this.enqueue(work, (done) => {
      res.writeHead(200, {
        'content-type': 'text/plain',
        ...doneHeaders(done),
      });
      res.end('ok\n');
    });
    res.once('close', () => {
      if (!res.writableFinished) job.abandoned = true;
    });
  }

  private enqueue(work: number, finish: (done: WorkDone) => void): Job {
    const job: Job = { work, arrivedAt: nowMs(), abandoned: false, finish };
    if (this.idle > 0) this.serve(job);
    else this.queue.push(job);
    return job;
  }

  private serve(job: Job): void {
    const start = nowMs();
    this.idle--;
    this.meter.setBusy(1, start);
    const serviceMs = (job.work * 1000) / this.meter.speedAt(start);
    const due = start + serviceMs;
    setTimeout(() => {
      const end = nowMs();
      this.timerLate.record(Math.max(1, Math.round((end - due) * 1000)));
      this.meter.setBusy(-1, end);
      this.meter.completed((end - job.arrivedAt) / 1000, end);
      this.completedCount++;
      this.idle++;
      job.finish({ backend: this.index, queueMs: start - job.arrivedAt, serviceMs: end - start });
      this.next();
    }, serviceMs);
  }

  private next(): void {
    while (this.idle > 0 && this.head < this.queue.length) {
      const job = this.queue[this.head++]!;
      if (job.abandoned) this.abandonedCount++;
      else this.serve(job);
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}
