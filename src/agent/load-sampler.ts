/** The host's load over the last tick, in the units of `EndpointData`. */
export interface HostLoad {
  /** Busy fraction of all cores, [0,1]. */
  cpuUsage: number;
  /** Fraction of physical memory in use, [0,1]. */
  memoryUsage: number;
  /** Bytes per second received plus transmitted, loopback excluded. */
  networkIo: number;
  /**
   * The endpoint's own CPU (its process tree or cgroup) since the previous
   * sample, as a fraction of the host's whole capacity, [0, cpuUsage]: host −
   * own is the load that is not the endpoint's. Absent: unknown.
   */
  processCpuUsage?: number;
  /** Requests the endpoint completed since the previous sample (0 is a real zero). Absent: unknown. */
  requestsCompleted?: number;
  /** Sum of those requests' latencies, seconds. Absent: unknown. */
  latencySumSeconds?: number;
  /**
   * Requests per second served since the previous sample; legacy, used by the
   * LPS only when `requestsCompleted` is absent (its 0 means unknown).
   */
  requestRate?: number;
}

/**
 * Measures the host's load once per tick. Rates (CPU, network) cover the time
 * since the previous `sample()`. Implementations must be cheap at 1 Hz: no
 * child processes on the hot path where the platform allows it.
 */
export interface LoadSampler {
  sample(): Promise<HostLoad>;
  /** Releases what the sampler keeps open between ticks. */
  close?(): Promise<void>;
}

/** procfs on Linux (cheap); systeminformation elsewhere, loaded only there. */
export async function createLoadSampler(
  platform: NodeJS.Platform = process.platform,
): Promise<LoadSampler> {
  if (platform === 'linux') {
    const { ProcSampler } = await import('./procfs.js');
    const sampler = new ProcSampler();
    await sampler.prime();
    return sampler;
  }
  const { SystemInformationSampler } = await import('./si-sampler.js');
  const sampler = new SystemInformationSampler();
  await sampler.sample();
  return sampler;
}
