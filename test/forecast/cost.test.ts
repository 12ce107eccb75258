import { describe, expect, test } from 'vitest';
import { EndpointCost, pooledCost, type CostParams } from '../../src/lps/score/cost.js';

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
