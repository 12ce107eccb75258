import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { EndpointState } from '../../src/gen/augur/v1/common.js';
import { EndpointTables } from '../../src/rrm/endpoint-table.js';
import type { DynamicPickerName } from '../../src/rrm/pipeline/pipeline.js';
import { SmoothWeightedRoundRobin } from '../../src/rrm/pipeline/weighted-primary.js';
import { Router } from '../../src/rrm/router.js';
import { StaticListSource } from './support/static-list-source.js';

/*
 * The weighted-primary picker through the real Router over real tables: the pick follows the
 * LPS's weights, the fallbacks its scores.
 */

// Scores and weights deliberately disagree: the best score (d) has the smallest weight.
const ENDPOINTS = [
  { endpointId: 'a', score: 0.4, weight: 0.5 },
  { endpointId: 'b', score: 0.6, weight: 0.3 },
  { endpointId: 'c', score: 0.2, weight: 0.15 },
  { endpointId: 'd', score: 0.9, weight: 0.05 },
];
const BY_SCORE = ['d', 'b', 'a', 'c'];
const N = 10_000;
/** Smooth WRR keeps every count within a few picks of its exact share; 0.2 % of N is ample. */
const TOLERANCE = 0.002 * N;

let tables: EndpointTables | undefined;
afterEach(() => tables?.close());

function setup(picker: DynamicPickerName = 'weighted', fallbacks = 2) {
  const source = new StaticListSource();
  source.set('svc', ENDPOINTS);
  tables = new EndpointTables(source);
  const router = new Router(tables, { fallbacks, maxEndpointStaleness: 10, dynamicPicker: picker });
  return { source, router };
}

function primaries(router: Router, n: number, candidates?: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(router.decide('svc', true, candidates).endpoints[0]!.id);
  return out;
}

function counts(ids: string[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const id of ids) c[id] = (c[id] ?? 0) + 1;
  return c;
}

describe('weighted primary', () => {
  it('makes each endpoint the pick in proportion to its weight over 10,000 decisions', () => {
    const { router } = setup();
    const c = counts(primaries(router, N));
    for (const e of ENDPOINTS) {
      expect(Math.abs((c[e.endpointId] ?? 0) - e.weight * N)).toBeLessThanOrEqual(TOLERANCE);
    }
  });

  it('interleaves the picks instead of sending runs to one endpoint', () => {
    const { router } = setup();
    const seq = primaries(router, 40);
    // a has half the weight: never more than 2 picks in a row for it, and b, c, d all in 20.
    expect(seq.join('')).not.toMatch(/aaa/);
    expect(new Set(seq.slice(0, 20))).toEqual(new Set(['a', 'b', 'c', 'd']));
  });

  it('orders the fallbacks by Load Score, without the pick, cut to the retry budget', () => {
    const { router } = setup('weighted', 2);
    for (let i = 0; i < 200; i++) {
      const ids = router.decide('svc', true, undefined).endpoints.map((e) => e.id);
      expect(ids).toHaveLength(3);
      expect(ids.slice(1)).toEqual(BY_SCORE.filter((id) => id !== ids[0]).slice(0, 2));
    }
  });

  it('memoises one decision per pick, so each answer is encoded once per list version', () => {
    const { router } = setup();
    const seen = new Map<string, unknown>();
    for (let i = 0; i < 100; i++) {
      const d = router.decide('svc', true, undefined);
      const first = d.endpoints[0]!.id;
      if (seen.has(first)) expect(d).toBe(seen.get(first));
      else seen.set(first, d);
    }
    expect(seen.size).toBe(4);
  });

  it('falls back to the highest score first when every weight is 0', () => {
    const { source, router } = setup();
    source.set(
      'svc',
      ENDPOINTS.map((e) => ({ ...e, weight: 0 })),
    );
    for (let i = 0; i < 50; i++) {
      expect(router.decide('svc', true, undefined).endpoints.map((e) => e.id)).toEqual([
        'd',
        'b',
        'a',
      ]);
    }
  });

  it('shares a caller subset by the weights of its members among themselves', () => {
    const { router } = setup();
    // a : c = 0.5 : 0.15, so a gets 0.5/0.65 of the picks.
    const c = counts(primaries(router, N, ['c', 'a']));
    expect(Object.keys(c).sort()).toEqual(['a', 'c']);
    expect(Math.abs(c.a! - (0.5 / 0.65) * N)).toBeLessThanOrEqual(TOLERANCE);
    expect(Math.abs(c.c! - (0.15 / 0.65) * N)).toBeLessThanOrEqual(TOLERANCE);
  });

  it('leaves out endpoints the filters drop and shares among the rest', () => {
    const { source, router } = setup();
    source.set('svc', [
      ...ENDPOINTS.filter((e) => e.endpointId !== 'a'),
      { endpointId: 'a', score: 0.4, weight: 0.5, state: EndpointState.ENDPOINT_STATE_FAILING },
    ]);
    const c = counts(primaries(router, N));
    expect(c.a).toBeUndefined();
    expect(Math.abs(c.b! - (0.3 / 0.5) * N)).toBeLessThanOrEqual(TOLERANCE);
  });

  it('continues the rotation across list versions, so shares stay exact when versions change every few requests', () => {
    const { source, router } = setup();
    // A new version (same weights) every 3 decisions: a fresh rotation per version would give
    // a, a, b (the start of its sequence) every time, so a ~67 %, b ~33 %, c and d nothing.
    const picks: string[] = [];
    for (let v = 0; v < 1000; v++) {
      source.set('svc', ENDPOINTS);
      picks.push(...primaries(router, 3));
    }
    const c = counts(picks);
    for (const e of ENDPOINTS) {
      expect(Math.abs((c[e.endpointId] ?? 0) - e.weight * 3000)).toBeLessThanOrEqual(4);
    }
  });

  it('when the weights change between versions, each version gets its own shares', () => {
    const { source, router } = setup();
    // 600 decisions at the first weights, then 600 at new ones, versions every 2 decisions.
    const swapped = ENDPOINTS.map((e, i) => ({ ...e, weight: ENDPOINTS[3 - i]!.weight }));
    const run = (list: typeof ENDPOINTS): Record<string, number> => {
      const picks: string[] = [];
      for (let v = 0; v < 300; v++) {
        source.set('svc', list);
        picks.push(...primaries(router, 2));
      }
      return counts(picks);
    };
    const first = run(ENDPOINTS);
    const second = run(swapped);
    for (const [list, c] of [
      [ENDPOINTS, first],
      [swapped, second],
    ] as const) {
      for (const e of list) {
        // Within a few picks: the carried credits are at most one round.
        expect(Math.abs((c[e.endpointId] ?? 0) - e.weight * 600)).toBeLessThanOrEqual(6);
      }
    }
  });

  it('gives an endpoint that joins its share from the version it joins (it starts at no credit)', () => {
    const { source, router } = setup();
    const withE = [
      ...ENDPOINTS.map((e) => ({ ...e, weight: e.weight * 0.8 })),
      { endpointId: 'e', score: 0.5, weight: 0.2 },
    ];
    const run = (list: Array<{ endpointId: string; score: number; weight: number }>) => {
      const picks: string[] = [];
      for (let v = 0; v < 100; v++) {
        source.set('svc', list);
        picks.push(...primaries(router, 4));
      }
      return counts(picks);
    };
    run(ENDPOINTS);
    const after = run(withE);
    for (const e of withE) {
      expect(Math.abs((after[e.endpointId] ?? 0) - e.weight * 400)).toBeLessThanOrEqual(5);
    }
  });

  it('with dynamicPicker highest-score, every decision is the best score first', () => {
    const { router } = setup('highest-score');
    const c = counts(primaries(router, 100));
    expect(c).toEqual({ d: 100 });
  });

  it('RouteResponse orders (router.order) take their turn in the same rotation', () => {
    const { router } = setup();
    const c = counts(
      Array.from({ length: 1000 }, () => router.order('svc', true, undefined, 10)[0]!.id),
    );
    expect(c).toEqual({ a: 500, b: 300, c: 150, d: 50 });
    expect(router.order('svc', true, undefined, 10)).toHaveLength(4);
  });
});

