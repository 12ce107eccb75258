import { secondsToDuration } from '../../common/duration.js';
import type { Duration } from '../../gen/google/protobuf/duration.js';
import type { Logger } from '../../common/logger.js';
import {
  Metric,
  type ForecasterError,
  type GetForecastResponse,
  type MetricForecast,
  ScoreParts,
} from '../../gen/augur/v1/load_prediction.js';
import { emptySample, type StoredSample } from '../ring.js';
import {
  EndpointCost,
  pooledCost,
  type CostParams,
  type CostSample,
  type CostSource,
} from '../score/cost.js';
import { loadScore, type LoadScore } from '../score/load-score.js';
import { plannedBackground, PublishedWeight, WeightBasis, weightHorizon } from '../score/weight.js';
import {
  EndpointState,
  type Assessment,
  type CheckpointableScorer,
  type EndpointRecord,
  type Scorer,
} from '../types.js';
import { BASELINES } from './baselines.js';
import { BaselineBank } from './bank.js';
import type { ForecastConfig } from './config.js';
import { writeTimeOfDay } from './lstm/features.js';
import { outIndex } from './lstm/model.js';
import { LSTM_FEATURES, LSTM_TARGETS, type OnlineLstm } from './lstm/online.js';

/** The metrics forecast per endpoint, in the LSTM's target order. */
export const FORECAST_METRICS = ['cpu', 'memory', 'network', 'responseTime', 'background'] as const;
export type ForecastMetric = (typeof FORECAST_METRICS)[number];
const PROTO_METRIC: Record<ForecastMetric, Metric> = {
  cpu: Metric.METRIC_CPU,
  memory: Metric.METRIC_MEMORY,
  network: Metric.METRIC_NETWORK,
  responseTime: Metric.METRIC_RESPONSE_TIME,
  background: Metric.METRIC_BACKGROUND,
};

const clamp01 = (v: number): number => (v < 0 ? 0 : v > 1 ? 1 : v);

/**
 * The load on the host that is not the endpoint's: host CPU minus the endpoint's
 * own (process tree or cgroup), measured, not inferred; NaN when the agent does
 * not report its own CPU.
 */
export function backgroundOf(s: StoredSample): number {
  return Number.isFinite(s.processCpu) ? clamp01(s.cpu - s.processCpu) : NaN;
}

/** Seconds a sample covers: its own span, else the monitoring interval. */
function spanOf(s: StoredSample, interval: number): number {
  return Number.isFinite(s.span) && s.span > 0 ? s.span : interval;
}

/**
 * Requests completed over a sample's span: the count when reported (0 is a real
 * zero), else the legacy rate (where 0 means unknown) times the span; NaN when
 * unknown.
 */
function requestsOf(s: StoredSample, interval: number): number {
  if (Number.isFinite(s.completed)) return s.completed;
  return s.requestRate > 0 ? s.requestRate * spanOf(s, interval) : NaN;
}

/** Named reads, not s[m]: a read by a computed name boxes the number on the heap. */
function metricValue(s: StoredSample, m: ForecastMetric): number {
  switch (m) {
    case 'cpu':
      return s.cpu;
    case 'memory':
      return s.memory;
    case 'network':
      return s.networkCapacity > 0 ? s.network / s.networkCapacity : NaN;
    case 'responseTime':
      return s.responseTime;
    case 'background':
      return backgroundOf(s);
  }
}

/** A sample as an LSTM row (metrics, then time of day), written into `rows` from float `at`. */
function writeLstmRow(s: StoredSample, rows: Float32Array, at: number): void {
  for (let j = 0; j < FORECAST_METRICS.length; j++)
    rows[at + j] = metricValue(s, FORECAST_METRICS[j]!);
  writeTimeOfDay(s.timestamp, rows, at + LSTM_TARGETS);
}

/**
 * The newest `k` samples of a record as LSTM rows, oldest first, written into `rows` from float
 * `at`; `sample` is scratch the ring reads into (no object per sample).
 */
