import { AugurError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { HostLoad, LoadSampler } from './load-sampler.js';
import type { OwnCpuSource } from './own-cpu.js';
import type { RequestSource } from './request-metrics.js';

/**
 * The host's load plus the endpoint's own signals, read side by side each tick:
 * its own CPU (`--process-pid`, `--process-name`, `--cgroup`) and the requests
 * it completed (`--metrics-url`). A dedicated source overrides what the host
 * sampler (a `--load-url` report) says for the same signal. A source that fails
 * leaves its signal out of that sample (unknown, not zero) and is logged once
 * per kind of failure; the host's load failing still fails the tick.
 */
export class EndpointSignalsSampler implements LoadSampler {
  private readonly warned = new Set<string>();

  constructor(
    private readonly host: LoadSampler,
    private readonly own: OwnCpuSource | undefined,
    private readonly requests: RequestSource | undefined,
    private readonly logger: Logger,
  ) {}

  async sample(): Promise<HostLoad> {
    const [load, own, counts] = await Promise.all([
      this.host.sample(),
      this.own?.sample().catch((err: unknown) => this.failed('own CPU', err)),
      this.requests?.sample().catch((err: unknown) => this.failed('completed requests', err)),
    ]);
    const out: HostLoad = { ...load };
    if (this.own) {
      delete out.processCpuUsage;
      // Host and own CPU are read a moment apart: own never claims more than the host.
      if (own !== undefined) out.processCpuUsage = Math.min(own, load.cpuUsage);
    }
    if (this.requests) {
      delete out.requestsCompleted;
      delete out.latencySumSeconds;
      if (counts) {
        out.requestsCompleted = counts.completed;
        if (counts.latencySum !== undefined) out.latencySumSeconds = counts.latencySum;
      }
    }
    return out;
  }

  async close(): Promise<void> {
    this.requests?.close?.();
    await Promise.all([this.host.close?.(), this.own?.close()]);
  }

  private failed(signal: string, err: unknown): undefined {
    const code = err instanceof AugurError ? err.code : 'ERROR';
    const key = `${signal}:${code}`;
    const level = this.warned.has(key) ? 'debug' : 'warn';
    this.warned.add(key);
    this.logger[level](
      { err: (err as Error).message, signal },
      `cannot read the endpoint's ${signal}; left out of this sample`,
    );
    return undefined;
  }
}
