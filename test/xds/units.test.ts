import { fromBinary, toJson } from '@bufbuild/protobuf';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/common/logger.js';
import {
  EndpointState,
  type PrioritizedEndpointList,
  type PrioritizedListSource,
} from '../../src/lps/types.js';
import { clientKindOf } from '../../src/xds/client-kind.js';
import { messageType, xdsRegistry } from '../../src/xds/envoy-registry.js';
import { XdsPublisher } from '../../src/xds/publisher.js';
import {
  ResourceBuilder,
  publishedEndpoints,
  weightOf,
  type PublishedEndpoint,
} from '../../src/xds/resources.js';
import { Snapshot } from '../../src/xds/snapshot.js';
import { SnapshotCache, type WatchResponse } from '../../src/xds/snapshot-cache.js';
import { TypeUrl } from '../../src/xds/types.js';

const protos = xdsRegistry();
const builder = new ResourceBuilder(protos, {
  weightScale: 10_000,
  connectTimeout: 1,
  envoyLbPolicy: 'override_host',
  envoyUpstreamHttp2: false,
});

type Scored = PrioritizedEndpointList['endpoints'][number];
const scored = (id: string, weight: number, over: Partial<Scored> = {}): Scored => ({
  endpointId: id,
  score: weight,
  weight,
  address: `10.1.0.${id.charCodeAt(id.length - 1) % 250}`,
  port: 9000,
  state: EndpointState.ENDPOINT_STATE_ACTIVE,
  locality: { region: 'eu', zone: 'eu-1', subZone: '' },
  ...over,
});
const list = (service: string, version: number, endpoints: Scored[]): PrioritizedEndpointList => ({
  service,
  version,
  endpoints,
});

/** Decodes the ClusterLoadAssignment inside an encoded resource. */
function decodeCla(framed: Uint8Array): {
  cluster_name: string;
  endpoints: Array<{
    locality: { region?: string; zone?: string; sub_zone: string };
    lb_endpoints: Array<{
      endpoint: { address: { socket_address: { address: string; port_value: number } } };
      health_status: string;
      load_balancing_weight: number;
    }>;
    load_balancing_weight: number;
  }>;
} {
  const response = messageType(protos, 'envoy.service.discovery.v3.DiscoveryResponse');
  const decoded = fromBinary(response, framed) as unknown as {
    resources: Array<{ value: Uint8Array }>;
  };
  const cla = messageType(protos, 'envoy.config.endpoint.v3.ClusterLoadAssignment');
  return toJson(cla, fromBinary(cla, decoded.resources[0]!.value), {
    useProtoFieldName: true,
  }) as ReturnType<typeof decodeCla>;
}

describe('client kind rule', () => {
  const rule = {
    metadataKey: 'augur.client',
    envoyUserAgents: ['envoy'],
    defaultKind: 'grpc' as const,
  };
  it('reads metadata first, then the user agent, then the default', () => {
    expect(clientKindOf({ userAgentName: 'envoy' }, rule)).toBe('envoy');
    expect(clientKindOf({ userAgentName: 'Envoy' }, rule)).toBe('envoy');
    expect(clientKindOf({ userAgentName: 'gRPC Node Pure JS' }, rule)).toBe('grpc');
    expect(clientKindOf({ userAgentName: 'grpc-java' }, rule)).toBe('grpc');
    expect(
      clientKindOf({ userAgentName: 'envoy', metadata: { 'augur.client': 'grpc' } }, rule),
    ).toBe('grpc');
    expect(
      clientKindOf({ userAgentName: 'gRPC Go', metadata: { 'augur.client': 'envoy' } }, rule),
    ).toBe('envoy');
    expect(clientKindOf({ metadata: { 'augur.client': 'nonsense' } }, rule)).toBe('grpc');
    expect(clientKindOf(undefined, { ...rule, defaultKind: 'envoy' })).toBe('envoy');
  });
});