function writeLstmRows(
  r: EndpointRecord,
  k: number,
  sample: StoredSample,
  rows: Float32Array,
  at: number,
): void {
  for (let back = k - 1; back >= 0; back--, at += LSTM_FEATURES)
    writeLstmRow(r.series.read(back, sample), rows, at);
}

interface EndpointForecasts {
  service: string;
  /** Its row in every metric's bank. */
  slot: number;
  /** `samplesStored` of the record when last fed. */
  fed: number;
  interval: number;
  computedAt: Date;
  cost: EndpointCost;
  weight: PublishedWeight;
  /** The agent's timestamp of the last sample fed (what a checkpoint has learnt up to). */
  learntTo: number;
  /**
   * Samples up to this agent timestamp are not learnt into the cost again: a restored checkpoint
   * has them already (cluster mode's takeover replays history the old owner learnt from).
   */
  skipCostTo: number;
  /**
   * Its assessment, written again in place each tick (returned in `assess`'s map): at 20,000
   * endpoints new objects each tick were 15 MB that survived into V8's old generation, whose
   * collection is most of the GC work of a tick.
   */
  assessment: Assessment;
  /** The number of the last tick it was part of (the others are gone). */
  seenTick: number;
  /** A new sample arrived since the last tick: the published weight may move. */
  fresh: boolean;
  /** Active and with samples this tick: it gets a score and a weight. */
  available: boolean;
}

/** A checkpoint's entry for an endpoint this scorer does not hold yet, applied when it arrives. */
interface PendingRestore {
  cost: EndpointCost;
  weight: PublishedWeight;
  learntTo: number;
  queuedAtMs: number;
}

/** A pending restore whose endpoint did not arrive within this long is dropped. */
const PENDING_RESTORE_MS = 120_000;

/** An assessment before its first tick: score and weight 0, every part empty. */
function emptyAssessment(): Assessment {
  return { score: 0, weight: 0, parts: ScoreParts.fromPartial({ weightParts: {} }) };
}

export interface ForecastScorerOptions {
  config: ForecastConfig;
  logger: Logger;
  /**
   * Starts the LSTM (its worker thread). Called once, not before some endpoint
   * has `lstm.minHistory` samples (so a control plane with nothing to learn
   * never pays for the worker), or at the first tick when `startLstmEagerly`
   * (a saved model is waiting to be restored). Without it: baselines only.
   */
  startLstm?: () => Promise<OnlineLstm>;
  startLstmEagerly?: boolean;
  /** Floats in one message of the LSTM's backfill (default 1 MiB of them); for tests. */
  backfillChunk?: number;
}

/**
 * The forecasting Scorer. Per endpoint and metric it keeps the baselines (and
 * the LSTM's forecasts when it has a model) in a ForecastEnsemble, feeds it only
 * the samples stored since the last tick, scores every forecast when its actual
 * arrives, and uses the forecaster with the lowest rolling error. The Load Score
 * comes from the selected upper-quantile forecasts at the score horizon; the
 * weight from the selected forecast of the background at the horizon where the
 * weight will be in force, the learnt cost per request and the cores
 * (src/lps/score/weight.ts): one path from the forecast to the weight. LSTM
 * inference for every endpoint is one batched request per tick to the worker.
 */
