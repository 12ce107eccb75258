import { Agent as HttpAgent, request } from 'node:http';

export interface LoadGeneratorOptions {
  /** URL requests go to (the data plane or Envoy's listener). */
  target: string;
  /** Mean requests started per second (open loop, Poisson arrivals); a function may vary it. */
  rate: number | (() => number);
  /** Extra request headers (e.g. x-augur-dynamic-routing). */
  headers?: Record<string, string>;
  /** Seconds before a request counts as an error. Default 5. */
  timeoutSeconds?: number;
  /** Requests waiting for an answer before new ones are dropped (counted). Default 512. */
  maxInFlight?: number;
  /** With `onReport`, seconds between reports. Default 5. */
  reportEverySeconds?: number;
  onReport?: (report: LoadReport) => void;
  /** Arrival randomness, [0,1); default Math.random. */
  random?: () => number;
}

export interface RequestResult {
  /** Which backend answered (the `x-augur-backend` response header), or '' on error. */
  backend: string;
  status: number;
  latencyMs: number;
  /** When the answer came, ms since epoch. */
  at: number;
}

export interface LoadReport {
  seconds: number;
  sent: number;
  completed: number;
  errors: number;
  dropped: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  byBackend: Record<string, number>;
}

export interface LoadTotals {
  sent: number;
  errors: number;
  dropped: number;
}

const KEEP_MS = 60_000;

/**
 * Open-loop HTTP load: requests start at Poisson arrivals whatever the answers
 * do (a closed loop would hide overload by slowing down with it). Results are
 * kept for a minute for `recent()` and the periodic reports.
 */
export class LoadGenerator {
  private readonly options: LoadGeneratorOptions;
  private readonly agent = new HttpAgent({ keepAlive: true, maxSockets: 1024 });
  private readonly results: RequestResult[] = [];
  private timer: NodeJS.Timeout | undefined;
  private reportTimer: NodeJS.Timeout | undefined;
  private running = false;
  private inFlight = 0;
  private sent = 0;
  private errors = 0;
  private dropped = 0;
  private lastReport = { at: 0, sent: 0, errors: 0, dropped: 0 };

  constructor(options: LoadGeneratorOptions) {
    this.options = options;
  }

  start(): void {
    this.running = true;
    this.lastReport = { at: Date.now(), sent: 0, errors: 0, dropped: 0 };
    this.schedule();
    if (this.options.onReport) {
      const every = (this.options.reportEverySeconds ?? 5) * 1000;
      this.reportTimer = setInterval(() => this.options.onReport!(this.report()), every);
    }
  }

  /** Stops sending, waits up to the request timeout for answers in flight, returns the totals. */
  async stop(): Promise<LoadTotals> {
    this.running = false;
    clearTimeout(this.timer);
    clearInterval(this.reportTimer);
    const deadline = Date.now() + (this.options.timeoutSeconds ?? 5) * 1000;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.agent.destroy();
    return this.totals();
  }

  totals(): LoadTotals {
    return { sent: this.sent, errors: this.errors, dropped: this.dropped };
  }

  /** Results of requests answered in the last `windowMs`. */
  recent(windowMs: number): RequestResult[] {
    const since = Date.now() - windowMs;
    let i = this.results.length;
    while (i > 0 && this.results[i - 1]!.at >= since) i--;
    return this.results.slice(i);
  }

  /** Figures since the previous report. */
  report(): LoadReport {
    const now = Date.now();
    const window = this.recent(now - this.lastReport.at);
    const latencies = window.map((r) => r.latencyMs).sort((a, b) => a - b);
    const pct = (q: number) =>
      latencies.length
        ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!
        : 0;
    const byBackend: Record<string, number> = {};
    for (const r of window) if (r.backend) byBackend[r.backend] = (byBackend[r.backend] ?? 0) + 1;
    const seconds = (now - this.lastReport.at) / 1000;
    const report: LoadReport = {
      seconds,
      sent: this.sent - this.lastReport.sent,
      completed: window.length,
      errors: this.errors - this.lastReport.errors,
      dropped: this.dropped - this.lastReport.dropped,
      rps: seconds > 0 ? window.length / seconds : 0,
      p50Ms: Math.round(pct(0.5) * 10) / 10,
      p99Ms: Math.round(pct(0.99) * 10) / 10,
      byBackend,
    };
    this.lastReport = { at: now, sent: this.sent, errors: this.errors, dropped: this.dropped };
    return report;
  }

  private schedule(): void {
    if (!this.running) return;
    const rate = typeof this.options.rate === 'function' ? this.options.rate() : this.options.rate;
    const u = (this.options.random ?? Math.random)();
    const gapMs = rate > 0 ? (-Math.log(1 - u) / rate) * 1000 : 100;
    this.timer = setTimeout(() => {
      if (rate > 0) this.fire();
      this.schedule();
    }, gapMs);
  }

  private fire(): void {
    if (this.inFlight >= (this.options.maxInFlight ?? 512)) {
      this.dropped++;
      return;
    }
    const started = performance.now();
    this.sent++;
    this.inFlight++;
    let finished = false;
    const done = (status: number, backend: string) => {
      if (finished) return;
      finished = true;
      this.inFlight--;
      if (status < 200 || status >= 300) this.errors++;
      const at = Date.now();
      this.results.push({ backend, status, latencyMs: performance.now() - started, at });
      while (this.results.length && this.results[0]!.at < at - KEEP_MS) this.results.shift();
    };
    const req = request(
      this.options.target,
      {
        agent: this.agent,
        headers: this.options.headers,
        timeout: (this.options.timeoutSeconds ?? 5) * 1000,
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          done(res.statusCode ?? 0, String(res.headers['x-augur-backend'] ?? '')),
        );
        res.on('error', () => done(0, ''));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => done(0, ''));
    req.end();
  }
}
