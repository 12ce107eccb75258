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

  it('starts a fresh rotation with each new list version', () => {
    const { source, router } = setup();
    // The weights give a rotation of period 20; stop 7 picks into the next one.
    const first = primaries(router, 20);
    primaries(router, 7);
    const continued = primaries(router, 20);
    // Mid-rotation the sequence differs from its start, so equality below means a reset.
    expect(continued).not.toEqual(first);
    source.set('svc', ENDPOINTS);
    expect(primaries(router, 20)).toEqual(first);
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

  it('is undefined when no weight is positive (non-finite and negative count as 0)', () => {
    expect(SmoothWeightedRoundRobin.of([])).toBeUndefined();
    expect(SmoothWeightedRoundRobin.of([0, -1, Number.NaN, Infinity])).toBeUndefined();
    expect(SmoothWeightedRoundRobin.of([0, 2])!.next()).toBe(1);
  });
});
