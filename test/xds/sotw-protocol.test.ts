import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/common/logger.js';
import type { SharedResponse } from '../../src/common/shared-response.js';
import { loadConfig } from '../../src/serve/config.js';
import { RawAdsClient, type RawDiscoveryResponse } from '../../src/xds/ads-client.js';
import { clientKindOf } from '../../src/xds/client-kind.js';
import { xdsRegistry } from '../../src/xds/envoy-registry.js';
import { XdsMetrics } from '../../src/xds/metrics.js';
import { ResourceBuilder, type PublishedEndpoint } from '../../src/xds/resources.js';
import { Snapshot, type EncodedResource } from '../../src/xds/snapshot.js';
import { SnapshotCache } from '../../src/xds/snapshot-cache.js';
import {
  ADS_METHOD_PATH,
  SotwServer,
  adsServiceDefinition,
  type DiscoveryRequestMessage,
} from '../../src/xds/sotw-server.js';
import { TypeUrl } from '../../src/xds/types.js';
import { waitFor } from '../support/control-plane.js';
import { connect as connectRaw } from '../support/raw-grpc.js';
import { captureLogger } from '../support/logs.js';

const protos = xdsRegistry();
const options = {
  weightScale: 10_000,
  connectTimeout: 1,
  envoyLbPolicy: 'override_host',
  envoyUpstreamHttp2: false,
} as const;
const builder = new ResourceBuilder(protos, options);
const slowBuilder = new ResourceBuilder(protos, { ...options, connectTimeout: 5 });

const endpoint = (id: string, last: number, share: number): PublishedEndpoint => ({
  id,
  ip: `10.0.0.${last}`,
  port: 8080,
  share,
  region: 'r1',
  zone: 'z1',
  subZone: '',
});

/** A gRPC-kind snapshot of services, each with two endpoints. */
function snapshotOf(
  services: string[],
  opts: { shareA?: number; clusterBuilder?: ResourceBuilder } = {},
): Snapshot {
  const a = opts.shareA ?? 0.5;
  const resources: EncodedResource[] = [];
  for (const [i, s] of services.entries()) {
    resources.push(
      (opts.clusterBuilder ?? builder).cluster(s, 'grpc'),
      builder.endpoints(s, [
        endpoint(`${s}-a`, 2 * i + 1, a),
        endpoint(`${s}-b`, 2 * i + 2, 1 - a),
      ]),
      builder.listener(s),
      builder.route(s),
    );
  }
  return new Snapshot(resources);
}

const names = (c: RawAdsClient, r: RawDiscoveryResponse): string[] =>
  r.resources
    .map((x) => {
      const m = c.decode(x);
      return String(m.name ?? m.cluster_name);
    })
    .sort();

const node = { id: 'test-node', user_agent_name: 'gRPC Node Pure JS' };

