import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LoadPredictionClient,
  type EndpointInfo,
  type ListEndpointsResponse,
} from '../../src/gen/augur/v1/load_prediction.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';
import { TestDnsServer } from '../support/dns-server.js';
import { RawAgentStream } from '../support/raw-agent.js';

/*
 * Host names are resolved in the LPS, against a real DNS server on loopback (the resolver is
 * node:dns's c-ares, pointed at it by lps.hostnames.servers): a failure is retried with backoff
 * and never kept, a resolved name is looked up again, and what the lookup gave is published in
 * the list (ScoredEndpoint.ip) and in ListEndpoints (ip, address_error).
 */

let plane: TestPlane | undefined;
let dns: TestDnsServer | undefined;
const closers: Array<() => void> = [];

afterEach(async () => {
  for (const close of closers.splice(0)) close();
  await plane?.dispose();
  plane = undefined;
  await dns?.close();
  dns = undefined;
});

const RETRY_INITIAL = 0.2;
const RETRY_MAX = 0.8;

async function start(dnsServer: TestDnsServer): Promise<TestPlane> {
  return startTestPlane({
    lps: {
      hostnames: {
        servers: [dnsServer.address],
        retryInitial: RETRY_INITIAL,
        retryMax: RETRY_MAX,
        ttl: 1,
        timeout: 2,
      },
    },
  });
}

function agent(address: string, id = 'named'): RawAgentStream {
  const s = new RawAgentStream(plane!.grpcAddress);
  closers.push(() => s.close());
  s.hello({ endpointId: id, address, port: 8080 });
  s.sample({ sequence: 1 });
  return s;
}

async function endpointInfo(id: string): Promise<EndpointInfo | undefined> {
  const client = new LoadPredictionClient(plane!.grpcAddress, grpc.credentials.createInsecure());
  try {
    const res = await new Promise<ListEndpointsResponse>((resolve, reject) =>
      client.listEndpoints({ service: '' }, (err, r) => (err ? reject(err) : resolve(r!))),
    );
    return res.endpoints.find((e) => e.endpointId === id);
  } finally {
    client.close();
  }
}

/** The endpoint as ListEndpoints gives it, once it carries an address error. */
const addressErrorOf = (id: string): Promise<EndpointInfo> =>
  waitFor(
    async () => {
      const info = await endpointInfo(id);
      return info?.addressError ? info : undefined;
    },
    5000,
    `an address error for ${id}`,
  );

const listIp = (id: string): string | undefined =>
  plane!.lps.lists.get('svc')?.endpoints.find((e) => e.endpointId === id)?.ip;

async function metric(name: string): Promise<number> {
  const value = (await plane!.registry.getSingleMetric(name)?.get())?.values[0]?.value;
  return value ?? NaN;
}

describe('host names resolved by the LPS', () => {
  it('reports a name that does not resolve, retries it with backoff, and publishes it once it does', async () => {
    dns = await TestDnsServer.start();
    dns.set('backend.test', { rcode: 'SERVFAIL' });
    plane = await start(dns);
    agent('backend.test');

    // Reported, not dropped: in the list without an IP, in ListEndpoints with the error, counted.
    await waitFor(() => plane!.lps.lists.get('svc')?.endpoints.length === 1, 5000, 'the list');
    expect(listIp('named')).toBe('');
    const info = await addressErrorOf('named');
    expect(info.ip).toBe('');
    expect(info.addressError).toMatch(/SERVFAIL|ESERVFAIL/i);
    expect(await metric('augur_lps_unresolved_endpoints')).toBe(1);

    // Retried, never cached for good: several failed lookups, spaced by a growing backoff.
    await waitFor(() => dns!.queries.length >= 3, 5000, 'three failed lookups');
    const failedAt = dns.queries.map((q) => q.atMs);
    for (let i = 1; i < failedAt.length; i++) {
      expect(failedAt[i]! - failedAt[i - 1]!).toBeGreaterThanOrEqual(RETRY_INITIAL * 1000 - 20);
    }

    // The name resolves: the next retry comes within the bound, and the list carries the IP.
    const fixedAt = Date.now();
    dns.set('backend.test', { ipv4: '10.20.30.40', ttl: 60 });
    await waitFor(() => listIp('named') === '10.20.30.40', 10_000, 'the IP in the list');
    const firstAnswer = dns.queries.find((q) => q.answered === '10.20.30.40')!;
    expect(firstAnswer.atMs - fixedAt).toBeLessThanOrEqual(RETRY_MAX * 1000 + 500);
    const resolved = (await endpointInfo('named'))!;
    expect(resolved).toMatchObject({ ip: '10.20.30.40', addressError: '' });
    expect(await metric('augur_lps_unresolved_endpoints')).toBe(0);
  });

  it('looks a resolved name up again, follows a new IP, and keeps the last IP while lookups fail', async () => {
    dns = await TestDnsServer.start();
    dns.set('moving.test', { ipv4: '10.0.0.1', ttl: 1 });
    plane = await start(dns);
    agent('moving.test', 'moving');
    await waitFor(() => listIp('moving') === '10.0.0.1', 5000, 'the first IP');

    dns.set('moving.test', { ipv4: '10.0.0.2', ttl: 1 });
    await waitFor(() => listIp('moving') === '10.0.0.2', 5000, 'the new IP after the TTL');

    dns.set('moving.test', { rcode: 'NXDOMAIN' });
    const info = await addressErrorOf('moving');
    expect(info.ip).toBe('10.0.0.2');
    expect(listIp('moving')).toBe('10.0.0.2');
  });

  it('publishes an IP literal as it is, without a lookup', async () => {
    dns = await TestDnsServer.start();
    plane = await start(dns);
    agent('10.9.8.7', 'literal');
    await waitFor(() => listIp('literal') === '10.9.8.7', 5000, 'the literal');
    expect(dns.queries).toEqual([]);
  });
});