export class ForecastScorer implements Scorer, CheckpointableScorer {
  private readonly config: ForecastConfig;
  private readonly backfillChunk: number;
  private readonly logger: Logger;
  private readonly options: ForecastScorerOptions;
  private lstmState: 'off' | 'waiting' | 'starting' | 'ready' | 'failed';
  private lstmStart: Promise<OnlineLstm | undefined> | undefined;
  private lstmInstance: OnlineLstm | undefined;
  /** The LSTM's history must be filled from the rings once, when it becomes ready. */
  private lstmBackfilled = false;
  private closed = false;
  private readonly endpoints = new Map<string, EndpointForecasts>();
  /** What `assess` returns: every endpoint's assessment, the same objects each tick. */
  private readonly assessments = new Map<string, Assessment>();
  /** Scoring ticks so far (what `seenTick` counts). */
  private tick = 0;
  /** Each service's records in the tick being scored; the arrays are reused. */
  private readonly services = new Map<string, EndpointRecord[]>();
  /** Reused for every endpoint's Load Score. */
  private readonly scored: LoadScore = { score: 0, utilizationFactor: 0, latencyFactor: 0 };
  /** The score horizon as a Duration, per monitoring interval (shared, never written). */
  private readonly horizons = new Map<number, Duration>();
  /** Restored checkpoint entries waiting for their endpoint's first tick (`restore`). */
  private readonly pendingRestores = new Map<string, PendingRestore>();
  /**
   * Per metric, the baselines and their errors of every endpoint (a row each, by slot): what a
   * ForecastEnsemble per endpoint and metric held, without an object per endpoint.
   */
  private readonly banks: Record<ForecastMetric, BaselineBank>;
  private readonly freeSlots: number[] = [];
  private nextSlot = 0;
  private readonly names: string[];
  private readonly costParams: CostParams;
  /** Reused for every sample read and learnt from in a tick. */
  private readonly sample = emptySample();
  private readonly costSample: CostSample = {
    hostCpu: 0,
    ownCpu: 0,
    requests: 0,
    span: 0,
    cores: 0,
  };

  constructor(options: ForecastScorerOptions) {
    this.options = options;
    this.config = options.config;
    this.backfillChunk = options.backfillChunk ?? BACKFILL_CHUNK;
    this.logger = options.logger;
    this.lstmState = options.startLstm ? 'waiting' : 'off';
    this.names = [...Object.keys(BASELINES), 'seasonal', ...(options.startLstm ? ['lstm'] : [])];
    const bank = (seasonal: boolean) =>
      new BaselineBank({
        seasonal,
        external: options.startLstm ? ['lstm'] : [],
        maxHorizon: this.config.maxHorizon,
        window: this.config.errorWindow,
        minCount: this.config.minErrorCount,
        fallback: 'ewma',
      });
    this.banks = {
      cpu: bank(true),
      memory: bank(false),
      network: bank(false),
      responseTime: bank(false),
      background: bank(true),
    };
    const w = this.config.weight;
    this.costParams = {
      minRequests: w.minRequests,
      saturation: w.saturation,
      halfLife: w.costHalfLife,
      priorRequests: w.priorRequests,
    };
  }

  /** The LSTM once its worker runs; undefined before (and when disabled). */
  get lstm(): OnlineLstm | undefined {
    return this.lstmInstance;
  }

  /** Resolves when a started LSTM is ready (or failed); for tests and benchmarks. */
  async lstmStarted(): Promise<OnlineLstm | undefined> {
    return this.lstmStart;
  }

  private maybeStartLstm(endpoints: readonly EndpointRecord[]): void {
    if (this.lstmState !== 'waiting' || this.closed) return;
    const need = this.config.lstm.minHistory;
    if (!this.options.startLstmEagerly && !endpoints.some((r) => r.samplesStored >= need)) return;
    this.lstmState = 'starting';
    this.lstmStart = this.options.startLstm!().then(
      async (lstm) => {
        if (this.closed) {
          await lstm.close();
          return undefined;
        }
        this.lstmInstance = lstm;
        this.lstmState = 'ready';
        return lstm;
      },
      (err: Error) => {
        this.lstmState = 'failed';
        this.logger.warn(
          { err: err.message },
          'LSTM unavailable; forecasting with the baselines only',
        );
        return undefined;
      },
    );
  }

  /** Forecaster names, in the order errors are reported. */
  forecasterNames(): readonly string[] {
    return this.names;
  }

