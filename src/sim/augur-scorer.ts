import { silentLogger } from '../common/logger.js';
import { forecastConfigSchema } from '../lps/forecast/config.js';
import { ForecastScorer } from '../lps/forecast/scorer.js';
import { SampleRing } from '../lps/ring.js';
import { EndpointState, type EndpointRecord } from '../lps/types.js';
import type { WeightSource } from './policies/weights.js';
import type { FleetView, IntervalReport } from './types.js';

/** Epoch of simulated time 0 for the samples' timestamps (a fixed date: runs stay deterministic). */
const EPOCH_MS = Date.UTC(2026, 0, 1);

/**
 * augur as the LPS runs it: the project's ForecastScorer (src/lps/forecast),
 * the Scorer the prioritizer calls each tick, fed each interval with the
 * samples the agents would send (CPU utilisation, mean response time, request
 * rate) through EndpointRecords and their SampleRings. `use` picks which of
 * its two numbers becomes the traffic weight: `weight` (the WeightController's
 * share, what the xDS server publishes) or `score` (the Load Score, meant to
 * order endpoints, not to share traffic: a variant that shows why).
 *
 * The LSTM is not started: its training runs asynchronously in a worker
 * thread, which would make runs depend on timing; the scorer then selects
 * among the baselines (last value, EWMA, Holt) per endpoint, by rolling error.
 */
export class AugurScorerWeights implements WeightSource {
  private scorer: ForecastScorer | undefined;
  private records: EndpointRecord[] = [];
  private states = new Map<string, EndpointState>();
  private interval = 1;

  constructor(private readonly use: 'weight' | 'score' = 'weight') {}

  init(view: FleetView): void {
    this.interval = view.interval;
    this.scorer = new ForecastScorer({
      config: forecastConfigSchema.parse({}),
      logger: silentLogger,
    });
    this.records = Array.from({ length: view.endpoints }, (_, e) => ({
      id: `ep-${e}`,
      service: 'sim',
      address: `10.0.0.${e + 1}`,
      port: 8080,
      locality: { region: 'sim', zone: 'sim', subZone: '' },
      labels: {},
      capacity: { cpuCores: 4, memoryBytes: 0, networkBytesPerSecond: 0 },
      interval: view.interval,
      intervalPinned: false,
      connected: true,
      draining: false,
      lastSequence: 0,
      lastSeenMs: EPOCH_MS,
      samplesStored: 0,
      series: new SampleRing(720),
    }));
    this.states = new Map(this.records.map((r) => [r.id, EndpointState.ENDPOINT_STATE_ACTIVE]));
  }

  async update(_step: number, report: IntervalReport | undefined): Promise<Float64Array> {
    const w = new Float64Array(this.records.length);
    if (!report) return w.fill(1);
    const nowMs = EPOCH_MS + (report.step + 1) * this.interval * 1000;
    this.records.forEach((r, e) => {
      r.lastSequence++;
      r.series.push({
        timestamp: nowMs,
        receivedAt: nowMs,
        sequence: r.lastSequence,
        cpu: report.utilisation[e],
        memory: NaN,
        network: 0,
        networkCapacity: 0,
        responseTime: report.latency[e],
        healthy: 1,
        // The LPS reads a rate of 0 as "unknown" and the WeightController then
        // drops the service to share mode, forgetting what it learned; an agent
        // that counted no request knows the rate is below one per interval, so
        // it says half of one (an API gap reported to the forecasting issue).
        requestRate: report.qps[e] > 0 ? report.qps[e] : 0.5 / this.interval,
      });
      r.samplesStored++;
      r.lastSeenMs = nowMs;
    });
    const assessed = await this.scorer!.assess(this.records, this.states, nowMs);
    this.records.forEach((r, e) => {
      const a = assessed.get(r.id);
      w[e] = a ? (this.use === 'weight' ? a.weight : a.score) : 0;
    });
    return w;
  }
}
