import { describe, expect, it } from 'vitest';
import { EndpointState } from '../../src/gen/augur/v1/common.js';
import { EndpointLoads } from '../../src/rrm/endpoint-load.js';
import { EndpointTables } from '../../src/rrm/endpoint-table.js';
import { RoutedRequests } from '../../src/rrm/routed-requests.js';
import type { DynamicPickerName } from '../../src/rrm/pipeline/pipeline.js';
import { Router } from '../../src/rrm/router.js';
import { StaticListSource } from './support/static-list-source.js';

/*
 * The expected-delay picker through the real Router over real tables and the RRM's own
 * EndpointLoads: each pick is counted in flight as the ext_proc handler counts it, responses are
 * recorded as the response phase records them.
 */

interface Setup {
  source: StaticListSource;
  router: Router;
  loads: EndpointLoads;
}

function setUp(
  endpoints: Array<{ id: string; weight: number; score?: number }>,
  options: { picker?: DynamicPickerName; sampleSize?: number; random?: () => number } = {},
): Setup {
  const source = new StaticListSource();
  source.set(
    'svc',
    endpoints.map((e, i) => ({
      endpointId: e.id,
      weight: e.weight,
      score: e.score ?? 0.5,
      address: `10.0.0.${i + 1}`,
      port: 80,
      state: EndpointState.ENDPOINT_STATE_ACTIVE,
    })),
  );
  const loads = new EndpointLoads();
  const router = new Router(new EndpointTables(source), {
    fallbacks: 2,
    maxEndpointStaleness: 10,
    dynamicPicker: options.picker ?? 'expected-delay',
    pickSampleSize: options.sampleSize ?? 16,
    loads,
    random: options.random,
  });
  return { source, router, loads };
}

/** Routes one request as the ext_proc handler does (counted in flight at its pick); its id. */
function route(s: Setup, candidates?: string[]): string {
  const d = s.router.decide('svc', true, candidates);
  s.loads.started(d.pick!);
  return d.endpoints[0]!.id;
}

