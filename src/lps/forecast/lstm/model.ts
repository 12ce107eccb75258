import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import type { Tf } from './tf.js';

/**
 * Shape of the shared model. Each series is a sequence of rows of `features`
 * numbers: first the `targets` forecast metrics, then time-of-day sin and cos.
 * The model reads `window` rows and outputs, per target and horizon 1..H, the
 * median and the upper quantile of the change from the window's anchor (an EWMA), in
 * units of the series' standard deviation (per-series normalisation), so one
 * model serves endpoints of any scale.
 */
export interface LstmSpec {
  window: number;
  /** Forecast metrics per row (the first columns). */
  targets: number;
  /** Row width: targets + 2 time-of-day features. */
  features: number;
  horizon: number;
  units: number;
  upperQuantile: number;
  learningRate: number;
  seed: number;
}

export const specKey = (s: LstmSpec): string =>
  `w${s.window}-t${s.targets}-f${s.features}-h${s.horizon}-u${s.units}-q${s.upperQuantile}`;

/** Output index of target j, horizon h (1-based), quantile k (0 median, 1 upper). */
export const outIndex = (s: LstmSpec, j: number, h: number, k: number): number =>
  (j * s.horizon + (h - 1)) * 2 + k;

export function buildModel(tf: Tf, spec: LstmSpec): LayersModel {
  const model = tf.sequential();
  model.add(
    tf.layers.lstm({
      units: spec.units,
      inputShape: [spec.window, spec.features],
      kernelInitializer: tf.initializers.glorotUniform({ seed: spec.seed }),
      recurrentInitializer: tf.initializers.glorotUniform({ seed: spec.seed + 1 }),
    }),
  );
  model.add(
    tf.layers.dense({
      units: spec.targets * spec.horizon * 2,
      // Start at "no change" (the last-value forecast) and learn corrections from there.
      kernelInitializer: tf.initializers.zeros(),
    }),
  );
  compile(tf, model, spec);
  return model;
}

/** Pinball (quantile) loss: the median outputs at q = 0.5, the upper ones at `upperQuantile`. */
export function compile(tf: Tf, model: LayersModel, spec: LstmSpec): void {
  const n = spec.targets * spec.horizon * 2;
  const q = Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 0.5 : spec.upperQuantile));
  const loss = (yTrue: Tensor, yPred: Tensor): Tensor =>
    tf.tidy(() => {
      const qs = tf.tensor1d(q);
      const e = tf.sub(yTrue, yPred);
      return tf.mean(tf.maximum(tf.mul(qs, e), tf.mul(tf.sub(qs, 1), e)));
    });
  model.compile({ optimizer: tf.train.adam(spec.learningRate), loss });
}

/** Per-series, per-target mean and standard deviation, frozen between refreshes. */
export interface Normaliser {
  mean: number[];
  std: number[];
}

/** Mean and std of each target column over `rows` rows (NaN skipped), with a floor on std. */
export function computeNormaliser(data: Float32Array, rows: number, spec: LstmSpec): Normaliser {
  const mean: number[] = [];
  const std: number[] = [];
  for (let j = 0; j < spec.targets; j++) {
    let n = 0;
    let sum = 0;
    let sq = 0;
    for (let r = 0; r < rows; r++) {
      const v = data[r * spec.features + j]!;
      if (!Number.isFinite(v)) continue;
      n++;
      sum += v;
      sq += v * v;
    }
    const m = n ? sum / n : 0;
    const variance = n ? Math.max(0, sq / n - m * m) : 0;
    mean.push(m);
    std.push(Math.max(Math.sqrt(variance), 1e-3 * Math.abs(m), 1e-6));
  }
  return { mean, std };
}

/**
 * Writes the normalised window ending at row `end` (inclusive) into `out` at
 * `offset`. Missing values become 0 (the series mean).
 */
export function writeWindow(
  data: Float32Array,
  end: number,
  norm: Normaliser,
  spec: LstmSpec,
  out: Float32Array,
  offset: number,
): void {
  const F = spec.features;
  for (let r = 0; r < spec.window; r++) {
    const src = (end - spec.window + 1 + r) * F;
    const dst = offset + r * F;
    for (let j = 0; j < F; j++) {
      const v = data[src + j]!;
      const z = j < spec.targets ? (v - norm.mean[j]!) / norm.std[j]! : v;
      out[dst + j] = Number.isFinite(z) ? z : 0;
    }
  }
}

/** Smoothing of the anchor, as the EWMA baseline's default. */
export const ANCHOR_ALPHA = 0.4;

/**
 * The level the model's outputs are relative to: an EWMA of target j over the
 * window ending at row `end` (missing values skipped). With the output layer
 * initialised to zero the untrained model *is* the EWMA forecast, and training
 * learns corrections to it: the exponential-smoothing + RNN hybrid of Smyl's
 * ES-RNN (M4 winner), which on noisy server load starts from the baseline that
 * is hardest to beat instead of from the last value.
 */
export function anchor(data: Float32Array, end: number, j: number, spec: LstmSpec): number {
  let level = NaN;
  for (let r = end - spec.window + 1; r <= end; r++) {
    if (r < 0) continue;
    const v = data[r * spec.features + j]!;
    if (!Number.isFinite(v)) continue;
    level = Number.isNaN(level) ? v : level + ANCHOR_ALPHA * (v - level);
  }
  return level;
}
