import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HostLoad, LoadSampler } from '../agent/load-sampler.js';

export interface DemoBackendOptions {
  id: string;
  /** Requests per second the backend serves when nothing else runs on it. */
  capacityRps: number;
  /**
   * Fraction of the backend's capacity taken by load that is not ours (other
   * tenants, batch jobs) at `t` seconds after start, [0,1).
   */
  background: (t: number) => number;
  /** Requests queued longer than this are refused with 503, seconds. */
  maxQueueSeconds?: number;
  host?: string;
}

/**
 * An HTTP backend whose capacity is shared with a background load that
 * changes over time. It queues requests FIFO behind a single virtual server
 * (service time 1/(capacity × (1 − background))), so latency rises for real
 * when it is overloaded, without burning this machine's CPU. Its health
 * endpoint waits in the same queue, so a probe measures what a request would.
 * `GET /load` answers its own load (`HostLoad` JSON since the previous
 * `/load`) at once, for an agent in another process (`augur agent --load-url`).
 */
export class DemoBackend {
  readonly id: string;
  private readonly options: Required<DemoBackendOptions>;
  private readonly server: Server;
  private readonly startedAt = performance.now();
  private nextFreeMs = 0;
  private busyMs = 0;
  private served = 0;
  /** Sum of the latencies of the requests served, seconds (queueing and service). */
  private latencySum = 0;
  private refused = 0;
  private port = 0;
  /** Answers `/load`; made with the backend so the first answer covers everything since. */
  private readonly loadReporter: LoadSampler;

  constructor(options: DemoBackendOptions) {
    this.options = { maxQueueSeconds: 2, host: '127.0.0.1', ...options };
    this.id = options.id;
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 10_000;
    this.loadReporter = this.sampler();
  }

  async start(port = 0): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(port, this.options.host, resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this.address;
  }

  get address(): string {
    return `${this.options.host}:${this.port}`;
  }

  /** Seconds since start, the clock of `background`. */
  elapsed(): number {
    return (performance.now() - this.startedAt) / 1000;
  }

  backgroundNow(): number {
    return Math.min(0.99, Math.max(0, this.options.background(this.elapsed())));
  }

  /** Seconds a request arriving now would wait before its service starts. */
  queueDelay(): number {
    return Math.max(0, this.nextFreeMs - performance.now()) / 1000;
  }

  /**
   * A LoadSampler for the agent of this backend, covering the time since it was
   * last asked: the host as an agent would see it (the background plus this
   * backend's own CPU), the backend's own CPU (busy fraction of its virtual
   * server times the share of the host left to it), the requests it completed
   * and the sum of their latencies (src/agent/README.md, "The load URL").
   */
  sampler(): LoadSampler {
    let lastAt = performance.now();
    let lastBusy = 0;
    let lastServed = 0;
    let lastLatency = 0;
    return {
      sample: async (): Promise<HostLoad> => {
        const now = performance.now();
        const span = Math.max(1, now - lastAt);
        const background = this.backgroundNow();
        const busy = Math.min(1, (this.busyMs - lastBusy) / span);
        const completed = this.served - lastServed;
        const latencySum = this.latencySum - lastLatency;
        lastAt = now;
        lastBusy = this.busyMs;
        lastServed = this.served;
        lastLatency = this.latencySum;
        const own = busy * (1 - background);
        const cpuUsage = Math.min(1, background + own);
        const requestRate = (completed * 1000) / span;
        return {
          cpuUsage,
          memoryUsage: 0.3 + 0.1 * cpuUsage,
          networkIo: requestRate * 600,
          processCpuUsage: Math.min(own, cpuUsage),
          requestsCompleted: completed,
          latencySumSeconds: latencySum,
          requestRate,
        };
      },
    };
  }

  stats(): { served: number; refused: number } {
    return { served: this.served, refused: this.refused };
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    if (req.url === '/load') {
      void this.loadReporter.sample().then((load) => {
        res.writeHead(200, { 'content-type': 'application/json', 'x-augur-backend': this.id });
        res.end(JSON.stringify(load));
      });
      return;
    }
    const now = performance.now();
    const wait = Math.max(0, this.nextFreeMs - now);
    if (wait / 1000 > this.options.maxQueueSeconds) {
      this.refused++;
      res.writeHead(503, { 'content-type': 'application/json', 'x-augur-backend': this.id });
      res.end(JSON.stringify({ backend: this.id, error: 'overloaded' }));
      return;
    }
    const serviceMs = 1000 / (this.options.capacityRps * (1 - this.backgroundNow()));
    const isProbe = req.url === '/healthz';
    if (!isProbe) this.nextFreeMs = now + wait + serviceMs;
    const delay = wait + (isProbe ? 0 : serviceMs);
    setTimeout(() => {
      if (!isProbe) {
        // Its CPU is booked with its completion, so a sample's own CPU and its completed
        // requests cover the same requests (the LPS divides one by the other).
        this.busyMs += serviceMs;
        this.served++;
        this.latencySum += (performance.now() - now) / 1000;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'x-augur-backend': this.id });
      res.end(JSON.stringify({ backend: this.id, queuedMs: Math.round(wait) }));
    }, delay);
  }
}