/** A seeded uniform generator (mulberry32), so a statistical test gives the same draws. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('expected-delay picker', () => {
  it('with nothing answered yet, the requests in flight follow the weights (within one)', () => {
    const s = setUp([
      { id: 'a', weight: 0.5 },
      { id: 'b', weight: 0.3 },
      { id: 'c', weight: 0.2 },
    ]);
    const count: Record<string, number> = { a: 0, b: 0, c: 0 };
    for (let i = 1; i <= 200; i++) {
      count[route(s)]!++;
      // (in flight + 1) / weight is levelled: each endpoint is within one request of its share.
      expect(Math.abs(count.a! - 0.5 * i)).toBeLessThanOrEqual(1);
      expect(Math.abs(count.b! - 0.3 * i)).toBeLessThanOrEqual(1);
      expect(Math.abs(count.c! - 0.2 * i)).toBeLessThanOrEqual(1);
    }
  });

  it('spreads simultaneous requests: equal endpoints each get one before any gets two', () => {
    const s = setUp([
      { id: 'a', weight: 0.25 },
      { id: 'b', weight: 0.25 },
      { id: 'c', weight: 0.25 },
      { id: 'd', weight: 0.25 },
    ]);
    const first = Array.from({ length: 4 }, () => route(s));
    expect(new Set(first).size).toBe(4);
  });

  it('a slower endpoint holds fewer requests: latency 4× → half as many in flight', () => {
    const s = setUp([
      { id: 'fast', weight: 0.5 },
      { id: 'slow', weight: 0.5 },
    ]);
    s.loads.responded(s.loads.of('10.0.0.1:80'), 0.01, false);
    s.loads.responded(s.loads.of('10.0.0.2:80'), 0.04, false);
    const count: Record<string, number> = { fast: 0, slow: 0 };
    for (let i = 0; i < 300; i++) count[route(s)]!++;
    // (n + 1) × √latency levelled: n_fast + 1 ≈ 2 (n_slow + 1)
    expect(count.fast! + 1).toBeGreaterThanOrEqual(2 * (count.slow! + 1) - 2);
    expect(count.fast! + 1).toBeLessThanOrEqual(2 * (count.slow! + 1) + 2);
  });

  it('an endpoint that fails keeps its share, no more: its requests count until the fallback answers', () => {
    const s = setUp([
      { id: 'ok', weight: 0.5 },
      { id: 'broken', weight: 0.5 },
    ]);
    const ok = s.loads.of('10.0.0.1:80');
    const broken = s.loads.of('10.0.0.2:80');
    s.loads.responded(ok, 0.02, false);
    s.loads.responded(broken, 0.02, false);
    let now = 0;
    const routed = new RoutedRequests({ loads: s.loads, timeoutSeconds: 30, now: () => now });
    for (let round = 0; round < 5; round++) {
      // 40 requests at once; those picked for `broken` fail there at once and are retried on
      // `ok`, which answers all of them 20 ms later (Envoy reports upstream.address = ok).
      const batch = Array.from({ length: 40 }, () =>
        routed.begin(s.router.decide('svc', true, undefined).pick!),
      );
      const toBroken = batch.filter((r) => r.pick === broken).length;
      expect(toBroken).toBe(20);
      now += 20;
      for (const r of batch) routed.respond(r, ok, 200);
    }
    expect(broken.failures).toBe(100);
    // A failure never makes it look faster than it was.
    expect(broken.latency).toBe(0.02);
    expect(broken.inFlight + ok.inFlight).toBe(0);
  });

  it('ties go to the best Load Score; the fallbacks follow in Load Score order', () => {
    const s = setUp([
      { id: 'low', weight: 0.25, score: 0.2 },
      { id: 'top', weight: 0.25, score: 0.9 },
      { id: 'mid', weight: 0.25, score: 0.5 },
      { id: 'mid2', weight: 0.25, score: 0.4 },
    ]);
    const d = s.router.decide('svc', true, undefined);
    expect(d.endpoints.map((e) => e.id)).toEqual(['top', 'mid', 'mid2']);
    s.loads.started(d.pick!);
    const next = s.router.decide('svc', true, undefined);
    expect(next.endpoints.map((e) => e.id)).toEqual(['mid', 'top', 'mid2']);
    expect(next.value).toBe('10.0.0.3:80,10.0.0.2:80,10.0.0.4:80');
    // each distinct answer is built once
    expect(s.router.decide('svc', true, undefined)).toBe(next);
  });

  it('a caller list is picked among, in its own memo, with the same counts', () => {
    const s = setUp([
      { id: 'a', weight: 0.4 },
      { id: 'b', weight: 0.3 },
      { id: 'c', weight: 0.3 },
    ]);
    route(s); // a: (0 + 1) / 0.4 is the shortest; now in flight
    // among a and c: (1 + 1) / 0.4 = 5 against (0 + 1) / 0.3 = 3.3, then 5 against 6.7
    expect(route(s, ['a', 'c'])).toBe('c');
    expect(route(s, ['a', 'c'])).toBe('a');
  });

  it('in flight counts survive a new list version', () => {
    const s = setUp([
      { id: 'a', weight: 0.5 },
      { id: 'b', weight: 0.5 },
    ]);
    for (let i = 0; i < 4; i++) route(s);
    s.source.set('svc', [
      { endpointId: 'a', weight: 0.5, address: '10.0.0.1', port: 80 },
      { endpointId: 'b', weight: 0.5, address: '10.0.0.2', port: 80 },
    ]);
    expect(s.loads.of('10.0.0.1:80').inFlight).toBe(2);
    expect(s.loads.of('10.0.0.2:80').inFlight).toBe(2);
    expect(new Set([route(s), route(s)])).toEqual(new Set(['a', 'b']));
  });

  it('a large service has sampleSize candidates drawn by weight: a light endpoint is rarely one', () => {
    // 100 endpoints; one of them has a hundredth of the others' weight. With 4 drawn per
    // request it is a candidate with probability about 4 × 0.0001 = 0.04 %: over 5,000
    // requests its expected count is 2; 20 is far outside any sampling noise (Poisson tail
    // below 1e-10). Answered at once, so only the draws decide.
    const endpoints = Array.from({ length: 100 }, (_, i) => ({
      id: `e${i}`,
      weight: i === 0 ? 0.0001 : 0.01,
    }));
    const s = setUp(endpoints, { sampleSize: 4, random: seeded(7) });
    let light = 0;
    for (let i = 0; i < 5000; i++) {
      const d = s.router.decide('svc', true, undefined);
      if (d.endpoints[0]!.id === 'e0') light++;
    }
    expect(light).toBeLessThan(20);
    // Kept in flight, requests spread over the drawn ones: 5,000 over 99 endpoints of equal
    // weight (50.5 each on average) stay within a few of each other, as the shortest of 4
    // random queues does (3 with this seed; plain random placement would spread them by ~40).
    for (let i = 0; i < 5000; i++) route(s);
    const inFlight = endpoints.slice(1).map((_, i) => s.loads.of(`10.0.0.${i + 2}:80`).inFlight);
    expect(Math.max(...inFlight) - Math.min(...inFlight)).toBeLessThanOrEqual(5);
  });

  it('highest-score always answers the best Load Score first', () => {
    const s = setUp(
      [
        { id: 'a', weight: 0.9, score: 0.3 },
        { id: 'b', weight: 0.1, score: 0.8 },
      ],
      { picker: 'highest-score' },
    );
    for (let i = 0; i < 5; i++) expect(route(s)).toBe('b');
  });

  it('dynamic routing off keeps the caller order whatever is in flight', () => {
    const s = setUp([
      { id: 'a', weight: 0.5 },
      { id: 'b', weight: 0.5 },
    ]);
    for (let i = 0; i < 3; i++) {
      const d = s.router.decide('svc', false, ['b', 'a']);
      s.loads.started(d.pick!);
      expect(d.endpoints.map((e) => e.id)).toEqual(['b', 'a']);
    }
  });
});
