import type { BatchWalkForward, ForecastMatrix, SeriesInput } from '../evaluate.js';
import { LstmWorker } from './client.js';
import { timeOfDay } from './features.js';
import { outIndex, type LstmSpec } from './model.js';
import { lstmConfigSchema } from '../config.js';

/** The evaluation uses the LPS's model shape unless told otherwise. */
const LSTM_DEFAULTS = lstmConfigSchema.parse({});

export interface LstmWalkForwardOptions {
  window?: number;
  units?: number;
  /** First fit at this step (all series aligned by index); default a quarter of the longest series. */
  firstFit?: number;
  /** Fine-tune every this many steps after the first fit; default a tenth of the longest series. */
  refitEvery?: number;
  initialEpochs?: number;
  fineTuneEpochs?: number;
  maxTrainWindows?: number;
  batchSize?: number;
  learningRate?: number;
  upperQuantile?: number;
  seed?: number;
  /** Nice value of the worker thread (Linux); default 0: an evaluation has nothing to serve. */
  niceness?: number;
  /** Called after each fit (progress for long benchmarks). */
  onFit?: (info: { step: number; loss: number; windows: number; ms: number }) => void;
}

/**
 * The LSTM in the walk-forward evaluator: one model shared by every series (as
 * in the LPS), fitted at step `firstFit` on everything before it, fine-tuned every
 * `refitEvery` steps on everything before that step, and between two fits used to
 * forecast each step from the window ending at it. Nothing at or after a fit's
 * step is in its training data, and normalisers are frozen at each fit, so no
 * forecast sees its future. Runs in the worker thread, like the LPS's.
 */
export class LstmWalkForward implements BatchWalkForward {
  readonly name = 'lstm';
  private readonly options: LstmWalkForwardOptions;

  constructor(options: LstmWalkForwardOptions = {}) {
    this.options = options;
  }

  /** The step of the first fit: nothing is forecast before it. */
  private firstFit(series: readonly SeriesInput[], H: number): number {
    const window = this.options.window ?? LSTM_DEFAULTS.window;
    const maxLen = Math.max(...series.map((s) => s.values.length));
    return this.options.firstFit ?? Math.max(window + H + 32, Math.floor(maxLen / 4));
  }

  unforecastable(series: readonly SeriesInput[], maxHorizon: number): Array<string | undefined> {
    const first = this.firstFit(series, maxHorizon);
    const window = this.options.window ?? LSTM_DEFAULTS.window;
    return series.map((s) =>
      s.values.length > first
        ? undefined
        : `the series has ${s.values.length} values; the LSTM is first fitted at value ${first} ` +
          `(the larger of window ${window} + horizon ${maxHorizon} + 32 and a quarter of the longest series evaluated with it), ` +
          'so it never forecasts this one: evaluate a longer series, or this one alone',
    );
  }

  async run(series: readonly SeriesInput[], maxHorizon: number): Promise<ForecastMatrix[]> {
    const o = this.options;
    const H = maxHorizon;
    const spec: LstmSpec = {
      window: o.window ?? LSTM_DEFAULTS.window,
      targets: 1,
      features: 3,
      horizon: H,
      units: o.units ?? LSTM_DEFAULTS.units,
      upperQuantile: o.upperQuantile ?? 0.9,
      learningRate: o.learningRate ?? 0.005,
      seed: o.seed ?? 42,
    };
    const maxLen = Math.max(...series.map((s) => s.values.length));
    const firstFit = this.firstFit(series, H);
    const refitEvery = o.refitEvery ?? Math.max(50, Math.floor(maxLen / 10));
    const rows = series.map((s) => {
      const r = new Float32Array(s.values.length * 3);
      for (let t = 0; t < s.values.length; t++) {
        const [sin, cos] = timeOfDay(s.timestamps?.[t] ?? NaN);
        r[t * 3] = s.values[t]!;
        r[t * 3 + 1] = sin;
        r[t * 3 + 2] = cos;
      }
      return r;
    });
    const out = series.map((s) => new Float64Array(s.values.length * H).fill(NaN));
    const worker = await LstmWorker.start(
      spec,
      {
        maxRows: maxLen,
        maxTrainWindows: o.maxTrainWindows ?? 4096,
        batchSize: o.batchSize ?? 128,
      },
      { niceness: o.niceness ?? 0 },
    );
    try {
      const appended = series.map(() => 0);
      const appendUpTo = async (step: number) => {
        const batch: Array<{ id: string; rows: Float32Array }> = [];
        series.forEach((s, i) => {
          const to = Math.min(step, s.values.length);
          if (to > appended[i]!)
            batch.push({ id: String(i), rows: rows[i]!.slice(appended[i]! * 3, to * 3) });
          appended[i] = Math.max(appended[i]!, to);
        });
        if (batch.length) await worker.append(batch);
      };
      let first = true;
      for (let b = firstFit; b < maxLen; b += refitEvery) {
        await appendUpTo(b); // rows < b: the only data this fit may learn from
        const fit = await worker.fit(first ? (o.initialEpochs ?? 8) : (o.fineTuneEpochs ?? 2));
        o.onFit?.({ step: b, loss: fit.loss, windows: fit.windows, ms: fit.ms });
        first = false;
        const end = Math.min(b + refitEvery, maxLen);
        await appendUpTo(end);
        const items: Array<{ id: string; end: number; series: number }> = [];
        series.forEach((s, i) => {
          for (let t = b; t < Math.min(end, s.values.length); t++)
            items.push({ id: String(i), end: t, series: i });
        });
        const pred = await worker.predict(items.map(({ id, end: e }) => ({ id, end: e })));
        const per = spec.targets * H * 2;
        items.forEach((it, k) => {
          for (let h = 1; h <= H; h++)
            out[it.series]![it.end * H + h - 1] = pred[k * per + outIndex(spec, 0, h, 0)]!;
        });
      }
    } finally {
      await worker.close();
    }
    return out;
  }
}
