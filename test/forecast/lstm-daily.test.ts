import { describe, expect, test } from 'vitest';
import { evaluate } from '../../src/lps/forecast/evaluate.js';
import { LstmWalkForward } from '../../src/lps/forecast/lstm/walk-forward.js';

describe('LSTM on a known series', () => {
  test('on a daily cycle the LSTM learns the shape and beats the flat baselines at h=3', async () => {
    // 24 samples a day for 25 days, a little deterministic noise.
    const values = Array.from(
      { length: 600 },
      (_, i) => 0.5 + 0.3 * Math.sin((2 * Math.PI * i) / 24) + (((i * 7919) % 11) - 5) / 500,
    );
    const timestamps = values.map((_, i) => 1.7e12 + i * 3_600_000);
    const report = await evaluate([{ name: 'daily', values, timestamps }], {
      horizons: [1, 3],
      batch: [
        new LstmWalkForward({
          window: 12,
          units: 8,
          firstFit: 300,
          refitEvery: 100,
          initialEpochs: 8,
          fineTuneEpochs: 2,
          maxTrainWindows: 512,
          batchSize: 32,
        }),
      ],
    });
    const at = (f: string, h: number) =>
      report.series[0]!.scores.find((x) => x.forecaster === f && x.horizon === h)!.mae;
    expect(at('lstm', 3)).toBeLessThan(at('ewma', 3));
    expect(at('lstm', 3)).toBeLessThan(at('last', 3));
  }, 240_000);
});
