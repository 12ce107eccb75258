import type { Logger } from '../../../common/logger.js';
import type { LstmConfig } from '../config.js';
import { LstmWorker, packRows, type PackedRows } from './client.js';
import type { FitResult } from './engine.js';
import type { LstmSpec } from './model.js';
import { loadLstm, saveLstm } from './persistence.js';

/**
 * Metrics the LPS's LSTM forecasts, in row order (the scorer's FORECAST_METRICS:
 * CPU, memory, network, response time, background); time of day follows them.
 * A model saved for another number of targets (4 before the background was
 * added) does not load: the LPS logs it and trains afresh.
 */
export const LSTM_TARGETS = 5;
export const LSTM_FEATURES = LSTM_TARGETS + 2;

export interface ScheduleState {
  fitted: boolean;
  fitting: boolean;
  ticksSinceFit: number;
  ticksSinceRetrain: number;
  /** Rows of the endpoint with the most history. */
  longestHistory: number;
  drift: boolean;
}

/**
 * The training schedule, as a pure function of the state: the first fit once an
 * endpoint has `minHistory` rows; then a retrain from fresh weights on drift (at
 * most once per `fineTuneEvery` ticks), else a fine-tune every `fineTuneEvery`
 * ticks; nothing while a fit runs.
 */
export function nextFit(
  s: ScheduleState,
  c: Pick<LstmConfig, 'minHistory' | 'initialEpochs' | 'fineTuneEpochs' | 'fineTuneEvery'>,
): { epochs: number; reset: boolean; why: string } | undefined {
  if (s.fitting) return undefined;
  if (!s.fitted)
    return s.longestHistory >= c.minHistory
      ? { epochs: c.initialEpochs, reset: false, why: 'initial fit' }
      : undefined;
  if (s.drift && s.ticksSinceRetrain >= c.fineTuneEvery)
    return { epochs: c.initialEpochs, reset: true, why: 'retrain on drift' };
  if (s.ticksSinceFit >= c.fineTuneEvery)
    return { epochs: c.fineTuneEpochs, reset: false, why: 'fine-tune' };
  return undefined;
}

export interface OnlineLstmOptions {
  config: LstmConfig;
  maxHorizon: number;
  /** Where the model is saved; undefined: not persisted. */
  file?: string;
  logger: Logger;
  /** Rows of history the worker keeps per endpoint. */
  maxRows?: number;
}

/**
 * Forecasts of many endpoints in one buffer, as the worker answers them: endpoint `ids[i]`'s
 * forecast of target j, h steps ahead (1-based), quantile q (0 median, 1 upper) is
 * `raw[i * stride + outIndex(spec, j, h, q)]`; for one target, its (median, upper) pairs for
 * h = 1..H follow each other from `outIndex(spec, j, 1, 0)`. NaN where the LSTM has none.
 */
export interface LstmForecasts {
  ids: readonly string[];
  raw: Float32Array;
  stride: number;
}

/**
 * The LPS's LSTM: the worker, its training schedule and its persistence.
 *
 * Schedule, counted in scoring ticks: the first fit once some endpoint has
 * `minHistory` rows; a fine-tune every `fineTuneEvery` ticks; a retrain from fresh
 * weights when the caller reports drift (its rolling error well above the best
 * baseline's), at most once per `fineTuneEvery` ticks. One fit at a time, never
 * awaited by a tick: the worker keeps answering `predict` between batches.
 */
export class OnlineLstm {
  readonly spec: LstmSpec;
  private readonly options: OnlineLstmOptions;
  private readonly worker: LstmWorker;
  private readonly rows = new Map<string, number>();
  private fitting: Promise<void> | undefined;
  private inflight: Promise<void> | undefined;
  /**
   * The last forecasts' buffer, handed back to the worker with the next `predict` to be written
   * again: a tick's forecasts are 200 bytes an endpoint (4 MB at 20,000), and a buffer that size
   * freed every tick would hold glibc's mmap threshold, and with it the memory each malloc arena
   * keeps, at its size. Freed only when the fleet outgrows it, or a result comes too late.
   */
  private spare: Float32Array | undefined;
  private saving: Promise<void> = Promise.resolve();
  /** The newest append's answer from the worker. */
  private appended: Promise<void> = Promise.resolve();
  private fitted = false;
  private ticksSinceFit = 0;
  private ticksSinceRetrain = Infinity;
  private lastFit: FitResult | undefined;
  private closed = false;

  private constructor(worker: LstmWorker, spec: LstmSpec, options: OnlineLstmOptions) {
    this.worker = worker;
    this.spec = spec;
    this.options = options;
  }

  static async start(options: OnlineLstmOptions): Promise<OnlineLstm> {
    const c = options.config;
    const spec: LstmSpec = {
      window: c.window,
      targets: LSTM_TARGETS,
      features: LSTM_FEATURES,
      horizon: options.maxHorizon,
      units: c.units,
      upperQuantile: c.upperQuantile,
      learningRate: c.learningRate,
      seed: 42,
    };
    const worker = await LstmWorker.start(
      spec,
      {
        maxRows: options.maxRows ?? 1024,
        maxTotalRows: c.trainingRows,
        maxTrainWindows: c.maxTrainWindows,
        batchSize: c.batchSize,
      },
      { niceness: c.niceness },
    );
    const lstm = new OnlineLstm(worker, spec, options);
    if (options.file) lstm.fitted = await loadLstm(worker, options.file, options.logger);
    options.logger.info({ backend: worker.backend, restored: lstm.fitted }, 'LSTM worker ready');
    return lstm;
  }

