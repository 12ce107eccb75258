import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { timeOfDay, writeTimeOfDay } from '../../src/lps/forecast/lstm/features.js';

describe('time of day features', () => {
  test('writeTimeOfDay writes what timeOfDay returns, as Float32, and 0, 0 when unknown', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.double({ min: -1e13, max: 4e12, noNaN: true }),
          fc.constantFrom(NaN, Infinity, -Infinity, 0, 86_400_000 - 1),
        ),
        fc.nat({ max: 6 }),
        (ms, at) => {
          const out = new Float32Array(8).fill(7);
          writeTimeOfDay(ms, out, at);
          const [sin, cos] = timeOfDay(ms);
          expect([out[at], out[at + 1]]).toEqual([Math.fround(sin), Math.fround(cos)]);
          // Nothing else is written.
          out.forEach((v, i) => i !== at && i !== at + 1 && expect(v).toBe(7));
        },
      ),
    );
    // 06:00 is a quarter of the way round; 23:59:59.999 is next to midnight.
    expect(timeOfDay(6 * 3_600_000)[0]).toBeCloseTo(1, 12);
    expect(timeOfDay(86_400_000 - 1)[1]).toBeCloseTo(1, 9);
  });
});
