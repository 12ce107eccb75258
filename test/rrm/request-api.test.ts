import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/common/logger.js';
import { MonitoringForwarder } from '../../src/rrm/monitoring.js';
import {
  BadRoutingHeader,
  RoutingHeaderCollector,
  parseRoutingHeaders,
} from '../../src/rrm/request-api.js';
import { ServiceResolver } from '../../src/rrm/service-resolver.js';

const limits = {
  dynamicRoutingDefault: true,
  maxCandidates: 3,
  minInterval: 0.1,
  maxInterval: 300,
  monitoringIntervalFromRequests: true,
};

function parse(headers: Array<[string, string]>) {
  const c = new RoutingHeaderCollector();
  for (const [k, v] of headers) c.add(k, v);
  return parseRoutingHeaders(c.headers, limits);
}

function reason(headers: Array<[string, string]>): string {
  try {
    parse(headers);
  } catch (err) {
    expect(err).toBeInstanceOf(BadRoutingHeader);
    return (err as Error).message;
  }
  throw new Error('expected a BadRoutingHeader');
}

describe('request API headers', () => {
  it('defaults: dynamic from config, every endpoint, no interval', () => {
    expect(parse([['accept', '*/*']])).toEqual({
      dynamic: true,
      candidates: undefined,
      monitoringInterval: undefined,
    });
  });

  it('reads all three headers', () => {
    expect(
      parse([
        ['x-augur-dynamic-routing', ' False '],
        ['x-augur-endpoints', 'a , b,a'],
        ['x-augur-monitoring-interval', '250ms'],
      ]),
    ).toEqual({ dynamic: false, candidates: ['a', 'b'], monitoringInterval: 0.25 });
    expect(parse([['x-augur-monitoring-interval', '2m']]).monitoringInterval).toBe(120);
  });

  it('names the header and the problem', () => {
    expect(reason([['x-augur-dynamic-routing', '1']])).toBe(
      'x-augur-dynamic-routing: "1" is not true or false',
    );
    expect(reason([['x-augur-endpoints', '']])).toMatch(/^x-augur-endpoints: entry 1 is empty/);
    expect(reason([['x-augur-endpoints', 'a,b,c,d']])).toBe(
      'x-augur-endpoints: 4 endpoints given; at most 3 are accepted',
    );
    expect(reason([['x-augur-endpoints', 'a/b']])).toMatch(/entry 1 "a\/b" is not an endpoint id/);
    expect(reason([['x-augur-monitoring-interval', '-1']])).toMatch(/"-1" is not a duration/);
    expect(reason([['x-augur-monitoring-interval', '301']])).toMatch(
      /301 s is outside the allowed range 0.1 s to 300 s/,
    );
    expect(
      reason([
        ['x-augur-monitoring-interval', '1'],
        ['x-augur-monitoring-interval', '2'],
      ]),
    ).toMatch(/sent more than once/);
  });

  it('clips a huge bad value in the message and says how long it was', () => {
    const message = reason([['x-augur-dynamic-routing', 'y'.repeat(10_000)]]);
    expect(message).toContain(`"${'y'.repeat(64)}"… (10000 characters)`);
    expect(message.length).toBeLessThan(160);
  });

  it('notices a client-sent destination header', () => {
    const c = new RoutingHeaderCollector();
    c.add('x-gateway-destination-endpoint', '1.2.3.4:5');
    expect(c.headers.destinationSent).toBe(true);
    c.reset();
    expect(c.headers.destinationSent).toBe(false);
  });
});

describe('service resolution', () => {
  const r = new ServiceResolver({
    serviceByRoute: { r1: 'from-route' },
    serviceByCluster: { c1: 'from-cluster' },
    defaultService: 'dflt',
  });
  const known = (s: string) => ['shop', 'route-svc'].includes(s);
  it('route map, cluster map, cluster name, route name, default', () => {
    expect(r.resolve('r1', 'c1', known)).toBe('from-route');
    expect(r.resolve('rx', 'c1', known)).toBe('from-cluster');
    expect(r.resolve('route-svc', 'shop', known)).toBe('shop');
    expect(r.resolve('route-svc', 'other', known)).toBe('route-svc');
    expect(r.resolve(undefined, undefined, known)).toBe('dflt');
  });
});

describe('monitoring interval forwarding', () => {
  it('forwards once per endpoint set per gap, whatever the order of ids', async () => {
    let now = 1_000_000;
    const calls: Array<[string, string[], number]> = [];
    const f = new MonitoringForwarder({
      sink: { setMonitoringInterval: async (s, ids, sec) => (calls.push([s, ids, sec]), ids) },
      fromRequests: true,
      minGapSeconds: 10,
      memory: 2,
      logger: silentLogger,
      now: () => now,
    });
    const all = () => ['x', 'y'];
    expect(f.request('svc', ['b', 'a'], 1, all)).toBe('forwarded');
    expect(f.request('svc', ['a', 'b'], 2, all)).toBe('rate_limited');
    expect(f.request('svc', undefined, 2, all)).toBe('forwarded');
    now += 10_000;
    expect(f.request('svc', ['a', 'b'], 3, all)).toBe('forwarded');
    await Promise.resolve();
    expect(calls).toEqual([
      ['svc', ['b', 'a'], 1],
      ['svc', ['x', 'y'], 2],
      ['svc', ['a', 'b'], 3],
    ]);
  });

  it('leaves the header unread and forwards nothing unless rrm.monitoringIntervalFromRequests', async () => {
    const c = new RoutingHeaderCollector();
    c.add('x-augur-monitoring-interval', '5m');
    const off = { ...limits, monitoringIntervalFromRequests: false };
    expect(parseRoutingHeaders(c.headers, off).monitoringInterval).toBeUndefined();
    // Not parsed either: a value augur does not act on fails no request, repeated or not.
    c.add('x-augur-monitoring-interval', 'soon');
    expect(parseRoutingHeaders(c.headers, off).monitoringInterval).toBeUndefined();
    c.reset();
    c.add('x-augur-monitoring-interval', 'soon');
    expect(parseRoutingHeaders(c.headers, off).monitoringInterval).toBeUndefined();
    const calls: string[][] = [];
    const f = new MonitoringForwarder({
      sink: { setMonitoringInterval: async (_s, ids) => (calls.push(ids), ids) },
      fromRequests: false,
      minGapSeconds: 0,
      memory: 10,
      logger: silentLogger,
    });
    expect(f.request('svc', ['a'], 300, () => ['a'])).toBe('disabled');
    expect(f.request('svc', undefined, 300, () => ['a'])).toBe('disabled');
    await new Promise((r) => setTimeout(r, 0));
    expect(calls).toEqual([]);
  });

  it('reports a failed forward without throwing into the request path', async () => {
    let failures = 0;
    const f = new MonitoringForwarder({
      sink: {
        setMonitoringInterval: async () =>
          Promise.reject(Object.assign(new Error('x'), { details: 'NOT_FOUND' })),
      },
      fromRequests: true,
      minGapSeconds: 0,
      memory: 10,
      logger: silentLogger,
      onFailure: () => failures++,
    });
    expect(f.request('svc', ['a'], 1, () => [])).toBe('forwarded');
    await new Promise((r) => setTimeout(r, 0));
    expect(failures).toBe(1);
  });
});