  get backend(): string {
    return this.worker.backend;
  }

  /** The worker's thread id in the OS (Linux), for accounting its CPU apart; else undefined. */
  get workerTid(): number | undefined {
    return this.worker.tid;
  }

  /** True once a model has been fitted or restored: before that its forecasts are not offered. */
  get ready(): boolean {
    return this.fitted;
  }

  get training(): boolean {
    return this.fitting !== undefined;
  }

  get lastFitResult(): FitResult | undefined {
    return this.lastFit;
  }

  /** Appends rows (n × LSTM_FEATURES) per endpoint; copied into one buffer for the worker. */
  append(batch: Array<{ id: string; rows: Float32Array }>): void {
    if (batch.length > 0) this.appendPacked(packRows(batch));
  }

  /** `append` of rows already packed; the buffers are transferred to the worker. */
  appendPacked(packed: PackedRows): void {
    const { ids, ends } = packed;
    if (ids.length === 0) return;
    for (let i = 0; i < ids.length; i++) {
      const n = (ends[i]! - (i > 0 ? ends[i - 1]! : 0)) / LSTM_FEATURES;
      this.rows.set(ids[i]!, (this.rows.get(ids[i]!) ?? 0) + n);
    }
    this.appended = this.worker
      .appendPacked(packed)
      .then(() => undefined)
      .catch((err: Error) => this.options.logger.error({ err: err.message }, 'LSTM append failed'));
  }

  forget(ids: string[]): void {
    if (ids.length === 0) return;
    for (const id of ids) this.rows.delete(id);
    void this.worker.forget(ids).catch(() => undefined);
  }

  /**
   * Forecasts of each endpoint's metrics (target order) for 1..H from its newest row, in one
   * buffer (LstmForecasts); the endpoints with too little history are left out, and all of them
   * if the worker does not answer within `inferenceTimeoutMs`. The result's `raw` is valid until
   * the next call, which hands its buffer back to the worker.
   */
  async predict(ids: readonly string[]): Promise<LstmForecasts> {
    const none: LstmForecasts = { ids: [], raw: new Float32Array(0), stride: 0 };
    if (!this.fitted || ids.length === 0 || this.closed) return none;
    const want = ids.filter((id) => (this.rows.get(id) ?? 0) >= this.spec.window);
    if (want.length === 0) return none;
    // Backpressure: while an earlier tick's inference is still running (a slow or busy
    // host), this tick goes without the LSTM instead of queueing more work behind it.
    if (this.inflight) return none;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), this.options.config.inferenceTimeoutMs);
    });
    const request = this.worker.predictIds(want, this.spare);
    this.spare = undefined;
    const settled = request.then(
      () => undefined,
      () => undefined,
    );
    this.inflight = settled;
    void settled.then(() => {
      if (this.inflight === settled) this.inflight = undefined;
    });
    const raw = await Promise.race([request, timeout]).catch(() => undefined);
    clearTimeout(timer);
    if (!raw) return none;
    this.spare = new Float32Array(raw.buffer as ArrayBuffer);
    return { ids: want, raw, stride: this.spec.targets * this.spec.horizon * 2 };
  }

  /** One scoring tick passed; `drift` says the LSTM's rolling error is well above the best baseline's. */
  tick(drift: boolean): void {
    this.ticksSinceFit++;
    this.ticksSinceRetrain++;
    if (this.closed) return;
    let longest = 0;
    for (const n of this.rows.values()) longest = Math.max(longest, n);
    const next = nextFit(
      {
        fitted: this.fitted,
        fitting: this.fitting !== undefined,
        ticksSinceFit: this.ticksSinceFit,
        ticksSinceRetrain: this.ticksSinceRetrain,
        longestHistory: longest,
        drift,
      },
      this.options.config,
    );
    if (next) this.startFit(next.epochs, next.reset, next.why);
  }

  private startFit(epochs: number, reset: boolean, why: string): void {
    const log = this.options.logger;
    this.ticksSinceFit = 0;
    if (reset) this.ticksSinceRetrain = 0;
    this.fitting = (async () => {
      try {
        const r = await this.worker.fit(epochs, reset);
        this.lastFit = r;
        this.fitted = true;
        log.info({ why, loss: r.loss, windows: r.windows, epochs, ms: r.ms }, `LSTM ${why} done`);
        if (!this.closed) await this.save();
      } catch (err) {
        if (!this.closed) log.error({ why, err: (err as Error).message }, `LSTM ${why} failed`);
      } finally {
        this.fitting = undefined;
      }
    })();
  }

  /** Waits for a running fit and for the rows appended so far to reach the worker (tests, benchmarks). */
  async settled(): Promise<void> {
    await this.appended;
    await this.fitting;
  }

  /** Saves the model to the data dir; saves are serialised, so the newest state lands last. */
  save(): Promise<void> {
    const file = this.options.file;
    if (!file || !this.fitted) return this.saving;
    this.saving = this.saving.catch(() => undefined).then(() => saveLstm(this.worker, file));
    return this.saving;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      // Not waiting for a running fit: the worker answers the export between two batches.
      await this.save();
    } catch (err) {
      this.options.logger.error({ err: (err as Error).message }, 'cannot save the LSTM model');
    }
    this.closed = true;
    await this.worker.close();
  }
}
