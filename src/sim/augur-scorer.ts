import { secondsToDuration } from '../common/duration.js';
import { silentLogger } from '../common/logger.js';
import { ProbeHealth } from '../gen/augur/v1/common.js';
import type { EndpointData } from '../gen/augur/v1/telemetry.js';
import { lpsConfigSchema } from '../lps/config.js';
import { forecastConfigSchema, type ForecastConfig } from '../lps/forecast/config.js';
import { ForecastScorer } from '../lps/forecast/scorer.js';
import { EndpointStore } from '../lps/store.js';
import type { EndpointRecord, EndpointState } from '../lps/types.js';
import { validateHello, validateSample } from '../lps/validate.js';
import type { WeightSource } from './policies/weights.js';
import type { FleetView, IntervalReport } from './types.js';

/** Epoch of simulated time 0 for the samples' timestamps (a fixed date: runs stay deterministic). */
const EPOCH_MS = Date.UTC(2026, 0, 1);

/**
 * Which of the signals an agent can send reach the LPS: all of them (`full`),
 * no own CPU (`no-own-cpu`: the agent was started without `--process-pid` or
 * `--cgroup`), or no request counts (`no-requests`: neither a load URL nor a
 * metrics URL). The weight's fallbacks are measured by running the same code
 * with fewer signals.
 */
export type AgentSignals = 'full' | 'no-own-cpu' | 'no-requests';
export const AGENT_SIGNALS: readonly AgentSignals[] = ['full', 'no-own-cpu', 'no-requests'];

export interface AugurScorerOptions {
  signals?: AgentSignals;
  /** Overrides of the `forecast:` config section (tuning runs); defaults otherwise. */
  forecast?: Record<string, unknown>;
}

/**
 * augur's weights as the LPS computes them, through the shipped code path: each
 * interval the report of every endpoint becomes the `EndpointData` its agent
 * would send (host CPU, own CPU, requests completed, their latency sum, the span,
 * and the mean latency as the probe's response time), is checked by the LPS's
 * `validateSample` and stored by its `EndpointStore` (hello, ring, sequence),
 * and the LPS's `ForecastScorer` assesses every endpoint as the prioritizer
 * does; the weights are its weights, normalised to shares as the prioritizer
 * publishes them. Nothing here estimates or forecasts.
 *
 * The LSTM is not started: its training runs asynchronously in a worker thread,
 * which would make runs depend on timing; the scorer then selects among the
 * baselines (last value, EWMA, Holt) per endpoint and metric, by rolling error.
 */
export class AugurScorerWeights implements WeightSource {
  private scorer: ForecastScorer | undefined;
  private store: EndpointStore | undefined;
  private records: EndpointRecord[] = [];
  private interval = 1;
  private serviceTime = 0.02;
  private readonly signals: AgentSignals;
  private readonly config: ForecastConfig;
  private estimates: Float64Array | undefined;

  constructor(options: AugurScorerOptions = {}) {
    this.signals = options.signals ?? 'full';
    this.config = forecastConfigSchema.parse(options.forecast ?? {});
  }

  init(view: FleetView): void {
    this.interval = view.interval;
    this.serviceTime = view.serviceTime;
    this.scorer = new ForecastScorer({ config: this.config, logger: silentLogger });
    const store = new EndpointStore(
      lpsConfigSchema.parse({ defaultInterval: view.interval, maxInterval: 3600 }),
    );
    this.store = store;
    this.records = Array.from({ length: view.endpoints }, (_, e) => {
      const hello = {
        endpointId: `ep-${e}`,
        service: 'sim',
        address: `10.0.0.${e + 1}`,
        port: 8080,
        locality: { region: 'sim', zone: `z${e}`, subZone: '' },
        labels: {},
        capacity: { cpuCores: view.workers, memoryBytes: 8 << 30, networkBytesPerSecond: 0 },
        agentVersion: 'sim',
        requestedInterval: secondsToDuration(view.interval),
      };
      const bad = validateHello(hello);
      if (bad) throw new Error(`simulated hello rejected: ${bad.message}`);
      return store.upsertFromHello(hello, EPOCH_MS);
    });
  }

  async update(_step: number, report: IntervalReport | undefined): Promise<Float64Array> {
    const w = new Float64Array(this.records.length);
    if (!report) return w.fill(1);
    const store = this.store!;
    const nowMs = EPOCH_MS + (report.step + 1) * this.interval * 1000;
    this.records.forEach((r, e) => {
      const sample = this.sampleOf(report, e, r.lastSequence + 1, nowMs);
      const bad = validateSample(sample, {
        endpointId: r.id,
        lastSequence: r.lastSequence,
        lastTimestampMs: r.series.size > 0 ? r.series.at('timestamp') : NaN,
        nowMs,
        maxSkewMs: 30_000,
        maxAgeMs: 3_600_000,
      });
      if (bad) throw new Error(`simulated sample of ${r.id} rejected: ${bad.message}`);
      store.append(r, sample, nowMs);
    });
    const states = new Map<string, EndpointState>(
      this.records.map((r) => [r.id, store.stateOf(r, nowMs)]),
    );
    const assessed = await this.scorer!.assess(this.records, states, nowMs);
    let total = 0;
    const estimates = new Float64Array(this.records.length);
    this.records.forEach((r, e) => {
      const a = assessed.get(r.id);
      w[e] = Math.max(0, a?.weight ?? 0);
      total += w[e];
      estimates[e] = a?.parts.estimatedCapacity || NaN;
    });
    this.estimates = estimates;
    // The prioritizer publishes shares; relative weights are the same to every picker.
    return total > 0 ? w.map((x) => x / total) : w.fill(1);
  }

  /** The LPS's capacity estimates (requests/s, `ScoreParts.estimated_capacity`) behind the last weights. */
  capacities(): Float64Array | undefined {
    return this.estimates;
  }

  /** What the endpoint's agent sends for the interval of `report`. */
  private sampleOf(
    report: IntervalReport,
    e: number,
    sequence: number,
    nowMs: number,
  ): EndpointData {
    const completed = report.completed[e];
    const known = this.signals;
    return {
      endpointId: `ep-${e}`,
      cpuUsage: report.utilisation[e],
      memoryUsage: 0.3,
      networkIo: 0,
      networkCapacity: 0,
      // The probe waits in the queue like a request; an idle interval answers at the service time.
      responseTime: completed > 0 ? report.latencySum[e] / completed : this.serviceTime,
      timestamp: new Date(nowMs),
      sequence,
      health: ProbeHealth.PROBE_HEALTH_SERVING,
      requestRate: 0,
      processCpuUsage: known === 'no-own-cpu' ? undefined : report.ownCpu[e],
      requestsCompleted: known === 'no-requests' ? undefined : completed,
      latencySumSeconds: known === 'no-requests' ? undefined : report.latencySum[e],
      sampleSpan: secondsToDuration(this.interval),
    };
  }
}
