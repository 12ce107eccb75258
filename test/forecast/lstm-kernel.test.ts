import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { KERNEL_BATCH, kernelAvailable, LstmKernel } from '../../src/lps/forecast/lstm/kernel.js';
import { LstmEngine } from '../../src/lps/forecast/lstm/engine.js';
import {
  buildModel,
  LstmInference,
  readWeights,
  type LstmSpec,
} from '../../src/lps/forecast/lstm/model.js';
import { loadTf } from '../../src/lps/forecast/lstm/tf.js';
import { mulberry32 } from '../../src/lps/forecast/random.js';
import { spec as tiny } from './lstm-support.js';

/*
 * The LSTM's WebAssembly SIMD kernel (kernel.wat) against TensorFlow.js's model.predict and the
 * plain-JS forward pass, and kernel-wasm.ts against what kernel.wat builds to.
 */

const production: LstmSpec = { ...tiny, window: 8, targets: 5, features: 7, horizon: 5, units: 8 };

/** A model of `spec` with random weights large enough that every gate saturates sometimes. */
async function randomModel(spec: LstmSpec, seed: number) {
  const { tf } = await loadTf();
  const model = buildModel(tf, spec);
  const random = mulberry32(seed);
  model.setWeights(
    model.getWeights().map((w) =>
      tf.tensor(
        Float32Array.from({ length: w.size }, () => 2 * random() - 1),
        w.shape,
      ),
    ),
  );
  return { tf, model, random };
}

describe('LstmKernel', () => {
  test('runs here (Node has WebAssembly SIMD)', () => {
    expect(kernelAvailable()).toBe(true);
  });

  for (const [name, spec] of [
    ['the production shape (8 units)', production],
    ['a tiny model (4 units)', tiny],
    ['12 units (three passes of sixteen gates)', { ...production, units: 12 }],
  ] as const) {
    test(`computes what model.predict and LstmInference compute, for ${name}`, async () => {
      const { tf, model, random } = await randomModel(spec, 23);
      // More windows than one run takes, so the batches' seams are crossed.
      const n = KERNEL_BATCH + 44;
      const per = spec.window * spec.features;
      const x = Float32Array.from({ length: n * per }, (_, i) =>
        i % 5 === 0 ? 0 : 6 * random() - 3,
      );
      const input = tf.tensor3d(x, [n, spec.window, spec.features]);
      const predicted = model.predict(input) as ReturnType<typeof tf.tensor2d>;
      const want = predicted.dataSync() as Float32Array;
      tf.dispose([input, predicted]);

      const outputs = spec.targets * spec.horizon * 2;
      const weights = readWeights(model, spec);
      const kernel = LstmKernel.create(spec, weights)!;
      const js = new LstmInference(weights, spec);
      const viaJs = new Float32Array(outputs);
      let worstTf = 0;
      let worstJs = 0;
      for (let from = 0; from < n; from += KERNEL_BATCH) {
        const count = Math.min(KERNEL_BATCH, n - from);
        kernel.input.set(x.subarray(from * per, (from + count) * per));
        kernel.run(count);
        for (let b = 0; b < count; b++) {
          js.run(x, (from + b) * per, viaJs, 0);
          for (let j = 0; j < outputs; j++) {
            const got = kernel.output[b * kernel.stride + j]!;
            worstTf = Math.max(worstTf, Math.abs(got - want[(from + b) * outputs + j]!));
            worstJs = Math.max(worstJs, Math.abs(got - viaJs[j]!));
          }
        }
      }
      expect(worstTf).toBeLessThan(1e-4);
      expect(worstJs).toBeLessThan(1e-5);
      expect(want.some((v) => Math.abs(v) > 0.5)).toBe(true); // not a trivial model
      model.dispose();
    });
  }

  test('is not offered for units that are not a multiple of 4, and takes a batch at most', async () => {
    const { model } = await randomModel({ ...production, units: 6 }, 5);
    expect(
      LstmKernel.create(
        { ...production, units: 6 },
        readWeights(model, { ...production, units: 6 }),
      ),
    ).toBeUndefined();
    model.dispose();
    const { model: m8 } = await randomModel(production, 5);
    const kernel = LstmKernel.create(production, readWeights(m8, production))!;
    expect(() => kernel.run(KERNEL_BATCH + 1)).toThrow(RangeError);
    m8.dispose();
  });

  test('gives the engine the same forecasts as the plain-JS pass, for every series of a batch', async () => {
    const { tf } = await loadTf();
    const engine = new LstmEngine(tf, tiny, { maxRows: 200, maxTrainWindows: 64, batchSize: 32 });
    const random = mulberry32(3);
    const ids = Array.from({ length: KERNEL_BATCH + 10 }, (_, i) => `s${i}`);
    for (const id of ids)
      engine.append(
        id,
        Float32Array.from({ length: 40 * tiny.features }, (_, i) =>
          i % tiny.features === 0 ? 0.5 + 0.3 * Math.sin(i / 9) + 0.1 * random() : 0,
        ),
      );
    await engine.fit(1);
    const got = await engine.predict(ids.map((id) => ({ id })));
    // The same windows through LstmInference, from the engine's saved state (weights and norms).
    const saved = await engine.export();
    const other = new LstmEngine(tf, tiny, {
      maxRows: 200,
      maxTrainWindows: 64,
      batchSize: 32,
      kernel: false,
    });
    await other.import(saved);
    const want = await other.predict(ids.map((id) => ({ id })));
    expect(got.length).toBe(want.length);
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
    expect(worst).toBeLessThan(1e-5);
    expect(got.every(Number.isFinite)).toBe(true);
  });
});

describe('kernel-wasm.ts', () => {
  test('is what kernel.wat builds to (npm run kernel:build)', () => {
    const out = execFileSync(
      process.execPath,
      [join(import.meta.dirname, '../../scripts/build-lstm-kernel.mjs'), '--check'],
      { encoding: 'utf8' },
    );
    expect(out).toMatch(/matches/);
  });
});