describe('SotW ADS protocol over a raw stream', () => {
  let server: grpc.Server;
  let address: string;
  let cache: SnapshotCache;
  let sotw: SotwServer;
  let registry: Registry;
  let metrics: XdsMetrics;
  const clients: RawAdsClient[] = [];

  beforeAll(async () => {
    // Without the sharedResponses interceptor: grpc-js frames each response itself (the fallback
    // path); the conformance test runs augur serve, which has it.
    server = new grpc.Server();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    address = `127.0.0.1:${port}`;
    // One service implementation that forwards to the server of the current test.
    server.addService(adsServiceDefinition(protos), {
      StreamAggregatedResources: (
        call: grpc.ServerDuplexStream<DiscoveryRequestMessage, SharedResponse>,
      ) => sotw.implementation.StreamAggregatedResources(call),
    });
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  });

  beforeEach(() => {
    cache = new SnapshotCache();
    registry = new Registry();
    metrics = new XdsMetrics(registry);
    const rule = {
      metadataKey: 'augur.client',
      envoyUserAgents: ['envoy'],
      defaultKind: 'grpc' as const,
    };
    sotw = new SotwServer({
      watcher: cache,
      groupOf: (n) => clientKindOf(n, rule),
      logger: silentLogger,
      callbacks: metrics.protocol,
    });
  });

  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });

  const connect = (): RawAdsClient => {
    const c = new RawAdsClient(address, protos);
    clients.push(c);
    return c;
  };

  /** A metric's value, summed over the series that have these labels. */
  const metric = async (name: string, labels: Record<string, string> = {}): Promise<number> => {
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
    return (m?.values ?? [])
      .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
      .reduce((s, v) => s + v.value, 0);
  };

  /** The type of the first response to a CDS request on the stream (it was served). */
  const served = async (c: RawAdsClient): Promise<string> => {
    c.send({ node, type_url: TypeUrl.Cluster });
    return (await c.next()).type_url;
  };

  it('refuses streams past maxStreams when they start, with RESOURCE_EXHAUSTED, and takes one after another ends', async () => {
    sotw = new SotwServer({
      watcher: cache,
      groupOf: () => 'grpc',
      logger: silentLogger,
      callbacks: metrics.protocol,
      maxStreams: 2,
    });
    cache.setSnapshot('grpc', snapshotOf(['a']));
    const first = connect();
    const second = connect();
    expect(await served(first)).toBe(TypeUrl.Cluster);
    expect(await served(second)).toBe(TypeUrl.Cluster);

    const third = connect();
    third.send({ node, type_url: TypeUrl.Cluster });
    await expect(third.next()).rejects.toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
      details: expect.stringContaining('xds.maxStreams 2') as unknown,
    });
    expect(sotw.streams()).toHaveLength(2);
    expect(await metric('augur_xds_streams_refused_total')).toBe(1);
    expect(await metric('augur_xds_streams_refused_total', { limit: 'max_streams' })).toBe(1);

    first.close();
    await waitFor(() => sotw.streams().length === 1, 5000, 'the closed stream to be let go');
    expect(await served(connect())).toBe(TypeUrl.Cluster);
    expect(sotw.streams()).toHaveLength(2);
  });

  it('refuses streams past maxStreamsPerClient from one client when they start, counted and logged by limit, and takes one after another ends or its connection is reset', async () => {
    const { logger, lines: logged } = captureLogger('warn');
    sotw = new SotwServer({
      watcher: cache,
      groupOf: () => 'grpc',
      logger,
      callbacks: metrics.protocol,
      maxStreams: 10,
      maxStreamsPerClient: 2,
    });
    cache.setSnapshot('grpc', snapshotOf(['a']));
    const first = connect();
    expect(await served(first)).toBe(TypeUrl.Cluster);
    // The second on an HTTP/2 connection of its own, which sends nothing: still 127.0.0.1.
    const session = await connectRaw(address);
    try {
      session
        .request({
          ':method': 'POST',
          ':path': ADS_METHOD_PATH,
          'content-type': 'application/grpc',
          te: 'trailers',
        })
        .on('error', () => undefined);
      await waitFor(() => sotw.streams().length === 2, 5000, 'the raw stream to be open');

      // Every client here comes from 127.0.0.1: the 3rd and 4th streams are refused as they start.
      for (let i = 0; i < 2; i++) {
        const refused = connect();
        refused.send({ node, type_url: TypeUrl.Cluster });
        await expect(refused.next()).rejects.toMatchObject({
          code: grpc.status.RESOURCE_EXHAUSTED,
          details:
            'client 127.0.0.1 has 2 ADS streams open, the limit (xds.maxStreamsPerClient 2); try again later',
        });
      }
      expect(sotw.streams()).toHaveLength(2);
      expect(
        await metric('augur_xds_streams_refused_total', { limit: 'max_streams_per_client' }),
      ).toBe(2);
      expect(await metric('augur_xds_streams_refused_total', { limit: 'max_streams' })).toBe(0);
      // Logged once for both (at most once per 10 s per limit).
      const warnings = logged.filter((l) => l.includes('xds.maxStreamsPerClient'));
      expect(warnings).toHaveLength(1);
      expect(JSON.parse(warnings[0]!)).toMatchObject({
        limit: 'max_streams_per_client',
        refusedSinceLastLog: 1,
      });

      // A connection reset gives its place back.
      session.destroy();
      await waitFor(() => sotw.streams().length === 1, 5000, 'the reset stream to be let go');
    } finally {
      session.destroy();
    }
    const third = connect();
    expect(await served(third)).toBe(TypeUrl.Cluster);
    // So does a stream the client ends.
    first.close();
    await waitFor(() => sotw.streams().length === 1, 5000, 'the ended stream to be let go');
    expect(await served(connect())).toBe(TypeUrl.Cluster);
    expect(sotw.streams()).toHaveLength(2);
    // A client with no stream open holds no entry.
    for (const c of clients.splice(0)) c.close();
    await waitFor(() => sotw.streams().length === 0, 5000, 'every stream to be let go');
    expect(sotw.streamingClients).toBe(0);
  });

  it('answers a wildcard CDS request with every cluster, then waits for the ACK before the next version', async () => {
    cache.setSnapshot('grpc', snapshotOf(['a', 'b']));
    const c = connect();
    c.send({ node, type_url: TypeUrl.Cluster });
    const first = await c.next();
    expect(first.type_url).toBe(TypeUrl.Cluster);
    expect(names(c, first)).toEqual(['a', 'b']);
    expect(first.nonce).not.toBe('');

    // A new version before the ACK is held back: the watch was spent by the first answer.
    const v2 = snapshotOf(['a', 'b'], { clusterBuilder: slowBuilder });
    cache.setSnapshot('grpc', v2);
    await new Promise((r) => setTimeout(r, 100));
    expect(c.pending).toBe(0);

    c.send({
      type_url: TypeUrl.Cluster,
      version_info: first.version_info,
      response_nonce: first.nonce,
    });
    const second = await c.next();
    expect(second.version_info).toBe(v2.version(TypeUrl.Cluster));
    expect(second.version_info).not.toBe(first.version_info);
    expect(sotw.streams()[0]!.types[TypeUrl.Cluster]!.ackedVersion).toBe(first.version_info);
  });

  it('removes a deleted cluster from the next full-state CDS response', async () => {
    cache.setSnapshot('grpc', snapshotOf(['a', 'b', 'c']));
    const c = connect();
    c.send({ node, type_url: TypeUrl.Cluster });
    const first = await c.next();
    expect(names(c, first)).toEqual(['a', 'b', 'c']);
    c.send({
      type_url: TypeUrl.Cluster,
      version_info: first.version_info,
      response_nonce: first.nonce,
    });
    cache.setSnapshot('grpc', snapshotOf(['a', 'c']));
    const second = await c.next();
    expect(names(c, second)).toEqual(['a', 'c']);
    // Everything gone: an empty full-state answer, which deletes the client's clusters.
    c.send({
      type_url: TypeUrl.Cluster,
      version_info: second.version_info,
      response_nonce: second.nonce,
    });
    cache.setSnapshot('grpc', snapshotOf([]));
    const third = await c.next();
    expect(third.resources).toEqual([]);
  });

  it('answers named EDS subscriptions with the names asked for, and again when the names change', async () => {
    cache.setSnapshot('grpc', snapshotOf(['a', 'b', 'c']));
    const c = connect();
    c.send({ node, type_url: TypeUrl.ClusterLoadAssignment, resource_names: ['b'] });
    const first = await c.next();
    expect(names(c, first)).toEqual(['b']);
    // Same version, new names: answered at once with the wider set.
    c.send({
      type_url: TypeUrl.ClusterLoadAssignment,
      resource_names: ['b', 'c'],
      version_info: first.version_info,
      response_nonce: first.nonce,
    });
    const second = await c.next();
    expect(second.version_info).toBe(first.version_info);
    expect(names(c, second)).toEqual(['b', 'c']);
    // A named subscription to something that does not exist waits instead of answering empty.
    const d = connect();
    d.send({ node, type_url: TypeUrl.ClusterLoadAssignment, resource_names: ['nope'] });
    await new Promise((r) => setTimeout(r, 100));
    expect(d.pending).toBe(0);
    cache.setSnapshot('grpc', snapshotOf(['a', 'b', 'c', 'nope']));
    expect(names(d, await d.next())).toEqual(['nope']);
  });

  it('keeps the last good version after a NACK: counts it, does not resend the rejected version, sends the next one', async () => {
    const v1 = snapshotOf(['a'], { shareA: 0.5 });
    cache.setSnapshot('grpc', v1);
    const c = connect();
    c.send({ node, type_url: TypeUrl.ClusterLoadAssignment, resource_names: ['a'] });
    const r1 = await c.next();
    c.send({
      type_url: TypeUrl.ClusterLoadAssignment,
      resource_names: ['a'],
      version_info: r1.version_info,
      response_nonce: r1.nonce,
    });
    cache.setSnapshot('grpc', snapshotOf(['a'], { shareA: 0.7 }));
    const r2 = await c.next();
    expect(r2.version_info).not.toBe(r1.version_info);

    // The client rejects r2 and says it keeps r1.
    c.send({
      type_url: TypeUrl.ClusterLoadAssignment,
      resource_names: ['a'],
      version_info: r1.version_info,
      response_nonce: r2.nonce,
      error_detail: { code: 3, message: 'weights rejected by test' },
    });
    await new Promise((r) => setTimeout(r, 150));
    expect(c.pending).toBe(0); // r2 is not pushed again
    expect(await metric('augur_xds_nacks_total')).toBe(1);
    const state = sotw.streams()[0]!.types[TypeUrl.ClusterLoadAssignment]!;
    expect(state.ackedVersion).toBe(r1.version_info);
    expect(state.rejectedVersion).toBe(r2.version_info);

    // The snapshot moves on: the new version goes out.
    const v3 = snapshotOf(['a'], { shareA: 0.9 });
    cache.setSnapshot('grpc', v3);
    const r3 = await c.next();
    expect(r3.version_info).toBe(v3.version(TypeUrl.ClusterLoadAssignment));
    const cla = c.decode(r3.resources[0]!) as {
      endpoints: Array<{ load_balancing_weight: number }>;
    };
    expect(cla.endpoints.map((e) => e.load_balancing_weight)).toEqual([9000, 1000]);
  });

  it('ignores a request quoting a stale nonce', async () => {
    cache.setSnapshot('grpc', snapshotOf(['a']));
    const c = connect();
    c.send({ node, type_url: TypeUrl.Cluster });
    const r1 = await c.next();
    cache.setSnapshot('grpc', snapshotOf(['a', 'b']));
    // A request answering a nonce the server never sent last is not an ACK and opens no watch.
    c.send({ type_url: TypeUrl.Cluster, version_info: r1.version_info, response_nonce: 'stale-0' });
    await new Promise((r) => setTimeout(r, 100));
    expect(c.pending).toBe(0);
    expect(await metric('augur_xds_stale_nonce_requests_total')).toBe(1);
    expect(sotw.streams()[0]!.types[TypeUrl.Cluster]!.ackedVersion).toBeUndefined();
    // The real ACK gets the newer version at once.
    c.send({ type_url: TypeUrl.Cluster, version_info: r1.version_info, response_nonce: r1.nonce });
    expect(names(c, await c.next())).toEqual(['a', 'b']);
  });

  it('pushes Clusters, Endpoints, Listeners, Routes in that order, and re-sends endpoints after a cluster change', async () => {
    cache.setSnapshot('grpc', snapshotOf(['a']));
    const c = connect();
    const held = new Map<string, RawDiscoveryResponse>();
    // Subscribe in the reverse order: the answers still come in push order on a snapshot change.
    for (const [t, n] of [
      [TypeUrl.RouteConfiguration, ['a']],
      [TypeUrl.Listener, []],
      [TypeUrl.ClusterLoadAssignment, ['a']],
      [TypeUrl.Cluster, []],
    ] as const) {
      c.send({ node, type_url: t, resource_names: [...n] });
      held.set(t, await c.next());
    }
    const ack = (r: RawDiscoveryResponse, n: string[]): void =>
      c.send({
        type_url: r.type_url,
        resource_names: n,
        version_info: r.version_info,
        response_nonce: r.nonce,
      });
    // The server has taken every ACK in (and opened its watches): a fixed sleep is not enough on
    // a busy machine.
    const allAcked = (): Promise<unknown> =>
      waitFor(
        () =>
          [...held.values()].every(
            (r) => sotw.streams()[0]?.types[r.type_url]?.ackedVersion === r.version_info,
          ),
        5000,
        'the server to take every ACK in',
      );
    ack(held.get(TypeUrl.RouteConfiguration)!, ['a']);
    ack(held.get(TypeUrl.Listener)!, []);
    ack(held.get(TypeUrl.ClusterLoadAssignment)!, ['a']);
    ack(held.get(TypeUrl.Cluster)!, []);
    await allAcked();

    cache.setSnapshot('grpc', snapshotOf(['a', 'b']));
    const order: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await c.next();
      order.push(r.type_url);
      ack(r, r.type_url === TypeUrl.Cluster || r.type_url === TypeUrl.Listener ? [] : ['a']);
      held.set(r.type_url, r);
    }
    expect(order).toEqual([
      TypeUrl.Cluster,
      TypeUrl.ClusterLoadAssignment,
      TypeUrl.Listener,
      TypeUrl.RouteConfiguration,
    ]);
    await allAcked();

    // Only cluster a's settings change; its endpoints are the same, yet they are sent again.
    const edsBefore = held.get(TypeUrl.ClusterLoadAssignment)!.version_info;
    cache.setSnapshot('grpc', snapshotOf(['a', 'b'], { clusterBuilder: slowBuilder }));
    const cds = await c.next();
    expect(cds.type_url).toBe(TypeUrl.Cluster);
    const eds = await c.next();
    expect(eds.type_url).toBe(TypeUrl.ClusterLoadAssignment);
    expect(eds.version_info).toBe(edsBefore);
    expect(names(c, eds)).toEqual(['a']);
  });

  it('answers the first request of a new stream even when the client already holds that version', async () => {
    const snap = snapshotOf(['a']);
    cache.setSnapshot('grpc', snap);
    const c = connect();
    c.send({ node, type_url: TypeUrl.Cluster, version_info: snap.version(TypeUrl.Cluster) });
    const r = await c.next();
    expect(r.version_info).toBe(snap.version(TypeUrl.Cluster));
    expect(names(c, r)).toEqual(['a']);
  });

  it('gives Envoy (by user agent) and declared clients the clusters of their kind', async () => {
    const envoySnap = new Snapshot([builder.cluster('a', 'envoy')]);
    cache.setSnapshot('envoy', envoySnap);
    cache.setSnapshot('grpc', snapshotOf(['a']));
    const e = connect();
    e.send({ node: { id: 'envoy-1', user_agent_name: 'envoy' }, type_url: TypeUrl.Cluster });
    const fromEnvoy = e.decode((await e.next()).resources[0]!);
    expect(JSON.stringify(fromEnvoy.load_balancing_policy)).toContain(
      'envoy.load_balancing_policies.override_host',
    );

    const g = connect();
    g.send({
      node: {
        id: 'x',
        user_agent_name: 'envoy',
        metadata: { 'augur.client': 'grpc' },
      },
      type_url: TypeUrl.Cluster,
    });
    const fromGrpc = g.decode((await g.next()).resources[0]!);
    // augur's picker (a TypedStruct), then wrr_locality; no override-host policy.
    const grpcPolicies = JSON.stringify(fromGrpc.load_balancing_policy);
    expect(grpcPolicies).not.toContain('override_host');
    expect(grpcPolicies.indexOf('xds.type.v3.TypedStruct')).toBeGreaterThanOrEqual(0);
    expect(grpcPolicies.indexOf('xds.type.v3.TypedStruct')).toBeLessThan(
      grpcPolicies.indexOf('wrr_locality.v3.WrrLocality'),
    );
    expect(fromGrpc.type).toBe('EDS');
    expect(
      sotw
        .streams()
        .map((s) => s.group)
        .sort(),
    ).toEqual(['envoy', 'grpc']);
  });
});

describe('xds.maxStreamsPerClient in the configuration', () => {
  it('defaults to 1,000 and refuses a value that is not a positive integer, naming the setting', () => {
    expect(loadConfig({ env: {}, flags: {} }).xds.maxStreamsPerClient).toBe(1000);
    for (const bad of [0, -1, 2.5, '10']) {
      expect(() => loadConfig({ env: {}, flags: { xds: { maxStreamsPerClient: bad } } })).toThrow(
        /invalid configuration: xds\.maxStreamsPerClient: /,
      );
    }
  });
});
