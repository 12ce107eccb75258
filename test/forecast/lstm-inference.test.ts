import { describe, expect, test } from 'vitest';
import { mulberry32 } from '../../src/lps/forecast/random.js';
import {
  fastTanh,
  buildModel,
  LstmInference,
  readWeights,
  type LstmSpec,
} from '../../src/lps/forecast/lstm/model.js';
import { loadTf } from '../../src/lps/forecast/lstm/tf.js';
import { spec as tiny } from './lstm-support.js';

/** The production shape: window 8, 5 targets + time of day, 5 horizons, 8 units. */
const production: LstmSpec = { ...tiny, window: 8, targets: 5, features: 7, horizon: 5, units: 8 };

describe('LstmInference', () => {
  for (const [name, spec] of [
    ['a tiny model', tiny],
    ['the production shape', production],
  ] as const) {
    test(`computes what TensorFlow.js's model.predict computes, for ${name}`, async () => {
      const { tf } = await loadTf();
      const model = buildModel(tf, spec);
      // Random weights everywhere (the dense kernel starts at zero), large enough that gates
      // saturate: every branch of hardSigmoid and tanh is taken.
      const random = mulberry32(11);
      model.setWeights(
        model.getWeights().map((w) =>
          tf.tensor(
            Float32Array.from({ length: w.size }, () => 2 * random() - 1),
            w.shape,
          ),
        ),
      );
      const n = 64;
      const per = spec.window * spec.features;
      const x = Float32Array.from({ length: n * per }, (_, i) =>
        i % 5 === 0 ? 0 : 6 * random() - 3,
      );
      const input = tf.tensor3d(x, [n, spec.window, spec.features]);
      const predicted = model.predict(input) as ReturnType<typeof tf.tensor2d>;
      const want = predicted.dataSync() as Float32Array;
      tf.dispose([input, predicted]);

      const outputs = spec.targets * spec.horizon * 2;
      const got = new Float32Array(n * outputs);
      const inference = new LstmInference(readWeights(model, spec), spec);
      for (let k = 0; k < n; k++) inference.run(x, k * per, got, k * outputs);
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
      expect(worst).toBeLessThan(1e-4);
      expect(want.some((v) => Math.abs(v) > 0.5)).toBe(true); // not a trivial model
      model.dispose();
    });
  }

  test('refuses a model of another shape, naming the shapes', async () => {
    const { tf } = await loadTf();
    const model = buildModel(tf, tiny);
    expect(() => readWeights(model, production)).toThrow(/weights have shapes .* expected/);
    model.dispose();
  });
});

describe('fastTanh', () => {
  test('is within 3e-8 of Math.tanh everywhere, and keeps NaN and the infinities', () => {
    let worst = 0;
    for (let x = -12; x <= 12; x += 1 / 4099)
      worst = Math.max(worst, Math.abs(fastTanh(x) - Math.tanh(x)));
    for (const x of [-9, -8.999, 0, 1e-9, -1e-9, 8.999, 9, 1e6, -1e6])
      worst = Math.max(worst, Math.abs(fastTanh(x) - Math.tanh(x)));
    expect(worst).toBeLessThan(3.1e-8);
    expect(fastTanh(0)).toBe(0);
    expect(fastTanh(Infinity)).toBe(1);
    expect(fastTanh(-Infinity)).toBe(-1);
    expect(fastTanh(NaN)).toBeNaN();
  });
});
