import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { rowShare } from '../../src/lps/forecast/lstm/engine.js';
import { SeriesHistory } from '../../src/lps/forecast/lstm/history.js';

const F = 3;
const T = 2;
const spec = { window: 3, horizon: 2 };

/** One step: rows for some series (new or held), or some series dropped. */
type Step =
  { op: 'append'; series: Array<{ id: number; rows: number }> } | { op: 'remove'; ids: number[] };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('append' as const),
      series: fc.array(
        fc.record({ id: fc.nat({ max: 40 }), rows: fc.oneof(fc.nat({ max: 3 }), fc.nat(90)) }),
        { minLength: 1, maxLength: 25 },
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('remove' as const),
      ids: fc.array(fc.nat({ max: 40 }), { maxLength: 8 }),
    }),
  },
);

describe('SeriesHistory', () => {
  test('every series keeps its newest rows and its normaliser through every re-layout, in one buffer of the budget', () => {
    fc.assert(
      fc.property(
        fc.record({
          maxRows: fc.integer({ min: 10, max: 80 }),
          budget: fc.integer({ min: 0, max: 900 }),
        }),
        fc.array(step, { minLength: 1, maxLength: 30 }),
        ({ maxRows, budget }, steps) => {
          const options = { maxRows, maxTotalRows: budget > 0 ? budget : undefined };
          const share = (n: number): number => rowShare(options, spec, n);
          const h = new SeriesHistory(F, T, share, options.maxTotalRows);
          // The reference: the rows each series holds, oldest first, and its normaliser.
          const given = new Map<string, number[]>();
          const norms = new Map<string, number[]>();
          let next = 1;
          // The first rows' buffer, and whether the floor of the share has bound so far.
          let first: ArrayBufferLike | undefined;
          let floorBound = false;
          for (const s of steps) {
            if (s.op === 'remove') {
              const ids = s.ids.map((i) => `s${i}`);
              h.remove(ids);
              for (const id of ids) given.delete(id);
            } else {
              const ids = s.series.map((x) => `s${x.id}`);
              h.add(ids);
              for (const id of ids) {
                if (given.has(id)) continue;
                given.set(id, []);
                // A normaliser of its own, so one read from another slot shows.
                const norm = Array.from({ length: 2 * T }, () => next++);
                norms.set(id, norm);
                const slot = h.slotOf(id)!;
                expect(h.hasNorm(slot)).toBe(false);
                h.norms.set(norm, h.normAt(slot));
              }
              s.series.forEach((x, k) => {
                const rows = new Float32Array(x.rows * F);
                for (let r = 0; r < rows.length; r++) rows[r] = next++;
                h.append(h.slotOf(ids[k]!)!, rows);
                given.get(ids[k]!)!.push(...rows);
              });
            }
            expect(h.count).toBe(given.size);
            const stride = share(given.size);
            for (const [id, values] of given) {
              const slot = h.slotOf(id);
              expect(slot).toBeDefined();
              // The newest `stride` rows it was given, every one, in order; rows cut when the
              // share was smaller stay cut.
              const keep = Math.min(values.length / F, stride) * F;
              values.splice(0, values.length - keep);
              expect(h.rows[slot!]).toBe(keep / F);
              const base = h.base(slot!);
              expect(Array.from(h.data.subarray(base, base + keep))).toEqual(values);
              const at = h.normAt(slot!);
              expect(Array.from(h.norms.subarray(at, at + 2 * T))).toEqual(norms.get(id));
            }
            // Slots are 0..count-1 in the order series arrived.
            expect(Array.from(h.entries(), ([, slot]) => slot)).toEqual(
              Array.from({ length: given.size }, (_, i) => i),
            );
            // The rows' buffer: with a budget, the budget, allocated once and kept while every
            // series keeps its share of it; where the floor of the share binds, and without a
            // budget, half as much again as needed (at least 16 slots), twice that at most.
            const rowsRoom = h.bytes / 4 / F;
            const floorBinds = given.size * stride > (options.maxTotalRows ?? Infinity);
            floorBound ||= floorBinds;
            if (h.bytes === 0) {
              // Nothing allocated before the first series.
              expect(given.size).toBe(0);
              expect(first).toBeUndefined();
            } else if (options.maxTotalRows !== undefined && !floorBinds) {
              expect(rowsRoom).toBe(options.maxTotalRows);
              if (!floorBound && given.size > 0)
                expect(h.data.buffer).toBe((first ??= h.data.buffer));
            } else {
              expect(rowsRoom).toBeGreaterThanOrEqual(given.size * stride);
              expect(rowsRoom).toBeLessThanOrEqual(2 * Math.max(16, 1.5 * given.size) * stride);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test('a share that shrinks or grows is laid out in place, in the one buffer of the budget', () => {
    const options = { maxRows: 100, maxTotalRows: 1000 };
    const h = new SeriesHistory(F, T, (n) => rowShare(options, spec, n), options.maxTotalRows);
    h.add(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']);
    expect(h.stride).toBe(100);
    const buffer = h.data.buffer;
    h.add(['k', 'l']);
    expect(h.stride).toBe(83);
    expect(h.data.buffer).toBe(buffer);
    expect(h.bytes).toBe(1000 * F * 4);
    // Series leave: the share grows back, in the same buffer, rows kept.
    h.append(
      h.slotOf('l')!,
      Float32Array.from({ length: 83 * F }, (_, i) => i),
    );
    h.remove(['a', 'b', 'c', 'd', 'e', 'f']);
    expect(h.stride).toBe(100);
    expect(h.data.buffer).toBe(buffer);
    const base = h.base(h.slotOf('l')!);
    expect(h.data[base + 83 * F - 1]).toBe(83 * F - 1);
  });
  test('where the floor of the share binds, the buffer outgrows the budget, is kept while it has room, and comes back to the budget', () => {
    // Floor: 2 × (window + horizon) = 10 rows; a budget of 100 rows holds 10 series at it.
    const options = { maxRows: 50, maxTotalRows: 100 };
    const h = new SeriesHistory(F, T, (n) => rowShare(options, spec, n), options.maxTotalRows);
    const ids = (from: number, to: number): string[] =>
      Array.from({ length: to - from }, (_, i) => `s${from + i}`);
    h.add(ids(0, 12));
    expect(h.stride).toBe(10);
    expect(h.bytes / 4 / F).toBeGreaterThan(100);
    const grown = h.data.buffer;
    h.add(ids(12, 13));
    h.remove(['s12']); // laid out again, still at the floor: the same buffer
    expect(h.stride).toBe(10);
    expect(h.data.buffer).toBe(grown);
    h.remove(ids(4, 13));
    expect(h.stride).toBe(25);
    expect(h.bytes / 4 / F).toBe(100);
  });
});
