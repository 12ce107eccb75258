import type { LstmSpec } from '../../src/lps/forecast/lstm/model.js';

// A tiny model: these tests check plumbing and guarantees, not accuracy (that is the benchmark's job).
export const spec: LstmSpec = {
  window: 6,
  targets: 1,
  features: 3,
  horizon: 3,
  units: 4,
  upperQuantile: 0.9,
  learningRate: 0.01,
  seed: 7,
};
export const engine = { maxRows: 2000, maxTrainWindows: 256, batchSize: 32 };

/** n rows of a noisy cycle (value, 0, 0). */
export function rows(n: number, phase = 0): Float32Array {
  const r = new Float32Array(n * 3);
  for (let i = 0; i < n; i++)
    r[i * 3] = 0.5 + 0.3 * Math.sin((i + phase) / 5) + ((i * 7919) % 11) / 200;
  return r;
}
