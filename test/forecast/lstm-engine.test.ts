import { describe, expect, test } from 'vitest';
import { LstmEngine } from '../../src/lps/forecast/lstm/engine.js';
import { loadTf } from '../../src/lps/forecast/lstm/tf.js';
import { engine as options, rows, spec } from './lstm-support.js';

const ROW_BYTES = spec.features * 4;

describe('LstmEngine history', () => {
  test('a backfill below the cap takes what it holds plus an eighth, not twice that', async () => {
    const { tf } = await loadTf();
    const engine = new LstmEngine(tf, spec, { ...options, maxRows: 720 });
    // As an endpoint's first rows arrive: its whole history at once, under the series' cap.
    for (let i = 0; i < 10; i++) engine.append(`s${i}`, rows(209, i));
    expect(engine.rowsOf('s0')).toBe(209);
    const held = engine.historyBytes() / ROW_BYTES / 10;
    expect(held).toBeGreaterThanOrEqual(209);
    expect(held).toBeLessThanOrEqual(Math.floor(209 * 1.125));
  });

  test('rows arriving one at a time grow the buffer by an eighth at most, up to the cap', async () => {
    const { tf } = await loadTf();
    const engine = new LstmEngine(tf, spec, { ...options, maxRows: 300 });
    for (let n = 1; n <= 400; n++) {
      engine.append('s', rows(1, n));
      const rowsHeld = Math.min(n, 300);
      expect(engine.rowsOf('s')).toBe(rowsHeld);
      const capacity = engine.historyBytes() / ROW_BYTES;
      expect(capacity).toBeGreaterThanOrEqual(rowsHeld);
      expect(capacity).toBeLessThanOrEqual(Math.max(64, Math.min(300, rowsHeld * 1.125 + 1)));
    }
    // At its cap, the buffer is the cap exactly.
    expect(engine.historyBytes()).toBe(300 * ROW_BYTES);
  });
});