describe('resource builders', () => {
  it('publishes serving endpoints only, with shares renormalised among them', () => {
    const { endpoints, unresolved } = publishedEndpoints(
      list('s', 1, [
        scored('a', 0.3),
        scored('b', 0.1),
        scored('c', 0, { state: EndpointState.ENDPOINT_STATE_STALE }),
        scored('d', 0.6, { state: EndpointState.ENDPOINT_STATE_FAILING }),
        scored('e', 0, { state: EndpointState.ENDPOINT_STATE_DRAINING }),
        scored('f', 0.2, { address: 'backend.internal' }),
      ]),
    );
    expect(endpoints.map((e) => [e.id, Number(e.share.toFixed(3))])).toEqual([
      ['a', 0.75],
      ['b', 0.25],
    ]);
    expect(unresolved).toEqual(['f']);
    // No data yet (every weight 0): equal shares, not an empty assignment.
    const fresh = publishedEndpoints(list('s', 1, [scored('a', 0), scored('b', 0)])).endpoints;
    expect(fresh.map((e) => e.share)).toEqual([0.5, 0.5]);
  });

  it('scales shares to integer weights of at least 1', () => {
    expect(weightOf(0.5, 10_000)).toBe(5000);
    expect(weightOf(0, 10_000)).toBe(1);
    expect(weightOf(0.00001, 10_000)).toBe(1);
    expect(weightOf(1, 10_000)).toBe(10_000);
  });

  it('writes one locality per endpoint, with the weight on both locality and endpoint (decoded with Envoy protos)', () => {
    const eps: PublishedEndpoint[] = [
      { id: 'a', ip: '10.0.0.1', port: 8080, share: 0.7, region: 'eu', zone: 'eu-1', subZone: '' },
      { id: 'b', ip: '::1', port: 8081, share: 0.3, region: 'eu', zone: 'eu-1', subZone: 'rack7' },
    ];
    const r = builder.endpoints('svc', eps);
    expect(r.typeUrl).toBe(TypeUrl.ClusterLoadAssignment);
    const cla = decodeCla(
      new Snapshot([r]).get(TypeUrl.ClusterLoadAssignment).response([]).message.bytes,
    );
    expect(cla.cluster_name).toBe('svc');
    expect(cla.endpoints.map((e) => e.locality)).toEqual([
      { region: 'eu', zone: 'eu-1', sub_zone: 'a' },
      { region: 'eu', zone: 'eu-1', sub_zone: 'rack7/b' },
    ]);
    expect(cla.endpoints.map((e) => e.load_balancing_weight)).toEqual([7000, 3000]);
    expect(cla.endpoints.map((e) => e.lb_endpoints[0]!.load_balancing_weight)).toEqual([
      7000, 3000,
    ]);
    expect(cla.endpoints.map((e) => e.lb_endpoints[0]!.health_status)).toEqual([
      'HEALTHY',
      'HEALTHY',
    ]);
    expect(cla.endpoints.map((e) => e.lb_endpoints[0]!.endpoint.address.socket_address)).toEqual([
      { address: '10.0.0.1', port_value: 8080 },
      { address: '::1', port_value: 8081 },
    ]);
    // Same content, same bytes and hash: the version does not move.
    expect(builder.endpoints('svc', eps).hash).toBe(r.hash);
  });

  it("reuses an endpoint's bytes only while its place is the same, per service", () => {
    const b = new ResourceBuilder(protos, {
      weightScale: 10_000,
      connectTimeout: 1,
      envoyLbPolicy: 'override_host',
      envoyUpstreamHttp2: false,
    });
    const ep = (ip: string, zone = 'z'): PublishedEndpoint => ({
      id: 'ep-1',
      ip,
      port: 80,
      share: 1,
      region: 'r',
      zone,
      subZone: '',
    });
    const addresses = (r: ReturnType<ResourceBuilder['endpoints']>) =>
      decodeCla(
        new Snapshot([r]).get(TypeUrl.ClusterLoadAssignment).response([]).message.bytes,
      ).endpoints.map((e) => [
        e.lb_endpoints[0]!.endpoint.address.socket_address.address,
        e.locality.zone,
      ]);
    b.endpoints('a', [ep('10.0.0.1')]);
    // The same id in another service, elsewhere: its own bytes.
    expect(addresses(b.endpoints('b', [ep('10.9.9.9')]))).toEqual([['10.9.9.9', 'z']]);
    expect(addresses(b.endpoints('a', [ep('10.0.0.1')]))).toEqual([['10.0.0.1', 'z']]);
    // It moves (new address, then new zone): new bytes each time.
    expect(addresses(b.endpoints('a', [ep('10.0.0.2')]))).toEqual([['10.0.0.2', 'z']]);
    expect(addresses(b.endpoints('a', [ep('10.0.0.2', 'y')]))).toEqual([['10.0.0.2', 'y']]);
    // Forgotten with its service, and built anew when it comes back.
    b.forget('a');
    expect(addresses(b.endpoints('a', [ep('10.0.0.3')]))).toEqual([['10.0.0.3', 'z']]);
  });
});