  private stateFor(r: EndpointRecord): EndpointForecasts {
    let e = this.endpoints.get(r.id);
    if (!e) {
      const slot = this.freeSlots.pop() ?? this.nextSlot++;
      for (const m of FORECAST_METRICS) this.banks[m].open(slot);
      e = {
        service: r.service,
        slot,
        // A new (or restored) endpoint starts from its recent history only: the baselines
        // settle within tens of samples, and a whole ring per endpoint at 10,000
        // endpoints would hold up one tick for seconds.
        fed: Math.max(0, r.samplesStored - Math.min(r.series.size, 2 * this.config.errorWindow)),
        interval: r.interval,
        computedAt: new Date(0),
        cost: new EndpointCost(this.costParams),
        weight: new PublishedWeight(this.config.weight),
        learntTo: -Infinity,
        skipCostTo: -Infinity,
        assessment: emptyAssessment(),
        seenTick: 0,
        fresh: false,
        available: false,
      };
      const pending = this.pendingRestores.get(r.id);
      if (pending) {
        this.pendingRestores.delete(r.id);
        e.cost = pending.cost;
        e.weight = pending.weight;
        e.learntTo = e.skipCostTo = pending.learntTo;
      }
      this.endpoints.set(r.id, e);
      this.assessments.set(r.id, e.assessment);
    }
    e.seenTick = this.tick;
    e.service = r.service;
    e.interval = r.interval;
    return e;
  }

