import { describe, expect, test } from 'vitest';
import { nextFit, type ScheduleState } from '../../src/lps/forecast/lstm/online.js';

const c = { minHistory: 100, initialEpochs: 12, fineTuneEpochs: 2, fineTuneEvery: 300 };
const base: ScheduleState = {
  fitted: false,
  fitting: false,
  ticksSinceFit: 0,
  ticksSinceRetrain: Infinity,
  longestHistory: 0,
  drift: false,
};

describe('LSTM training schedule', () => {
  test('first fit only once some endpoint has enough history', () => {
    expect(nextFit({ ...base, longestHistory: 99 }, c)).toBeUndefined();
    expect(nextFit({ ...base, longestHistory: 100 }, c)).toEqual({
      epochs: 12,
      reset: false,
      why: 'initial fit',
    });
  });

  test('fine-tunes every fineTuneEvery ticks, never while a fit runs', () => {
    const fitted = { ...base, fitted: true, longestHistory: 500 };
    expect(nextFit({ ...fitted, ticksSinceFit: 299 }, c)).toBeUndefined();
    expect(nextFit({ ...fitted, ticksSinceFit: 300 }, c)).toEqual({
      epochs: 2,
      reset: false,
      why: 'fine-tune',
    });
    expect(nextFit({ ...fitted, ticksSinceFit: 300, fitting: true }, c)).toBeUndefined();
  });

  test('retrains from fresh weights on drift, at most once per fineTuneEvery ticks', () => {
    const fitted = { ...base, fitted: true, longestHistory: 500, drift: true, ticksSinceFit: 10 };
    expect(nextFit({ ...fitted, ticksSinceRetrain: Infinity }, c)).toEqual({
      epochs: 12,
      reset: true,
      why: 'retrain on drift',
    });
    expect(nextFit({ ...fitted, ticksSinceRetrain: 50 }, c)).toBeUndefined();
  });
});
