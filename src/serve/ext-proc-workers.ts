import cluster, { type Worker } from 'node:cluster';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AggregatorRegistry, Counter, type Registry } from 'prom-client';
import { formatHostPort, type HostPort } from '../common/address.js';
import { AugurError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { AugurConfig } from './config.js';

/** What a worker is told at its start (in its environment, `AUGUR_EXT_PROC_WORKER`, as JSON). */
export interface ExtProcWorkerSpec {
  /** 1-based; the `worker` label of its metrics and its logs. */
  index: number;
  /** The LPS's gRPC address, whose WatchPrioritizedEndpoints keeps the worker's lists. */
  lps: string;
  config: AugurConfig;
  /** A bearer token the LPS knows for the workers (augur serve with security.principals). */
  token?: string | undefined;
}

export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** Messages between the primary and a worker over the IPC channel node:cluster opens. */
export type ToWorker = { type: 'augur:metrics'; id: number } | { type: 'augur:stop' };
export type FromWorker =
  | { type: 'augur:listening'; host: string; port: number }
  | { type: 'augur:metrics'; id: number; json: MetricsJson }
  | { type: 'augur:failed'; message: string };

export const WORKER_ENV = 'AUGUR_EXT_PROC_WORKER';

export interface ExtProcWorkersOptions {
  count: number;
  config: AugurConfig;
  /** The gRPC address of the LPS whose lists the workers watch. */
  lps: string;
  logger: Logger;
  /** The primary's registry: /metrics serves it together with every worker's. */
  registry: Registry;
  /** The bearer token the workers present to the LPS (a principal of the primary's own). */
  token?: string | undefined;
  /** How long a worker may take to listen, ms. */
  startTimeoutMs?: number;
}

/**
 * `rrm.extProcWorkers` > 1: the ext_proc fast path (`rrm.extProcListen`) served by that many
 * worker processes sharing its port through node:cluster, which hands each new connection to
 * the next worker (round robin). Each worker is an RRM of its own over a Watch stream to this
 * process. A worker that dies is replaced (after 1 s, doubling up to 10 s while they keep dying);
 * its connections are lost, and Envoy reconnects to the port. SIGTERM and SIGINT are the
 * primary's: a worker stops when the primary tells it, or when the primary is gone.
 */
export class ExtProcWorkers {
  private readonly options: ExtProcWorkersOptions;
  private readonly workers = new Map<number, Worker>();
  private readonly restarts: Counter;
  private bound: HostPort | undefined;
  private stopping = false;
  private nextMetricsId = 0;
  private respawnDelayMs = 1000;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(options: ExtProcWorkersOptions) {
    this.options = options;
    this.restarts = new Counter({
      name: 'augur_rrm_ext_proc_worker_restarts_total',
      help: 'ext_proc worker processes that died and were replaced',
      registers: [options.registry],
    });
  }

  /** Forks every worker; resolves once all of them listen, with the address they share. */
  async start(): Promise<HostPort> {
    const here = fileURLToPath(import.meta.url);
    cluster.setupPrimary({
      exec: here.slice(0, -extname(here).length).replace(/-workers$/, '-worker') + extname(here),
      // The same loader (tsx when run from source) and nothing else of the primary's argv.
      execArgv: process.execArgv,
      args: [],
    });
    const started: Array<Promise<HostPort>> = [];
    for (let index = 1; index <= this.options.count; index++) started.push(this.fork(index));
    try {
      const addresses = await Promise.all(started);
      this.bound = addresses[0]!;
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.options.logger.info(
      { extProc: formatHostPort(this.bound), workers: this.options.count },
      `ext_proc fast path served by ${this.options.count} worker processes on ${formatHostPort(this.bound)}`,
    );
    return this.bound;
  }

  get address(): HostPort {
    if (!this.bound) throw new AugurError('NOT_STARTED', 'ext_proc workers are not listening yet');
    return this.bound;
  }

  /** Pids of the workers now running, by index. */
  pids(): Map<number, number> {
    const pids = new Map<number, number>();
    for (const [index, w] of this.workers) if (w.process.pid) pids.set(index, w.process.pid);
    return pids;
  }

  /**
   * The primary's metrics and every worker's (theirs labelled `worker`), in one exposition. A
   * worker that does not answer within 1 s is left out of this scrape.
   */
  async metrics(): Promise<string> {
    const own = await this.options.registry.getMetricsAsJSON();
    const theirs = await Promise.all([...this.workers.values()].map((w) => this.askMetrics(w)));
    const all = [own, ...theirs.filter((j): j is MetricsJson => j !== undefined)];
    return AggregatorRegistry.aggregate(all).metrics();
  }

  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.all(
      [...this.workers.values()].map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.isDead()) return resolve();
            const kill = setTimeout(() => w.process.kill('SIGKILL'), graceMs);
            w.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            if (w.isConnected()) w.send({ type: 'augur:stop' } satisfies ToWorker);
            else w.process.kill('SIGKILL');
          }),
      ),
    );
    this.workers.clear();
  }

  private fork(index: number): Promise<HostPort> {
    const { config, lps, logger } = this.options;
    const spec: ExtProcWorkerSpec = { index, lps, config, token: this.options.token };
    const worker = cluster.fork({ [WORKER_ENV]: JSON.stringify(spec) });
    this.workers.set(index, worker);
    const bornAt = Date.now();
    const timeoutMs = this.options.startTimeoutMs ?? 30_000;
    return new Promise<HostPort>((resolve, reject) => {
      let listening = false;
      const timer = setTimeout(() => {
        worker.process.kill('SIGKILL');
        reject(
          new AugurError(
            'WORKER_START',
            `ext_proc worker ${index} did not listen within ${timeoutMs / 1000} s`,
          ),
        );
      }, timeoutMs);
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'augur:listening') {
          listening = true;
          clearTimeout(timer);
          logger.debug({ worker: index, pid: worker.process.pid }, 'ext_proc worker listening');
          resolve({ host: m.host, port: m.port });
        } else if (m.type === 'augur:failed') {
          clearTimeout(timer);
          reject(new AugurError('WORKER_START', `ext_proc worker ${index}: ${m.message}`));
        }
      });
      worker.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (this.workers.get(index) === worker) this.workers.delete(index);
        if (!listening) {
          reject(
            new AugurError(
              'WORKER_START',
              `ext_proc worker ${index} exited (${signal ?? code}) before it listened`,
            ),
          );
          return;
        }
        if (this.stopping) return;
        // Died while serving: replace it, backing off while workers keep dying young.
        this.restarts.inc();
        if (Date.now() - bornAt > 30_000) this.respawnDelayMs = 1000;
        const delay = this.respawnDelayMs;
        this.respawnDelayMs = Math.min(10_000, delay * 2);
        logger.warn(
          { worker: index, pid: worker.process.pid, code, signal, restartInMs: delay },
          `ext_proc worker ${index} died (${signal ?? `exit ${code}`}); replacing it in ${delay} ms`,
        );
        const t = setTimeout(() => {
          this.timers.delete(t);
          if (this.stopping) return;
          this.fork(index).catch((err: unknown) =>
            logger.error({ err, worker: index }, `ext_proc worker ${index} could not restart`),
          );
        }, delay);
        this.timers.add(t);
      });
    });
  }

  private askMetrics(worker: Worker): Promise<MetricsJson | undefined> {
    if (!worker.isConnected()) return Promise.resolve(undefined);
    const id = ++this.nextMetricsId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), 1000);
      const onMessage = (m: FromWorker): void => {
        if (m.type === 'augur:metrics' && m.id === id) done(m.json);
      };
      const done = (json: MetricsJson | undefined): void => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        resolve(json);
      };
      worker.on('message', onMessage);
      worker.send({ type: 'augur:metrics', id } satisfies ToWorker);
    });
  }
}

/** Where this process reaches its own listening address: a wildcard one on loopback. */
export function reachable(a: HostPort): HostPort {
  if (a.host === '0.0.0.0' || a.host === '') return { ...a, host: '127.0.0.1' };
  if (a.host === '::') return { ...a, host: '::1' };
  return a;
}