  async assess(
    endpoints: readonly EndpointRecord[],
    states: ReadonlyMap<string, EndpointState>,
    nowMs: number,
  ): Promise<Map<string, Assessment>> {
    const tick = ++this.tick;
    for (const [id, p] of this.pendingRestores)
      if (nowMs - p.queuedAtMs > PENDING_RESTORE_MS) this.pendingRestores.delete(id);

    // 1. Feed the samples stored since the last tick, oldest first.
    this.maybeStartLstm(endpoints);
    const lstm = this.lstmInstance;
    const backfill = lstm !== undefined && !this.lstmBackfilled;
    this.lstmBackfilled ||= backfill;
    // Enough rows for the first fit, and no more.
    const backfillRows = Math.max(
      this.config.lstm.minHistory,
      this.config.lstm.window + this.config.maxHorizon,
    );
    const fresh: string[] = [];
    // The LSTM's new rows, written straight into the one buffer the worker gets (no array per
    // endpoint), in the same step as the banks' (the loop yields, and the ring moves on meanwhile).
    let lstmIds: string[] = [];
    let lstmEnds: number[] = [];
    let lstmBuf = new Float32Array(
      !lstm ? 0 : backfill ? this.backfillChunk : endpoints.length * LSTM_FEATURES,
    );
    let lstmUsed = 0;
    if (lstm && backfill) {
      // The backfill goes in messages of at most backfillChunk floats, each buffer freed once
      // the worker has it: freeing one of tens of MiB would raise glibc's mmap threshold to its
      // size for good (see SeriesHistory.relayout). The series are registered first, all
      // together, so that the worker lays its history out once, not once a message.
      const ids = endpoints.filter((r) => r.series.size > 0).map((r) => r.id);
      lstm.appendPacked({ ids, ends: new Uint32Array(ids.length), rows: new Float32Array(0) });
    }
    let work = 0;
    for (const r of endpoints) {
      if (++work % YIELD_EVERY === 0) await yieldToEventLoop();
      const e = this.stateFor(r);
      const n = Math.min(r.samplesStored - e.fed, r.series.size);
      e.fed = r.samplesStored;
      e.fresh = n > 0;
      if (n > 0 && lstm) fresh.push(r.id);
      // The LSTM gets the same new rows; on its first tick, everything the ring holds.
      const k = !lstm ? 0 : backfill ? Math.min(r.series.size, backfillRows) : Math.max(0, n);
      if (k > 0) {
        const need = lstmUsed + k * LSTM_FEATURES;
        if (need > lstmBuf.length && backfill && lstmUsed > 0) {
          lstm.appendPacked({ ids: lstmIds, ends: Uint32Array.from(lstmEnds), rows: lstmBuf });
          lstmIds = [];
          lstmEnds = [];
          lstmUsed = 0;
          lstmBuf = new Float32Array(Math.max(this.backfillChunk, k * LSTM_FEATURES));
        } else if (need > lstmBuf.length) {
          const grown = new Float32Array(Math.max(need, 2 * lstmBuf.length));
          grown.set(lstmBuf.subarray(0, lstmUsed));
          lstmBuf = grown;
        }
        if (backfill) writeLstmRows(r, k, this.sample, lstmBuf, lstmUsed);
      }
      for (let back = n - 1; back >= 0; back--) {
        const s = r.series.read(back, this.sample);
        // Past the backfill, the LSTM's rows are the samples the banks get, read once.
        if (k > 0 && !backfill) writeLstmRow(s, lstmBuf, lstmUsed + (n - 1 - back) * LSTM_FEATURES);
        for (const m of FORECAST_METRICS) this.banks[m].observe(e.slot, metricValue(s, m));
        const c = this.costSample;
        c.hostCpu = s.cpu;
        c.ownCpu = s.processCpu;
        c.requests = requestsOf(s, r.interval);
        c.span = spanOf(s, r.interval);
        c.cores = coresOf(r);
        if (s.timestamp > e.skipCostTo) e.cost.learn(c);
        e.learntTo = s.timestamp;
      }
      if (k > 0) {
        lstmUsed += k * LSTM_FEATURES;
        lstmIds.push(r.id);
        lstmEnds.push(lstmUsed);
      }
    }

    // Endpoints not passed in are gone: their slots are free for the next tick's new ones.
    const gone: string[] = [];
    for (const [id, e] of this.endpoints) {
      if (e.seenTick === tick) continue;
      gone.push(id);
      this.freeSlots.push(e.slot);
      this.endpoints.delete(id);
      this.assessments.delete(id);
    }
    if (gone.length > 0) this.lstmInstance?.forget(gone);

    // 2. One batched LSTM inference for every endpoint with a new sample.
    if (lstm) {
      // The buffer's unused tail travels too; `ends` says where each endpoint's rows stop.
      lstm.appendPacked({ ids: lstmIds, ends: Uint32Array.from(lstmEnds), rows: lstmBuf });
      const { ids, raw, stride } = await lstm.predict(fresh);
      const spec = lstm.spec;
      for (let i = 0; i < ids.length; i++) {
        const e = this.endpoints.get(ids[i]!);
        if (!e) continue;
        for (let j = 0; j < FORECAST_METRICS.length; j++) {
          const from = i * stride + outIndex(spec, j, 1, 0);
          this.banks[FORECAST_METRICS[j]!].offerPairs(e.slot, 'lstm', raw, from, spec.horizon);
        }
      }
      lstm.tick(this.lstmDrifting());
    }

    // 3. Score each endpoint from the selected forecasts; weights per service.
    const H = this.config.scoreHorizon;
    const services = this.services;
    for (const list of services.values()) list.length = 0;
    const computedAt = new Date(nowMs);
    const scored = this.scored;
    for (const r of endpoints) {
      if (++work % YIELD_EVERY === 0) await yieldToEventLoop();
      const e = this.endpoints.get(r.id)!;
      const available =
        states.get(r.id) === EndpointState.ENDPOINT_STATE_ACTIVE && r.series.size > 0;
      e.available = available;
      const b = this.banks;
      // The selected forecasts' upper bounds at the score horizon; NaN where none.
      const hasMemory = b.memory.select(e.slot, H);
      const memory = hasMemory ? b.memory.upper : NaN;
      const hasNetwork = b.network.select(e.slot, H);
      const network = hasNetwork ? b.network.upper : NaN;
      const hasRt = b.responseTime.select(e.slot, H);
      const rt = hasRt ? b.responseTime.upper : NaN;
      const hasCpu = b.cpu.select(e.slot, H);
      const cpu = hasCpu ? b.cpu.upper : NaN;
      e.computedAt = computedAt;
      loadScore({ cpu, memory, network, responseTime: rt, available }, this.config.score, scored);
      let list = services.get(r.service);
      if (!list) services.set(r.service, (list = []));
      list.push(r);
      const a = e.assessment;
      a.score = scored.score;
      a.weight = 0;
      const parts = a.parts;
      // Forecasts of fractions can overshoot [0,1] (a trend, an upper bound): users see fractions.
      parts.predictedUtilization = clamp01(hasCpu ? cpu : 0);
      parts.predictedResponseTime = Math.max(0, hasRt ? rt : 0);
      parts.stalenessSeconds = Math.max(0, (nowMs - r.lastSeenMs) / 1000);
      parts.forecaster = hasCpu ? b.cpu.names[b.cpu.forecaster]! : '';
      parts.utilizationFactor = scored.utilizationFactor;
      parts.latencyFactor = scored.latencyFactor;
      parts.horizon = this.horizonOf(H * r.interval);
      parts.predictedMemory = clamp01(hasMemory ? memory : 0);
      parts.predictedNetwork = clamp01(hasNetwork ? network : 0);
      parts.estimatedCapacity = 0;
    }
    for (const [service, list] of services) {
      if (list.length === 0) services.delete(service);
      else this.weigh(list, nowMs);
    }
    return this.assessments;
  }

