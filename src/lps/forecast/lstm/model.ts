import type { Tensor } from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
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

/**
 * Per-series, per-target statistics, frozen between refreshes: the mean (kept for
 * operators and persistence) and the scale (`std`, named for the saved format:
 * it holds the mean absolute one-step change) every input and output is divided by.
 */
export interface Normaliser {
  mean: number[];
  std: number[];
}

/**
 * Per target column of the `rows` rows at `base` in `data`: the mean, and as the scale the mean
 * absolute one-step change (the MASE scale) rather than the standard deviation: on series with
 * rare large spikes the standard deviation is dominated by the spikes, and corrections learnt
 * on other series, multiplied by it, become far too large. NaN are skipped; the scale has a
 * floor so a flat series does not divide by 0. Written to `out` from `at`: the targets' means,
 * then their scales.
 */
export function computeNormaliser(
  data: Float32Array,
  base: number,
  rows: number,
  spec: LstmSpec,
  out: Float64Array,
  at: number,
): void {
  const T = spec.targets;
  for (let j = 0; j < T; j++) {
    let n = 0;
    let sum = 0;
    let diffs = 0;
    let diffSum = 0;
    let prev = NaN;
    for (let r = 0; r < rows; r++) {
      const v = data[base + r * spec.features + j]!;
      if (!Number.isFinite(v)) continue;
      n++;
      sum += v;
      if (Number.isFinite(prev)) {
        diffSum += Math.abs(v - prev);
        diffs++;
      }
      prev = v;
    }
    const m = n ? sum / n : 0;
    const scale = diffs ? diffSum / diffs : 0;
    out[at + j] = m;
    out[at + T + j] = Math.max(scale, 1e-3 * Math.abs(m), 1e-6);
  }
}

/** Inputs beyond this many scales from the mean are clipped (spikes would saturate the cell). */
const INPUT_CLIP = 10;

/**
 * Writes the normalised window ending at row `end` (inclusive) of the rows at `base` in `data`
 * into `out` at `offset`: each target as (value - anchor) / scale, clipped; time of day as is.
 * Target j's scale is `scales[scaleAt + j]`. Missing values become 0 (the anchor). Each
 * target's anchor is left in `centre` from `centreAt` (spec.targets long), which the outputs
 * are relative to as well.
 */
export function writeWindow(
  data: Float32Array,
  base: number,
  end: number,
  scales: Float64Array,
  scaleAt: number,
  spec: LstmSpec,
  out: Float32Array,
  offset: number,
  centre: Float64Array,
  centreAt = 0,
): void {
  const F = spec.features;
  // Inputs are relative to the window's own anchor, not to the series mean: a level
  // that drifted far from the history it was normalised on would otherwise clip.
  for (let j = 0; j < spec.targets; j++) centre[centreAt + j] = anchor(data, base, end, j, spec);
  for (let r = 0; r < spec.window; r++) {
    const src = base + (end - spec.window + 1 + r) * F;
    const dst = offset + r * F;
    for (let j = 0; j < F; j++) {
      const v = data[src + j]!;
      const z = j < spec.targets ? (v - centre[centreAt + j]!) / scales[scaleAt + j]! : v;
      out[dst + j] = Number.isFinite(z) ? Math.max(-INPUT_CLIP, Math.min(INPUT_CLIP, z)) : 0;
    }
  }
}

/** Smoothing of the anchor, as the EWMA baseline's default. */
export const ANCHOR_ALPHA = 0.4;

/**
 * The level the model's outputs are relative to: an EWMA of target j over the
 * window ending at row `end` of the rows at `base` (missing values skipped). With the output
 * layer initialised to zero the untrained model *is* the EWMA forecast, and training
 * learns corrections to it: the exponential-smoothing + RNN hybrid of Smyl's
 * ES-RNN (M4 winner), which on noisy server load starts from the baseline that
 * is hardest to beat instead of from the last value.
 */
export function anchor(
  data: Float32Array,
  base: number,
  end: number,
  j: number,
  spec: LstmSpec,
): number {
  let level = NaN;
  for (let r = end - spec.window + 1; r <= end; r++) {
    if (r < 0) continue;
    const v = data[base + r * spec.features + j]!;
    if (!Number.isFinite(v)) continue;
    level = Number.isNaN(level) ? v : level + ANCHOR_ALPHA * (v - level);
  }
  return level;
}

/** The trained model's weights, copied out of TensorFlow.js for LstmInference. */
export interface LstmWeights {
  /** LSTM kernel, features × 4·units (gates i, f, c, o), row-major. */
  kernel: Float32Array;
  /** LSTM recurrent kernel, units × 4·units. */
  recurrent: Float32Array;
  /** LSTM bias, 4·units. */
  bias: Float32Array;
  /** Dense kernel, units × outputs. */
  dense: Float32Array;
  /** Dense bias, outputs. */
  denseBias: Float32Array;
}

/** Copies the weights of a model buildModel made (or one restored from it), checking shapes. */
export function readWeights(model: LayersModel, spec: LstmSpec): LstmWeights {
  const { features: F, units: U } = spec;
  const O = spec.targets * spec.horizon * 2;
  const [lstm, dense] = model.layers;
  const lw = lstm?.getWeights() ?? [];
  const dw = dense?.getWeights() ?? [];
  const want = [[F, 4 * U], [U, 4 * U], [4 * U], [U, O], [O]];
  const all = [...lw, ...dw];
  if (all.length !== want.length || all.some((t, i) => t.shape.join() !== want[i]!.join()))
    throw new Error(
      `LSTM model weights have shapes ${all.map((t) => `[${t.shape.join(',')}]`).join(' ')}, expected ${want.map((s) => `[${s.join(',')}]`).join(' ')}`,
    );
  const [kernel, recurrent, bias, denseKernel, denseBias] = all.map(
    (t) => new Float32Array(t.dataSync() as Float32Array),
  );
  return {
    kernel: kernel!,
    recurrent: recurrent!,
    bias: bias!,
    dense: denseKernel!,
    denseBias: denseBias!,
  };
}

