import type { ClientSecurity } from '../common/tls.js';
import type { Locality } from '../gen/augur/v1/common.js';
import { parseHostPort } from '../common/address.js';
import { secondsToDuration } from '../common/duration.js';
import { AugurError } from '../common/errors.js';
import { silentLogger, type Logger } from '../common/logger.js';
import { readHostFacts, type HostFacts } from './host-facts.js';
import { createLoadSampler, type LoadSampler } from './load-sampler.js';
import type { OwnCpuSource } from './own-cpu.js';
import type { RequestSource } from './request-metrics.js';
import { EndpointSignalsSampler } from './signals.js';
import { createProbe, type Probe, type ProbeResult, type ProbeSpec } from './probe.js';
import { TelemetryReporter, type BackoffOptions, type ReporterStats } from './telemetry-client.js';

export const AGENT_VERSION = '0.1.0';

export interface AgentOptions {
  /** The LPS gRPC address, HOST:PORT. */
  lps: string;
  /** [A-Za-z0-9._:-], 1..128 characters, unique among live agents. */
  endpointId: string;
  service: string;
  /** Where clients reach the endpoint, HOST:PORT. */
  address: string;
  locality?: Locality;
  labels?: Record<string, string>;
  /** Seconds between samples until the LPS sets another interval. Default 1. */
  intervalSeconds?: number;
  /** How the endpoint's health and response time are measured. Default: TCP connect to `address`. */
  probe?: ProbeSpec;
  /** Seconds before a probe counts as failed. Default 1. */
  healthTimeoutSeconds?: number;
  /** Unacknowledged samples kept while the LPS is unreachable. Default 600. */
  bufferSize?: number;
  backoff?: Partial<BackoffOptions>;
  /** Link speed when the host does not tell it, Mbit/s. Default 1000. */
  defaultLinkMbps?: number;
  logger?: Logger;
  /** Per-tick load source; default procfs on Linux, systeminformation elsewhere. */
  sampler?: LoadSampler;
  /** The endpoint's own CPU (process tree or cgroup); without it the background is unknown. */
  ownCpu?: OwnCpuSource;
  /** Where the endpoint's completed requests are counted (a metrics URL). */
  requests?: RequestSource;
  /** Static host facts; default read from the host. */
  hostFacts?: HostFacts;
  /** Jitter source for reconnects, [0,1). */
  random?: () => number;
  /** TLS (mutual TLS with a certificate) and bearer token towards the LPS; absent: plaintext. */
  security?: ClientSecurity | undefined;
  /**
   * Sample at whole multiples of the interval on the host clock (the Unix epoch's), so agents on
   * hosts whose clocks agree (NTP) report together and the LPS scores right after their samples
   * arrive (lps.scoreOnReports). false: every interval from the agent's start. Default true.
   */
  alignToClock?: boolean;
}

const ENDPOINT_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const SERVICE = /^[A-Za-z0-9._-]{1,128}$/;

export interface AgentStats extends ReporterStats {
  /** Ticks that produced a sample. */
  ticks: number;
  /** Ticks that failed to read the host's load. */
  failedTicks: number;
}

/**
 * The EPM agent: every monitoring interval it reads the host's load, probes
 * the endpoint, and hands the sample to the telemetry stream. The interval is
 * whatever the LPS last said; a change reschedules the next tick at once.
 */
export class Agent {
  private readonly opts: AgentOptions;
  private readonly logger: Logger;
  private readonly reporter: TelemetryReporter;
  private readonly probe: Probe;
  private readonly sampler: LoadSampler;
  private readonly facts: HostFacts;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private lastTickAt = 0;
  /** The same moment on the wall clock (Date.now), which aligned ticks follow. */
  private lastTickWallMs = 0;
  /** When the previous sample was taken: the span its rates and counts cover ends there. */
  private lastSampleAt = NaN;
  private stopped = false;
  private ticks = 0;
  private failedTicks = 0;
  /** Why the last probe failed; undefined while it passes (so each change is logged once). */
  private probeFailing: string | undefined;