  /** `seconds` as a Duration, one object per value (few: one per monitoring interval in use). */
  private horizonOf(seconds: number): Duration {
    let d = this.horizons.get(seconds);
    if (!d) {
      if (this.horizons.size >= 64) this.horizons.clear();
      this.horizons.set(seconds, (d = Object.freeze(secondsToDuration(seconds))));
    }
    return d;
  }

  /**
   * The weights of one service's endpoints (src/lps/score/weight.ts): capacity
   * in free cores from the planned background and the learnt costs, published
   * through each endpoint's hysteresis.
   */
  private weigh(records: readonly EndpointRecord[], nowMs: number): void {
    const w = this.config.weight;
    const costs = records.map((r) => this.endpoints.get(r.id)!.cost);
    const pooled: Record<CostSource, number | undefined> = {
      own: pooledCost(costs, 'own'),
      host: pooledCost(costs, 'host'),
    };
    for (const r of records) {
      const e = this.endpoints.get(r.id)!;
      const a = e.assessment;
      const parts = a.parts.weightParts!;
      if (!e.available) {
        // Gone or failing: it starts again from its target when it comes back.
        if (e.weight.current !== undefined) e.weight = new PublishedWeight(w);
        parts.basis = WeightBasis.WEIGHT_BASIS_UNSPECIFIED;
        parts.plannedBackground = 0;
        parts.costPerRequest = 0;
        parts.horizonIntervals = 0;
        parts.target = 0;
        continue;
      }
      const latest = r.series.read(0, this.sample);
      const cores = coresOf(r);
      const ownKnown = Number.isFinite(latest.processCpu);
      const requestsKnown = Number.isFinite(requestsOf(latest, r.interval));
      let basis: WeightBasis;
      let background = 0;
      let horizon = 0;
      let source: CostSource | undefined;
      if (ownKnown) {
        basis = requestsKnown
          ? WeightBasis.WEIGHT_BASIS_MEASURED
          : WeightBasis.WEIGHT_BASIS_OWN_CPU;
        horizon = weightHorizon(
          (nowMs - latest.receivedAt) / 1000,
          r.interval,
          w.pushDelay,
          this.config.maxHorizon,
        );
        // atHorizon of the median and of the upper path, from one selection per whole horizon.
        const bank = this.banks.background;
        const lo = Math.floor(horizon);
        const f = horizon - lo;
        const has = bank.select(e.slot, lo);
        const m0 = has ? bank.median : NaN;
        const u0 = has ? bank.upper : NaN;
        let median = m0;
        let upper = u0;
        if (f !== 0) {
          const next = bank.select(e.slot, lo + 1);
          median = m0 + f * ((next ? bank.median : NaN) - m0);
          upper = u0 + f * ((next ? bank.upper : NaN) - u0);
        }
        background = plannedBackground(
          Number.isFinite(median) ? median : backgroundOf(latest),
          upper,
          w,
        );
        source = 'own';
      } else if (requestsKnown) {
        basis = WeightBasis.WEIGHT_BASIS_HOST_CPU;
        source = 'host';
      } else {
        basis = WeightBasis.WEIGHT_BASIS_CORES;
      }
      const prior = source ? pooled[source] : undefined;
      const cost = source ? e.cost.estimate(source, prior) : undefined;
      const relative = prior !== undefined && cost !== undefined ? prior / cost : 1;
      const target = cores * (1 - background) * relative;
      const published =
        e.fresh || e.weight.current === undefined ? e.weight.update(target) : e.weight.current;
      a.weight = published;
      a.parts.estimatedCapacity = cost !== undefined ? (cores * (1 - background)) / cost : 0;
      parts.basis = basis;
      parts.plannedBackground = background;
      parts.costPerRequest = cost ?? 0;
      parts.horizonIntervals = horizon;
      parts.target = target;
    }
  }