describe('snapshots and the cache', () => {
  const a1 = builder.cluster('a', 'grpc');
  const b1 = builder.cluster('b', 'grpc');
  const eA = builder.endpoints('a', [
    { id: 'x', ip: '10.0.0.1', port: 1, share: 1, region: '', zone: '', subZone: '' },
  ]);

  it('names content by version: same resources in any order, same version; any change, another', () => {
    expect(new Snapshot([a1, b1]).version(TypeUrl.Cluster)).toBe(
      new Snapshot([b1, a1]).version(TypeUrl.Cluster),
    );
    expect(new Snapshot([a1]).version(TypeUrl.Cluster)).not.toBe(
      new Snapshot([a1, b1]).version(TypeUrl.Cluster),
    );
    expect(new Snapshot([a1, eA]).version(TypeUrl.Cluster)).toBe(
      new Snapshot([a1]).version(TypeUrl.Cluster),
    );
  });

  it('answers a watch at once when the version differs, later when it does not, never after cancel', () => {
    const cache = new SnapshotCache();
    const got: WatchResponse[] = [];
    const snap = new Snapshot([a1]);
    cache.setSnapshot('g', snap);
    cache.createWatch('g', { typeUrl: TypeUrl.Cluster, resourceNames: [], versionInfo: '' }, (r) =>
      got.push(r),
    );
    expect(got).toHaveLength(1);
    expect(cache.openWatchCount()).toBe(0);

    cache.createWatch(
      'g',
      { typeUrl: TypeUrl.Cluster, resourceNames: [], versionInfo: snap.version(TypeUrl.Cluster) },
      (r) => got.push(r),
    );
    expect(got).toHaveLength(1);
    expect(cache.openWatchCount()).toBe(1);
    cache.setSnapshot('g', new Snapshot([a1, b1]));
    expect(got).toHaveLength(2);
    expect(got[1]!.resources.map((r) => r.name)).toEqual(['a', 'b']);

    const cancel = cache.createWatch(
      'g',
      { typeUrl: TypeUrl.Cluster, resourceNames: [], versionInfo: got[1]!.version },
      (r) => got.push(r),
    );
    cancel();
    cache.setSnapshot('g', new Snapshot([b1]));
    expect(got).toHaveLength(2);
    expect(cache.openWatchCount()).toBe(0);
  });

  it('does not resend a rejected version, and shares one response body between watches', () => {
    const cache = new SnapshotCache();
    const v1 = new Snapshot([a1]);
    const v2 = new Snapshot([a1, b1]);
    cache.setSnapshot('g', v2);
    const got: WatchResponse[] = [];
    const req = {
      typeUrl: TypeUrl.Cluster,
      resourceNames: [],
      versionInfo: v1.version(TypeUrl.Cluster),
      rejectedVersion: v2.version(TypeUrl.Cluster),
    };
    cache.createWatch('g', req, (r) => got.push(r));
    expect(got).toHaveLength(0);
    cache.setSnapshot('g', new Snapshot([b1]));
    expect(got).toHaveLength(1);
    // Two streams asking the same thing get the very same bytes (marshalled once).
    const shared: WatchResponse[] = [];
    for (let i = 0; i < 2; i++) {
      cache.createWatch(
        'g',
        { typeUrl: TypeUrl.Cluster, resourceNames: [], versionInfo: '' },
        (r) => shared.push(r),
      );
    }
    expect(shared).toHaveLength(2);
    expect(shared[0]!.message).toBe(shared[1]!.message);
  });
});

/** An in-memory PrioritizedListSource the test writes lists into (the LPS's role). */
class ListBoard implements PrioritizedListSource {
  private readonly lists = new Map<string, PrioritizedEndpointList>();
  private readonly listeners = new Set<(l: PrioritizedEndpointList) => void>();
  get(service: string): PrioritizedEndpointList | undefined {
    return this.lists.get(service);
  }
  services(): string[] {
    return [...this.lists.keys()];
  }
  subscribe(listener: (l: PrioritizedEndpointList) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  put(l: PrioritizedEndpointList): void {
    if (l.endpoints.length === 0) this.lists.delete(l.service);
    else this.lists.set(l.service, l);
    for (const f of this.listeners) f(l);
  }
}

describe('publisher', () => {
  const publishers: XdsPublisher[] = [];
  afterEach(() => {
    for (const p of publishers.splice(0)) p.stop();
  });
  const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));

  function start(over: { debounceMs?: number; warmupMs?: number } = {}) {
    const board = new ListBoard();
    const cache = new SnapshotCache();
    const pushes: string[][] = [];
    const publisher = new XdsPublisher({
      source: board,
      cache,
      builder,
      debounceMs: over.debounceMs ?? 30,
      warmupMs: over.warmupMs ?? 0,
      hysteresis: 0.02,
      logger: silentLogger,
      onPublish: (s) => pushes.push([...s]),
    });
    publishers.push(publisher);
    return { board, cache, publisher, pushes };
  }
  const shares = (p: XdsPublisher, s: string): Record<string, number> =>
    Object.fromEntries(
      (p.published(s)?.endpoints ?? []).map((e) => [e.id, Number(e.share.toFixed(3))]),
    );