  private constructor(opts: AgentOptions, sampler: LoadSampler, facts: HostFacts) {
    this.opts = opts;
    this.logger = opts.logger ?? silentLogger;
    this.sampler = sampler;
    this.facts = facts;
    const endpoint = parseHostPort(opts.address, 'endpoint address');
    this.probe = createProbe(opts.probe ?? { kind: 'tcp', address: opts.address }, {
      timeoutSeconds: opts.healthTimeoutSeconds ?? 1,
    });
    this.reporter = new TelemetryReporter({
      lps: opts.lps,
      security: opts.security,
      hello: {
        endpointId: opts.endpointId,
        service: opts.service,
        address: endpoint.host,
        port: endpoint.port,
        locality: opts.locality ?? { region: '', zone: '', subZone: '' },
        labels: opts.labels ?? {},
        capacity: {
          cpuCores: facts.cpuCores,
          memoryBytes: facts.memoryBytes,
          networkBytesPerSecond: facts.networkBytesPerSecond,
        },
        agentVersion: AGENT_VERSION,
      },
      intervalSeconds: opts.intervalSeconds ?? 1,
      bufferSize: opts.bufferSize,
      backoff: opts.backoff,
      logger: this.logger,
      random: opts.random,
      onInterval: () => this.reschedule(),
    });
  }

  /** Validates the options, reads the host's facts, and starts sampling and reporting. */
  static async start(opts: AgentOptions): Promise<Agent> {
    validate(opts);
    const facts =
      opts.hostFacts ?? (await readHostFacts({ defaultLinkMbps: opts.defaultLinkMbps }));
    const host = opts.sampler ?? (await createLoadSampler());
    const sampler =
      opts.ownCpu || opts.requests
        ? new EndpointSignalsSampler(host, opts.ownCpu, opts.requests, opts.logger ?? silentLogger)
        : host;
    const agent = new Agent(opts, sampler, facts);
    agent.logger.info(
      {
        endpointId: opts.endpointId,
        service: opts.service,
        address: opts.address,
        lps: opts.lps,
        intervalSeconds: agent.reporter.intervalSeconds,
        alignedToClock: opts.alignToClock !== false,
        probe: agent.probe.kind,
        ownCpu: opts.ownCpu?.kind ?? 'unknown',
        requests: opts.requests ? 'metrics' : opts.sampler ? 'load report' : 'unknown',
        capacity: facts,
      },
      'agent started',
    );
    agent.lastTickAt = performance.now();
    agent.lastTickWallMs = Date.now();
    agent.reporter.start();
    agent.reschedule();
    return agent;
  }

  get intervalSeconds(): number {
    return this.reporter.intervalSeconds;
  }

  get hostFacts(): HostFacts {
    return this.facts;
  }

  stats(): AgentStats {
    return { ...this.reporter.stats(), ticks: this.ticks, failedTicks: this.failedTicks };
  }

  /** Sequences sent but not yet acknowledged, oldest first. */
  bufferedSequences(): number[] {
    return this.reporter.bufferedSequences();
  }

  /** Stops ticking, lets a tick in progress finish, says goodbye to the LPS. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    await this.inFlight;
    await this.reporter.stop();
    this.probe.close();
    await this.sampler.close?.();
    this.logger.info({ ticks: this.ticks, failedTicks: this.failedTicks }, 'agent stopped');
  }

  /**
   * Next tick at the next whole multiple of the interval on the host clock (alignedDelay), or,
   * unaligned, one interval after the last one started (at once if that is past).
   */
  private reschedule(): void {
    if (this.stopped || this.inFlight) return; // a running tick schedules the next when it ends
    clearTimeout(this.timer);
    const intervalMs = this.reporter.intervalSeconds * 1000;
    const delay =
      this.opts.alignToClock === false
        ? this.lastTickAt + intervalMs - performance.now()
        : alignedDelay(Date.now(), this.lastTickWallMs, intervalMs);
    this.timer = setTimeout(() => this.tick(), Math.max(0, delay));
  }

  private tick(): void {
    this.lastTickAt = performance.now();
    this.lastTickWallMs = Date.now();
    this.inFlight = this.sampleOnce().finally(() => {
      this.inFlight = undefined;
      this.reschedule();
    });
  }

