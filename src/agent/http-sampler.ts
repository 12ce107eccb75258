import { AugurError } from '../common/errors.js';
import { KeptAliveGetter } from './http-get.js';
import type { HostLoad, LoadSampler } from './load-sampler.js';

/** As the LPS: own CPU may exceed host CPU by this much (the two are read a moment apart). */
const OWN_CPU_SKEW = 0.05;

export interface HttpLoadSamplerOptions {
  /** Where the endpoint reports its own load as `HostLoad` JSON, e.g. `http://backend:8080/load`. */
  url: string;
  /** Seconds before a request for the load counts as failed. Default 1. */
  timeoutSeconds?: number;
}

/**
 * Reads the load from the endpoint itself instead of from the host: for an
 * endpoint that knows its own utilisation better than /proc does (a demo
 * backend with a simulated background load, or a container whose /proc shows
 * the whole machine). Each `sample()` is one GET; the endpoint answers with
 * JSON covering the time since it was last asked (src/agent/README.md, "The
 * load URL"):
 *
 *   { "cpuUsage": 0..1, "memoryUsage": 0..1, "networkIo": bytes/s,
 *     "processCpuUsage": 0..1, "requestsCompleted": n, "latencySumSeconds": s,
 *     "requestRate": r }
 *
 * the last four optional. A failed or malformed answer rejects, so the agent
 * skips that tick rather than report a made-up sample.
 */
export class HttpLoadSampler implements LoadSampler {
  private readonly url: string;
  private readonly getter: KeptAliveGetter;

  constructor(options: HttpLoadSamplerOptions) {
    this.getter = new KeptAliveGetter(options.url, {
      what: 'load URL',
      timeoutMs: (options.timeoutSeconds ?? 1) * 1000,
      badUrlCode: 'BAD_LOAD_URL',
    });
    this.url = this.getter.url;
  }

  async sample(): Promise<HostLoad> {
    let res;
    try {
      res = await this.getter.get();
    } catch (err) {
      throw new AugurError('LOAD_URL_UNREACHABLE', (err as Error).message, { cause: err });
    }
    if (res.status < 200 || res.status > 299) {
      throw new AugurError(
        'LOAD_URL_FAILED',
        `${this.url} answered HTTP ${res.status}: ${res.body.slice(0, 200)}`,
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(res.body);
    } catch {
      throw new AugurError(
        'BAD_LOAD_REPORT',
        `${this.url} did not answer JSON: ${res.body.slice(0, 200)}`,
      );
    }
    return parseHostLoad(body, this.url);
  }

  async close(): Promise<void> {
    this.getter.close();
  }
}

/** Validates a load report: the same ranges the LPS enforces, said here with the URL at fault. */
export function parseHostLoad(body: unknown, source: string): HostLoad {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new AugurError('BAD_LOAD_REPORT', `${source}: the load report must be a JSON object`);
  }
  const record = body as Record<string, unknown>;
  const field = (name: string, max: number): number => {
    const v = record[name];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > max) {
      throw new AugurError(
        'BAD_LOAD_REPORT',
        `${source}: "${name}" must be a number in [0, ${max}], got ${JSON.stringify(v)}`,
      );
    }
    return v;
  };
  const load: HostLoad = {
    cpuUsage: field('cpuUsage', 1),
    memoryUsage: field('memoryUsage', 1),
    networkIo: field('networkIo', Number.MAX_VALUE),
  };
  if (record.processCpuUsage !== undefined) {
    const own = field('processCpuUsage', 1);
    if (own > load.cpuUsage + OWN_CPU_SKEW)
      throw new AugurError(
        'BAD_LOAD_REPORT',
        `${source}: "processCpuUsage" ${own} exceeds "cpuUsage" ${load.cpuUsage}: the endpoint's own CPU is part of the host's, both as fractions of the host's capacity`,
      );
    load.processCpuUsage = Math.min(own, load.cpuUsage);
  }
  if (record.requestsCompleted !== undefined) {
    const n = field('requestsCompleted', Number.MAX_SAFE_INTEGER);
    if (!Number.isInteger(n))
      throw new AugurError(
        'BAD_LOAD_REPORT',
        `${source}: "requestsCompleted" must be a whole number, got ${n}`,
      );
    load.requestsCompleted = n;
  }
  if (record.latencySumSeconds !== undefined) {
    if (load.requestsCompleted === undefined)
      throw new AugurError(
        'BAD_LOAD_REPORT',
        `${source}: "latencySumSeconds" needs "requestsCompleted" (the requests it sums over)`,
      );
    load.latencySumSeconds = field('latencySumSeconds', Number.MAX_VALUE);
  }
  if (record.requestRate !== undefined) load.requestRate = field('requestRate', Number.MAX_VALUE);
  return load;
}