  /**
   * Drift: over endpoints where the LSTM has been scored, its mean rolling MASE
   * at the score horizon (CPU) exceeds the best baseline's by `driftFactor`.
   */
  private lstmDrifting(): boolean {
    const H = this.config.scoreHorizon;
    let lstm = 0;
    let best = 0;
    let n = 0;
    const t = this.banks.cpu;
    const l = t.names.indexOf('lstm');
    for (const e of this.endpoints.values()) {
      if (t.count(e.slot, l, H) < this.config.minErrorCount) continue;
      const lm = t.maseOf(e.slot, l, H);
      let b = Infinity;
      for (let f = 0; f < t.names.length; f++) if (f !== l) b = Math.min(b, t.maseOf(e.slot, f, H));
      if (!Number.isFinite(lm) || !Number.isFinite(b)) continue;
      lstm += lm;
      best += b;
      n++;
    }
    return n > 0 && lstm > this.config.lstm.driftFactor * best;
  }

  /** GetForecast: the forecasts of one endpoint, their bounds, the forecaster used, the recent errors. */
  forecastFor(endpointId: string): GetForecastResponse | undefined {
    const e = this.endpoints.get(endpointId);
    if (!e) return undefined;
    const metrics: MetricForecast[] = [];
    for (const m of FORECAST_METRICS) {
      const bank = this.banks[m];
      const path = bank.path(e.slot, this.config.scoreHorizon);
      if (!path) continue;
      const errors: ForecasterError[] = [];
      for (let f = 0; f < bank.names.length; f++)
        for (let h = 1; h <= bank.maxHorizon; h++) {
          const count = bank.count(e.slot, f, h);
          if (count === 0) continue;
          errors.push({
            forecaster: bank.names[f]!,
            horizon: h,
            mae: bank.maeOf(e.slot, f, h),
            mase: bank.maseOf(e.slot, f, h),
            count,
          });
        }
      metrics.push({
        metric: PROTO_METRIC[m],
        forecaster: path.forecaster,
        median: path.median,
        upper: path.upper,
        errors,
      });
    }
    return {
      endpointId,
      interval: secondsToDuration(e.interval),
      metrics,
      computedAt: e.computedAt,
    };
  }