  private async sampleOnce(): Promise<void> {
    const timestamp = new Date();
    // The probe's request leaves first: where the endpoint also serves --metrics-url, it
    // answers the probe before it builds the metrics page, so the response time is the
    // endpoint's own and not ours (scrape first, it was 1-3 ms against 0.3 ms alone).
    const probing = this.probe.check();
    const [load, probe] = await Promise.all([
      this.sampler.sample().catch((err: unknown) => err as Error),
      probing,
    ]);
    if (load instanceof Error) {
      this.failedTicks++;
      this.logger.error({ err: load }, 'cannot read the host load; sample skipped');
      return;
    }
    this.noteProbe(probe);
    this.ticks++;
    const sampledAt = performance.now();
    const span = (sampledAt - this.lastSampleAt) / 1000;
    this.lastSampleAt = sampledAt;
    this.reporter.submit({
      endpointId: this.opts.endpointId,
      cpuUsage: load.cpuUsage,
      memoryUsage: load.memoryUsage,
      networkIo: load.networkIo,
      responseTime: probe.responseTime,
      timestamp,
      networkCapacity: 0,
      health: probe.health,
      requestRate: load.requestRate ?? 0,
      processCpuUsage: load.processCpuUsage,
      requestsCompleted: load.requestsCompleted,
      latencySumSeconds: load.latencySumSeconds,
      // The first sample's rates cover the time since the sampler started: no span known.
      sampleSpan: span > 0 ? secondsToDuration(span) : undefined,
    });
  }

  /** Logs when the probe starts failing (or fails differently) and when it passes again. */
  private noteProbe(probe: ProbeResult): void {
    if (probe.error !== undefined) {
      if (probe.error === this.probeFailing) return;
      this.probeFailing = probe.error;
      this.logger.warn(
        { probe: this.probe.kind, reason: probe.error },
        `health probe failing: ${probe.error}; the LPS gives this endpoint no traffic while it fails`,
      );
    } else if (this.probeFailing !== undefined) {
      this.probeFailing = undefined;
      this.logger.info({ probe: this.probe.kind }, 'health probe passing again');
    }
  }
}

function validate(opts: AgentOptions): void {
  if (!ENDPOINT_ID.test(opts.endpointId)) {
    throw new AugurError(
      'BAD_ENDPOINT_ID',
      `endpoint id "${opts.endpointId}" must be 1 to 128 characters of A-Z a-z 0-9 . _ : -`,
    );
  }
  // The LPS's rules, checked here so a bad flag fails at start instead of on every reconnect.
  if (!SERVICE.test(opts.service)) {
    throw new AugurError(
      'BAD_SERVICE',
      `service "${opts.service}" must be 1 to 128 characters of A-Z a-z 0-9 . _ -`,
    );
  }
  const endpoint = parseHostPort(opts.address, 'endpoint address');
  if (endpoint.port < 1) {
    throw new AugurError(
      'BAD_ADDRESS',
      `endpoint address "${opts.address}" needs a port in 1..65535`,
    );
  }
  if (endpoint.host === '0.0.0.0' || endpoint.host === '::') {
    throw new AugurError(
      'BAD_ADDRESS',
      `endpoint address "${opts.address}" is a wildcard; give the address clients reach the endpoint at`,
    );
  }
  parseHostPort(opts.lps, 'LPS address');
  const interval = opts.intervalSeconds ?? 1;
  if (!(interval > 0) || !Number.isFinite(interval)) {
    throw new AugurError(
      'BAD_INTERVAL',
      `the monitoring interval must be > 0 seconds, got ${interval}`,
    );
  }
  const buffer = opts.bufferSize ?? 600;
  if (!Number.isInteger(buffer) || buffer < 1) {
    throw new AugurError(
      'BAD_BUFFER',
      `the replay buffer must hold at least 1 sample, got ${buffer}`,
    );
  }
}

/**
 * Milliseconds from `nowMs` to the next tick of an agent aligned to the clock: the first whole
 * multiple of `intervalMs` (counted from the Unix epoch) that is at least half an interval after
 * the last tick (`lastTickMs`: a timer that fired a little early, or a new interval, never makes
 * two ticks in a row) and not in the past (a tick that overran skips the multiples it missed).
 */
export function alignedDelay(nowMs: number, lastTickMs: number, intervalMs: number): number {
  const earliest = Math.max(nowMs, lastTickMs + intervalMs / 2);
  return Math.ceil(earliest / intervalMs) * intervalMs - nowMs;
}
