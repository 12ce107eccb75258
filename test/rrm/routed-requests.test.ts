import { describe, expect, it } from 'vitest';
import { EndpointLoads } from '../../src/rrm/endpoint-load.js';
import { RoutedRequests, type RoutedOutcome } from '../../src/rrm/routed-requests.js';

/** RoutedRequests on a clock the test moves (milliseconds). */
function setUp(timeoutSeconds = 30) {
  let now = 1000;
  const loads = new EndpointLoads();
  const outcomes: RoutedOutcome[] = [];
  const routed = new RoutedRequests({
    loads,
    timeoutSeconds,
    now: () => now,
    onEnd: (o) => outcomes.push(o),
  });
  return {
    loads,
    routed,
    outcomes,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('routed requests (the in-flight count of the in-band signals)', () => {
  it('counts a request from its pick to its response, with the latency Envoy saw', () => {
    const { loads, routed, outcomes, advance } = setUp();
    const a = loads.of('10.0.0.1:80');
    const r = routed.begin(a);
    expect(a.inFlight).toBe(1);
    advance(25);
    routed.respond(r, a, 200);
    expect(a.inFlight).toBe(0);
    expect(a.latency).toBeCloseTo(0.025, 12);
    expect(outcomes).toEqual(['answered']);
    expect(routed.size).toBe(0);
  });

  it('gives a request back exactly once, whatever ends it first', () => {
    const { loads, routed, outcomes, advance } = setUp(5);
    const a = loads.of('10.0.0.1:80');
    const r = routed.begin(a);
    routed.abandon(r);
    routed.respond(r, a, 200);
    routed.abandon(r);
    advance(10_000);
    expect(routed.sweep()).toBe(0);
    expect(a.inFlight).toBe(0);
    expect(a.responses).toBe(0);
    expect(outcomes).toEqual(['abandoned']);
  });

  it('a stream never answered nor closed stops counting after the timeout', () => {
    const { loads, routed, outcomes, advance } = setUp(5);
    const a = loads.of('10.0.0.1:80');
    const old = routed.begin(a);
    advance(3000);
    const recent = routed.begin(a);
    advance(2000);
    expect(routed.sweep()).toBe(1);
    expect(a.inFlight).toBe(1);
    advance(3000);
    expect(routed.sweep()).toBe(1);
    expect(a.inFlight).toBe(0);
    routed.respond(old, a, 200);
    routed.respond(recent, a, 200);
    expect(a.responses).toBe(0);
    expect(outcomes).toEqual(['timed_out', 'timed_out']);
  });

  it('an answer from a fallback is a failure of the pick and a response of the fallback', () => {
    const { loads, routed, outcomes, advance } = setUp();
    const pick = loads.of('10.0.0.1:80');
    const fallback = loads.of('10.0.0.2:80');
    loads.responded(pick, 0.01, false);
    const r = routed.begin(pick);
    advance(40);
    routed.respond(r, fallback, 200);
    expect(pick.inFlight).toBe(0);
    expect(pick.failures).toBe(1);
    expect(pick.latency).toBe(0.01); // a failure does not move the latency
    expect(fallback.latency).toBeCloseTo(0.04, 12);
    expect(fallback.failures).toBe(0);
    expect(outcomes).toEqual(['failed']);
  });

  it('an answer from an endpoint the RRM does not know fails the pick only; a 5xx fails its sender', () => {
    const { loads, routed, outcomes, advance } = setUp();
    const a = loads.of('10.0.0.1:80');
    const first = routed.begin(a);
    advance(10);
    routed.respond(first, undefined, 200);
    expect(a.failures).toBe(1);
    const second = routed.begin(a);
    advance(10);
    routed.respond(second, a, 503);
    expect(a.failures).toBe(2);
    expect(a.responses).toBe(2);
    expect(outcomes).toEqual(['failed', 'failed']);
  });

  it('forgets endpoints no list has once nothing is in flight there', () => {
    const { loads, routed } = setUp();
    const gone = loads.of('10.0.0.9:80');
    const busy = loads.of('10.0.0.8:80');
    loads.of('10.0.0.1:80');
    const r = routed.begin(busy);
    loads.retain((d) => d === '10.0.0.1:80');
    expect(loads.get(gone.destination)).toBeUndefined();
    expect(loads.get(busy.destination)).toBe(busy);
    routed.abandon(r);
    loads.retain((d) => d === '10.0.0.1:80');
    expect(loads.get(busy.destination)).toBeUndefined();
    expect(loads.size).toBe(1);
  });
});
