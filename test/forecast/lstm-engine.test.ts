import { describe, expect, test } from 'vitest';
import { LstmEngine, rowShare } from '../../src/lps/forecast/lstm/engine.js';
import { loadTf } from '../../src/lps/forecast/lstm/tf.js';
import { engine as options, rows, spec } from './lstm-support.js';

const ROW_BYTES = spec.features * 4;

/** Series ids[i] gets `rows(n, i)`, all in one append (as the worker's message carries them). */
function appendAll(engine: LstmEngine, ids: string[], n: number): void {
  const per = n * spec.features;
  const all = new Float32Array(ids.length * per);
  ids.forEach((_, i) => all.set(rows(n, i), i * per));
  engine.appendMany(
    ids,
    ids.map((_, i) => (i + 1) * per),
    all,
  );
}

describe('LstmEngine history', () => {
  test('a fleet arriving a batch at a time stays within the row budget, each series at its share', async () => {
    const { tf } = await loadTf();
    const budget = { maxRows: 720, maxTotalRows: 10_000 };
    const engine = new LstmEngine(tf, spec, { ...options, ...budget });
    for (let batch = 0; batch < 10; batch++) {
      const ids = Array.from({ length: 15 }, (_, i) => `s${batch * 15 + i}`);
      appendAll(engine, ids, 209);
      const share = rowShare(budget, spec, (batch + 1) * 15);
      expect(engine.rowCap()).toBe(share);
      for (const id of ['s0', ids[14]!]) expect(engine.rowsOf(id)).toBe(Math.min(209, share));
      expect(engine.historyBytes()).toBeLessThanOrEqual(budget.maxTotalRows * ROW_BYTES);
    }
    // 150 series: 66 rows each, in a buffer of the budget's size.
    expect(engine.rowsOf('s149')).toBe(66);
    expect(engine.historyBytes()).toBeGreaterThanOrEqual(150 * 66 * ROW_BYTES);
  });

  test('a forecast does not change when other series arrive and leave and the history is laid out again', async () => {
    const { tf } = await loadTf();
    const engine = new LstmEngine(tf, spec, { ...options, maxRows: 300, maxTotalRows: 3000 });
    appendAll(engine, ['a', 'b'], 250);
    await engine.fit(1);
    const before = await engine.predict([{ id: 'a' }, { id: 'b' }]);
    expect(Array.from(before).every(Number.isFinite)).toBe(true);
    // 60 series: 50 rows each, every series moved to a slot of its own, in place.
    appendAll(
      engine,
      Array.from({ length: 58 }, (_, i) => `x${i}`),
      40,
    );
    expect(engine.rowsOf('a')).toBe(50);
    expect(await engine.predict([{ id: 'a' }, { id: 'b' }])).toEqual(before);
    // `a` leaves: `b` moves to the first slot, into a new buffer as the share grows.
    engine.forget(['a', ...Array.from({ length: 50 }, (_, i) => `x${i}`)]);
    expect(engine.rowsOf('a')).toBe(0);
    expect(engine.rowsOf('b')).toBe(50);
    const [, b] = [before.subarray(0, before.length / 2), before.subarray(before.length / 2)];
    expect(await engine.predict([{ id: 'b' }])).toEqual(b);
  });
});