  it('debounces weight changes and skips those under the hysteresis threshold, letting drift add up', async () => {
    const { board, publisher } = start({ debounceMs: 40 });
    publisher.start();
    board.put(list('s', 1, [scored('a', 0.5), scored('b', 0.5)]));
    await tick(5);
    expect(shares(publisher, 's')).toEqual({ a: 0.5, b: 0.5 }); // a new service is not debounced

    board.put(list('s', 2, [scored('a', 0.6), scored('b', 0.4)]));
    await tick(5);
    expect(shares(publisher, 's')).toEqual({ a: 0.5, b: 0.5 }); // waiting out the debounce
    await tick(60);
    expect(shares(publisher, 's')).toEqual({ a: 0.6, b: 0.4 });

    board.put(list('s', 3, [scored('a', 0.61), scored('b', 0.39)]));
    await tick(60);
    expect(publisher.published('s')!.listVersion).toBe(2); // 0.01 < 0.02: skipped
    board.put(list('s', 4, [scored('a', 0.625), scored('b', 0.375)]));
    await tick(60);
    expect(publisher.published('s')!.listVersion).toBe(4); // 0.025 from what was pushed
  });

  it('with debounce 0, gathers the lists of one turn of the event loop (a scoring pass) into one snapshot', async () => {
    const { board, publisher, pushes } = start({ debounceMs: 0 });
    publisher.start();
    pushes.length = 0; // the first (empty) snapshot, at start
    board.put(list('s', 1, [scored('a', 0.5), scored('b', 0.5)]));
    board.put(list('t', 1, [scored('c', 1)]));
    await tick(5);
    expect(pushes).toEqual([['s', 't']]);
    // A scoring pass: weights of both services move in one turn; one snapshot, no timer.
    board.put(list('s', 2, [scored('a', 0.7), scored('b', 0.3)]));
    board.put(list('t', 2, [scored('c', 1)]));
    await new Promise((r) => setImmediate(r));
    expect(pushes).toEqual([['s', 't'], ['s']]); // t's only endpoint keeps all of t's traffic
    expect(shares(publisher, 's')).toEqual({ a: 0.7, b: 0.3 });
  });

  it('pushes a stale or failing endpoint out at once, without waiting for the debounce', async () => {
    const { board, publisher } = start({ debounceMs: 10_000 });
    publisher.start();
    board.put(list('s', 1, [scored('a', 0.5), scored('b', 0.5)]));
    await tick(5);
    board.put(
      list('s', 2, [scored('a', 1), scored('b', 0, { state: EndpointState.ENDPOINT_STATE_STALE })]),
    );
    await tick(5);
    expect(shares(publisher, 's')).toEqual({ a: 1 });
    board.put(
      list('s', 3, [
        scored('a', 0, { state: EndpointState.ENDPOINT_STATE_FAILING }),
        scored('b', 0, { state: EndpointState.ENDPOINT_STATE_STALE }),
      ]),
    );
    await tick(5);
    expect(shares(publisher, 's')).toEqual({}); // the cluster stays, with no endpoints
  });

  it('removes a service whose list is empty, and publishes nothing during the warm-up', async () => {
    const { board, publisher, cache } = start({ warmupMs: 80 });
    board.put(list('s', 1, [scored('a', 1)]));
    publisher.start();
    board.put(list('t', 1, [scored('b', 1)]));
    await tick(20);
    expect(cache.getSnapshot('grpc')).toBeUndefined();
    await tick(100);
    expect([...cache.getSnapshot('grpc')!.get(TypeUrl.Cluster).resources.keys()]).toEqual([
      's',
      't',
    ]);
    expect([...cache.getSnapshot('grpc')!.get(TypeUrl.Listener).resources.keys()]).toEqual([
      's',
      't',
    ]);
    expect([...cache.getSnapshot('envoy')!.get(TypeUrl.Listener).resources.keys()]).toEqual([]);
    board.put(list('t', 2, []));
    await tick(5);
    expect([...cache.getSnapshot('grpc')!.get(TypeUrl.Cluster).resources.keys()]).toEqual(['s']);
  });

  it('publishes the IP the LPS resolved a host name to, and leaves a name without one out', async () => {
    const { board, publisher } = start();
    publisher.start();
    board.put(list('s', 1, [scored('a', 1, { address: 'backend.internal', ip: '' })]));
    await tick(5);
    expect(publisher.published('s')!.endpoints).toEqual([]);
    board.put(list('s', 2, [scored('a', 1, { address: 'backend.internal', ip: '10.0.0.7' })]));
    for (let i = 0; i < 100 && !publisher.published('s')?.endpoints.length; i++) await tick(20);
    expect(publisher.published('s')!.endpoints.map((e) => e.ip)).toEqual(['10.0.0.7']);
  });
});
