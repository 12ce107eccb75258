import { describe, expect, test } from 'vitest';
import { EndpointCost, pooledCost, type CostParams } from '../../src/lps/score/cost.js';
import fc from 'fast-check';

const params: CostParams = { minRequests: 20, saturation: 0.95, halfLife: 1e9, priorRequests: 200 };
const interval = (requests: number, ownCpu: number, hostCpu = ownCpu + 0.1) => ({
  hostCpu,
  ownCpu,
  requests,
  span: 1,
  cores: 4,
});

describe('cost per request', () => {
  test('a ratio of sums: intervals with more requests weigh more', () => {
    const c = new EndpointCost(params);
    c.learn(interval(100, 0.25)); // 1 CPU-second for 100 requests
    c.learn(interval(25, 0.25)); // 1 CPU-second for 25 requests
    // (1 + 1) / (100 + 25) = 0.016, not the mean of 0.01 and 0.04
    expect(c.estimate('own', undefined)).toBeCloseTo(2 / 125, 9);
  });

  test('a nearly idle interval is not learnt: fixed overhead over few requests would look expensive', () => {
    const c = new EndpointCost(params);
    c.learn(interval(200, 0.5)); // 2 CPU-seconds / 200
    expect(c.learn(interval(3, 0.05))).toBeUndefined(); // 0.2 CPU-second of overhead / 3 requests
    expect(c.estimate('own', undefined)).toBeCloseTo(0.01, 12);
  });

  test('a saturated interval is not learnt', () => {
    const c = new EndpointCost(params);
    c.learn(interval(200, 0.5));
    expect(c.learn(interval(100, 0.9, 0.97))).toBeUndefined();
    expect(c.estimate('own', undefined)).toBeCloseTo(0.01, 12);
  });

  test("an endpoint that served little borrows its service's cost", () => {
    const busy = new EndpointCost(params);
    const quiet = new EndpointCost(params);
    for (let i = 0; i < 50; i++) busy.learn(interval(200, 0.5)); // 0.01 CPU-second per request
    quiet.learn(interval(20, 0.25)); // 0.05: its one interval says it is 5x as expensive
    const prior = pooledCost([busy, quiet], 'own')!;
    expect(prior).toBeCloseTo(0.01, 3);
    // 20 requests against a prior worth 200: mostly the service's cost.
    const q = quiet.estimate('own', prior)!;
    expect(q).toBeLessThan(0.015);
    // 10,000 requests: its own.
    expect(busy.estimate('own', prior)!).toBeCloseTo(0.01, 4);
    expect(new EndpointCost(params).estimate('own', prior)).toBe(prior);
    expect(new EndpointCost(params).estimate('own', undefined)).toBeUndefined();
  });

  test('without own CPU it learns from host CPU, kept apart (A58: the background counts as ours)', () => {
    const c = new EndpointCost(params);
    expect(c.learn({ hostCpu: 0.5, ownCpu: NaN, requests: 100, span: 1, cores: 4 })).toBe('host');
    expect(c.estimate('host', undefined)).toBeCloseTo(0.02, 12);
    expect(c.estimate('own', undefined)).toBeUndefined();
    expect(
      c.learn({ hostCpu: 0.5, ownCpu: NaN, requests: NaN, span: 1, cores: 4 }),
    ).toBeUndefined();
  });

  test('older intervals fade with the half-life', () => {
    const c = new EndpointCost({ ...params, halfLife: 1 });
    c.learn(interval(100, 0.25)); // 0.01
    for (let i = 0; i < 30; i++) c.learn(interval(100, 0.5)); // 0.02
    expect(c.estimate('own', undefined)).toBeCloseTo(0.02, 6);
  });
});

/** The sums as they were kept before (a record per sum, keyed by source): the reference. */
class ReferenceCost {
  readonly work = { own: 0, host: 0 };
  readonly requests = { own: 0, host: 0 };
  constructor(private readonly p: CostParams) {}
  learn(s: ReturnType<typeof interval>): 'own' | 'host' | undefined {
    const p = this.p;
    if (!(s.requests >= p.minRequests) || !(s.span > 0) || !(s.cores > 0)) return undefined;
    if (!(s.hostCpu < p.saturation)) return undefined;
    const source = Number.isFinite(s.ownCpu) ? 'own' : 'host';
    const cpu = source === 'own' ? s.ownCpu : s.hostCpu;
    const decay = 2 ** (-1 / p.halfLife);
    this.work[source] = decay * this.work[source] + cpu * s.cores * s.span;
    this.requests[source] = decay * this.requests[source] + s.requests;
    return source;
  }
}

describe('cost sums as plain fields', () => {
  test('learn, sums, estimate, pooled cost and a checkpoint equal the per-source records bit for bit', () => {
    const p: CostParams = { ...params, halfLife: 7 };
    const sample = fc.record({
      hostCpu: fc.double({ min: 0, max: 1, noNaN: true }),
      ownCpu: fc.oneof(fc.constant(NaN), fc.double({ min: 0, max: 1, noNaN: true })),
      requests: fc.oneof(fc.constant(NaN), fc.integer({ min: 0, max: 500 })),
      span: fc.oneof(fc.constant(0), fc.double({ min: 0.1, max: 60, noNaN: true })),
      cores: fc.integer({ min: 0, max: 64 }),
    });
    fc.assert(
      fc.property(
        fc.array(fc.array(sample, { maxLength: 40 }), { minLength: 1, maxLength: 4 }),
        (series) => {
          const costs = series.map(() => new EndpointCost(p));
          const refs = series.map(() => new ReferenceCost(p));
          series.forEach((xs, i) => {
            for (const s of xs) expect(costs[i]!.learn(s)).toBe(refs[i]!.learn(s));
          });
          for (const source of ['own', 'host'] as const) {
            let w = 0;
            let n = 0;
            costs.forEach((c, i) => {
              expect(c.sums(source)).toEqual({
                work: refs[i]!.work[source],
                requests: refs[i]!.requests[source],
              });
              w += refs[i]!.work[source];
              n += refs[i]!.requests[source];
            });
            expect(pooledCost(costs, source)).toBe(n > 0 && w > 0 ? w / n : undefined);
            const prior = pooledCost(costs, source);
            costs.forEach((c) => {
              const copy = new EndpointCost(p);
              expect(copy.restore(JSON.parse(JSON.stringify(c.toJSON())))).toBe(true);
              expect(copy.estimate(source, prior)).toBe(c.estimate(source, prior));
              expect(copy.toJSON()).toEqual(c.toJSON());
            });
          }
        },
      ),
    );
  });
});