describe('smooth weighted round robin', () => {
  it('keeps every count within the number of members of its exact share, at every step', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1, max: 3000 }),
        (weights, steps) => {
          const rr = SmoothWeightedRoundRobin.of(weights);
          const sum = weights.reduce((s, w) => s + w, 0);
          if (!rr) {
            expect(sum).toBe(0);
            return;
          }
          const n = new Array<number>(weights.length).fill(0);
          let worst = 0;
          let zeroPicked = false;
          for (let t = 1; t <= steps; t++) {
            const i = rr.next();
            if (!(weights[i]! > 0)) zeroPicked = true;
            n[i]!++;
            for (let k = 0; k < weights.length; k++) {
              worst = Math.max(worst, Math.abs(n[k]! - (t * weights[k]!) / sum));
            }
          }
          expect(zeroPicked).toBe(false);
          expect(worst).toBeLessThanOrEqual(weights.length);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('continued from another rotation (other weights, some members new), stays within a few picks of its shares', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0.01, max: 1, noNaN: true }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.double({ min: 0.01, max: 1, noNaN: true }), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 1, max: 1000 }),
        (before, after, warm, steps) => {
          const first = SmoothWeightedRoundRobin.of(before)!;
          for (let t = 0; t < warm; t++) first.next();
          // Members are indices; those beyond `before` are new (no credit to carry).
          const members = after.map((w, i) => ({ i, w }));
          const rr = SmoothWeightedRoundRobin.over(
            members,
            (m) => m.w,
            (m) => (m.i < before.length ? first.creditOf(m.i) : undefined),
          )!;
          const sum = after.reduce((s, w) => s + w, 0);
          const n = new Array<number>(after.length).fill(0);
          for (let t = 1; t <= steps; t++) {
            n[rr.next()]!++;
            for (let k = 0; k < after.length; k++) {
              expect(Math.abs(n[k]! - (t * after[k]!) / sum)).toBeLessThanOrEqual(after.length + 2);
            }
          }
        },
      ),
    );
  });

  it('is undefined when no weight is positive (non-finite and negative count as 0)', () => {
    expect(SmoothWeightedRoundRobin.of([])).toBeUndefined();
    expect(SmoothWeightedRoundRobin.of([0, -1, Number.NaN, Infinity])).toBeUndefined();
    expect(SmoothWeightedRoundRobin.of([0, 2])!.next()).toBe(1);
  });
});