/** tanh is tabulated on [-TANH_RANGE, TANH_RANGE] every 1/TANH_STEPS; past it, ±1 (off by 3e-8). */
export const TANH_RANGE = 9;
export const TANH_STEPS = 32;
/** Pairs: tanh at each point, and its derivative (1 − tanh²) times the step. */
const TANH_TABLE = new Float64Array(2 * (2 * TANH_RANGE * TANH_STEPS + 2));
for (let i = 0; 2 * i < TANH_TABLE.length; i++) {
  const y = Math.tanh(-TANH_RANGE + i / TANH_STEPS);
  TANH_TABLE[2 * i] = y;
  TANH_TABLE[2 * i + 1] = (1 - y * y) / TANH_STEPS;
}

/**
 * tanh within 3e-8 of Math.tanh (below float32's resolution, which TensorFlow.js computes in), at
 * a few multiplications: cubic Hermite interpolation of a table. Math.tanh is a call into C that
 * cost 33 ns here, 40 % of the LSTM's inference (128 calls per window).
 */
export function fastTanh(x: number): number {
  if (!(x > -TANH_RANGE)) return x === x ? -1 : x;
  if (x >= TANH_RANGE) return 1;
  const p = (x + TANH_RANGE) * TANH_STEPS;
  const k = p | 0;
  const s = p - k;
  const i = 2 * k;
  const y0 = TANH_TABLE[i]!;
  const d0 = TANH_TABLE[i + 1]!;
  const y1 = TANH_TABLE[i + 2]!;
  const d1 = TANH_TABLE[i + 3]!;
  const s2 = s * s;
  const s3 = s2 * s;
  return (
    (2 * s3 - 3 * s2 + 1) * y0 + (s3 - 2 * s2 + s) * d0 + (3 * s2 - 2 * s3) * y1 + (s3 - s2) * d1
  );
}

/** tfjs-layers' `hardSigmoid`, the LSTM's default recurrent activation. */
function hardSigmoid(x: number): number {
  const y = 0.2 * x + 0.5;
  return y <= 0 ? 0 : y >= 1 ? 1 : y;
}

/**
 * The model's forward pass in plain JavaScript, one window at a time: what `model.predict`
 * computes (tfjs-layers' LSTM: gates i, f, c, o; hardSigmoid and tanh; zero initial state; then
 * the dense layer), without TensorFlow.js's per-call overhead or the WebAssembly memory its
 * tensors grow. For a model this small (8 units) that overhead was most of the inference time.
 */
export class LstmInference {
  private readonly h: Float64Array;
  private readonly c: Float64Array;
  private readonly z: Float64Array;
  private readonly y: Float64Array;
  private readonly outputs: number;

  constructor(
    private readonly weights: LstmWeights,
    private readonly spec: LstmSpec,
  ) {
    this.h = new Float64Array(spec.units);
    this.c = new Float64Array(spec.units);
    this.z = new Float64Array(4 * spec.units);
    this.outputs = spec.targets * spec.horizon * 2;
    this.y = new Float64Array(this.outputs);
  }

  /** The outputs for the window at `x[xo..]` (window × features), written to `out[oo..]`. */
  run(x: Float32Array, xo: number, out: Float32Array, oo: number): void {
    const { window: W, features: F, units: U } = this.spec;
    const G = 4 * U;
    const { kernel, recurrent, bias, dense, denseBias } = this.weights;
    const { h, c, z, y } = this;
    h.fill(0);
    c.fill(0);
    for (let t = 0; t < W; t++) {
      const at = xo + t * F;
      // Four gates at a time, each with an accumulator of its own: one accumulator per dot
      // product waits on its own additions (2.3 ns a multiply-add here), four do not (0.6).
      for (let g = 0; g < G; g += 4) {
        let a0 = bias[g]!;
        let a1 = bias[g + 1]!;
        let a2 = bias[g + 2]!;
        let a3 = bias[g + 3]!;
        for (let f = 0; f < F; f++) {
          const v = x[at + f]!;
          const k = f * G + g;
          a0 += v * kernel[k]!;
          a1 += v * kernel[k + 1]!;
          a2 += v * kernel[k + 2]!;
          a3 += v * kernel[k + 3]!;
        }
        for (let u = 0; u < U; u++) {
          const v = h[u]!;
          const k = u * G + g;
          a0 += v * recurrent[k]!;
          a1 += v * recurrent[k + 1]!;
          a2 += v * recurrent[k + 2]!;
          a3 += v * recurrent[k + 3]!;
        }
        z[g] = a0;
        z[g + 1] = a1;
        z[g + 2] = a2;
        z[g + 3] = a3;
      }
      for (let u = 0; u < U; u++) {
        const i = hardSigmoid(z[u]!);
        const f = hardSigmoid(z[U + u]!);
        const o = hardSigmoid(z[3 * U + u]!);
        c[u] = f * c[u]! + i * fastTanh(z[2 * U + u]!);
        h[u] = o * fastTanh(c[u]!);
      }
    }
    const O = this.outputs;
    y.set(denseBias);
    for (let u = 0; u < U; u++) {
      const v = h[u]!;
      const k = u * O;
      for (let j = 0; j < O; j++) y[j] = y[j]! + v * dense[k + j]!;
    }
    for (let j = 0; j < O; j++) out[oo + j] = y[j]!;
  }
}