  /**
   * Mean rolling MAE and MASE over endpoints, per metric, forecaster and horizon
   * (bounded label set for /metrics), and how many endpoints use each forecaster.
   */
  errorSummary(): {
    errors: Array<{
      metric: ForecastMetric;
      forecaster: string;
      horizon: number;
      mae: number;
      mase: number;
      endpoints: number;
    }>;
    selected: Record<string, number>;
  } {
    const H = this.config.maxHorizon;
    const acc = new Map<string, { mae: number; mase: number; n: number }>();
    const selected: Record<string, number> = Object.fromEntries(this.names.map((n) => [n, 0]));
    for (const e of this.endpoints.values()) {
      for (const m of FORECAST_METRICS) {
        const t = this.banks[m];
        for (let f = 0; f < t.names.length; f++)
          for (let h = 1; h <= H; h++) {
            if (t.count(e.slot, f, h) === 0) continue;
            const mase = t.maseOf(e.slot, f, h);
            const key = `${m}|${t.names[f]}|${h}`;
            const a = acc.get(key) ?? { mae: 0, mase: 0, n: 0 };
            a.mae += t.maeOf(e.slot, f, h);
            if (Number.isFinite(mase)) a.mase += mase;
            a.n++;
            acc.set(key, a);
          }
      }
      const cpu = this.banks.cpu;
      if (cpu.select(e.slot, this.config.scoreHorizon)) {
        const sel = cpu.names[cpu.forecaster]!;
        selected[sel] = (selected[sel] ?? 0) + 1;
      }
    }
    const errors = [...acc].map(([key, a]) => {
      const [metric, forecaster, h] = key.split('|') as [ForecastMetric, string, string];
      return {
        metric,
        forecaster,
        horizon: Number(h),
        mae: a.mae / a.n,
        mase: a.mase / a.n,
        endpoints: a.n,
      };
    });
    return { errors, selected };
  }

  /**
   * Per endpoint, what replaying its recent history does not rebuild (cluster mode's warm
   * takeover): the learnt cost per request, the published weight (the weight controller's
   * state) and the agent timestamp of the last sample learnt from. The baselines and their error
   * trackers are rebuilt from the history a new owner replays (2 × errorWindow samples); the LSTM
   * (one model per process, megabytes) is not saved.
   */
  checkpoint(endpointIds: readonly string[]): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const id of endpointIds) {
      const e = this.endpoints.get(id);
      if (e)
        out[id] = {
          cost: e.cost.toJSON(),
          weight: e.weight.current ?? null,
          learntTo: Number.isFinite(e.learntTo) ? e.learntTo : null,
        };
    }
    return out;
  }

  /**
   * Takes back what `checkpoint` saved. An endpoint this scorer holds takes it at once; one it
   * does not hold yet takes it when it first arrives (within two minutes), and then does not
   * learn its cost again from the samples the checkpoint had learnt (those up to its
   * `learntTo`): a new owner restores before it replays, and scores once. Returns how many
   * entries were valid (applied or waiting); damaged ones are ignored.
   */
  restore(state: Readonly<Record<string, unknown>>): number {
    let restored = 0;
    const queuedAtMs = Date.now();
    for (const [id, saved] of Object.entries(state)) {
      if (typeof saved !== 'object' || saved === null) continue;
      const { cost: c, weight: w, learntTo: t } = saved as Record<string, unknown>;
      const cost = new EndpointCost(this.costParams);
      const weight = new PublishedWeight(this.config.weight);
      if (!cost.restore(c) || !weight.restore(w)) continue;
      const learntTo = typeof t === 'number' && Number.isFinite(t) ? t : -Infinity;
      restored++;
      const e = this.endpoints.get(id);
      if (e) {
        // Its samples fed since learntTo are in the state being replaced; they are not fed again.
        e.cost = cost;
        e.weight = weight;
        e.learntTo = e.skipCostTo = learntTo;
      } else this.pendingRestores.set(id, { cost, weight, learntTo, queuedAtMs });
    }
    return restored;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.lstmStart;
    await this.lstmInstance?.close();
    this.logger.debug('forecast scorer closed');
  }
}

/** Logical cores of an endpoint's host; 1 when its agent did not say. */
function coresOf(r: EndpointRecord): number {
  return r.capacity.cpuCores > 0 ? r.capacity.cpuCores : 1;
}

/**
 * Scoring thousands of endpoints takes hundreds of milliseconds; it gives the
 * event loop back every YIELD_EVERY endpoints so ingest and the gRPC services
 * keep answering during a tick (records may gain samples meanwhile: each is read
 * once per tick, and its new samples are fed on the next).
 */
const YIELD_EVERY = 200;
/** Floats in one message of the LSTM's backfill by default (1 MiB). */
const BACKFILL_CHUNK = 1 << 18;

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
