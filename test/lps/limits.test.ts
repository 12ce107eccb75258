import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LoadPredictionClient,
  LoadPredictionService,
  PrioritizedEndpointList,
  WatchPrioritizedEndpointsRequest,
  type ListEndpointsResponse,
} from '../../src/gen/augur/v1/load_prediction.js';
import {
  TelemetryClient,
  type AgentMessage,
  type ControlMessage,
} from '../../src/gen/augur/v1/telemetry.js';
import { loadConfig } from '../../src/serve/config.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';
import { RawAgentStream, makeSample } from '../support/raw-agent.js';
import { connect, framed } from '../support/raw-grpc.js';

let plane: TestPlane | undefined;
const closers: Array<() => void> = [];

afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await plane?.dispose();
  plane = undefined;
});

function agent(): RawAgentStream {
  const s = new RawAgentStream(plane!.grpcAddress);
  closers.push(() => s.close());
  return s;
}

/** An agent whose hello was taken (the LPS answered with its config). */
async function accepted(id: string, service = 'svc'): Promise<RawAgentStream> {
  const s = agent();
  s.hello({ endpointId: id, service });
  await s.waitMessage((m) => m.config !== undefined);
  return s;
}

/** The value of a counter of the plane's registry for these labels (0 if never counted). */
async function counter(name: string, labels: Record<string, string>): Promise<number> {
  const metric = plane!.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const found = values.find((v) =>
    Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want),
  );
  return found?.value ?? 0;
}

/** The value of a gauge of the plane's registry (0 if never set). */
async function gauge(name: string): Promise<number> {
  const metric = plane!.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  return values[0]?.value ?? 0;
}

/** A Report stream on a given client (so on that client's connection), with its end status. */
class Stream {
  status: grpc.StatusObject | undefined;
  readonly received: ControlMessage[] = [];
  private readonly call: grpc.ClientDuplexStream<AgentMessage, ControlMessage>;

  /** `id` undefined: the stream is opened and sends nothing. */
  constructor(client: InstanceType<typeof TelemetryClient>, id: string | undefined) {
    this.call = client.report();
    this.call.on('data', (m: ControlMessage) => this.received.push(m));
    this.call.on('status', (s: grpc.StatusObject) => (this.status = s));
    this.call.on('error', () => undefined);
    closers.push(() => this.call.cancel());
    if (id === undefined) return;
    this.call.write({
      hello: {
        endpointId: id,
        service: 'svc',
        address: '127.0.0.1',
        port: 9000,
        labels: {},
        agentVersion: 'test',
      },
    });
  }

  /** Resolves with the stream's status once it ended. */
  async ended(): Promise<grpc.StatusObject> {
    return waitFor(() => this.status, 5000, 'the stream to end');
  }

  /** Resolves once the stream is taken (config received) or ended; says which. */
  async outcome(): Promise<'taken' | grpc.StatusObject> {
    return waitFor(
      () => this.status ?? (this.received.some((m) => m.config) ? ('taken' as const) : undefined),
      5000,
      'the stream to be taken or ended',
    );
  }

  cancel(): void {
    this.call.cancel();
  }
}

/** A Watch stream, and how it ended (undefined while it is open). */
interface Watch {
  call: grpc.ClientReadableStream<PrioritizedEndpointList>;
  ended: grpc.StatusObject | undefined;
}

/** Opens Watch streams on one LoadPrediction client of the plane. */
function watcher(): () => Watch {
  const client = new LoadPredictionClient(plane!.grpcAddress, grpc.credentials.createInsecure());
  closers.push(() => client.close());
  return () => {
    const call = client.watchPrioritizedEndpoints({ services: [] });
    const w: Watch = { call, ended: undefined };
    call.on('data', () => undefined);
    call.on('error', () => undefined);
    call.on('status', (st: grpc.StatusObject) => (w.ended = st));
    closers.push(() => call.cancel());
    return w;
  };
}

function telemetryClient(ownConnection: boolean): InstanceType<typeof TelemetryClient> {
  // A local subchannel pool gives the client a connection of its own; otherwise grpc-js shares
  // one between clients of the same address.
  const c = new TelemetryClient(
    plane!.grpcAddress,
    grpc.credentials.createInsecure(),
    ownConnection ? { 'grpc.use_local_subchannel_pool': 1 } : {},
  );
  closers.push(() => c.close());
  return c;
}

type Callback<Res> = (err: grpc.ServiceError | null, res: Res) => void;

function unary<Res>(call: (cb: Callback<Res>) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => call((err, res) => (err ? reject(err) : resolve(res))));
}

describe('LPS limits', () => {
  it('refuses a new endpoint past lps.maxEndpoints with RESOURCE_EXHAUSTED, and counts it', async () => {
    plane = await startTestPlane({ lps: { maxEndpoints: 3 } });
    const first = await accepted('a');
    await accepted('b');
    await accepted('c');
    const flood = agent();
    flood.hello({ endpointId: 'd' });
    const status = await flood.waitStatus();
    expect(status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(status.details).toContain('lps.maxEndpoints 3');
    expect(status.details).toContain('"d"');
    expect(plane.lps.store.get('d')).toBeUndefined();
    expect(await counter('augur_lps_limit_refusals_total', { limit: 'max_endpoints' })).toBe(1);

    // An endpoint the LPS holds is always taken back: its agent reconnecting.
    first.close();
    await waitFor(() => !plane!.lps.telemetry.isLive('a'), 5000, 'a to disconnect');
    await accepted('a');
    expect(plane.lps.store.size).toBe(3);
  });

  it('refuses an endpoint past lps.maxEndpointsPerService, and takes it in another service', async () => {
    plane = await startTestPlane({ lps: { maxEndpointsPerService: 2 } });
    await accepted('a1', 'a');
    await accepted('a2', 'a');
    const third = agent();
    third.hello({ endpointId: 'a3', service: 'a' });
    const status = await third.waitStatus();
    expect(status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(status.details).toContain('service "a" holds 2 endpoints');
    expect(status.details).toContain('lps.maxEndpointsPerService 2');
    await accepted('b1', 'b');
    expect(
      await counter('augur_lps_limit_refusals_total', { limit: 'max_endpoints_per_service' }),
    ).toBe(1);
  });

  it('refuses streams past lps.maxStreamsPerConnection on one connection, and takes one after another ends', async () => {
    plane = await startTestPlane({ lps: { maxStreamsPerConnection: 2 } });
    const client = telemetryClient(true);
    const one = new Stream(client, 'c1');
    const two = new Stream(client, 'c2');
    expect(await one.outcome()).toBe('taken');
    expect(await two.outcome()).toBe('taken');
    const three = new Stream(client, 'c3');
    const refused = await three.outcome();
    expect(refused).not.toBe('taken');
    expect((refused as grpc.StatusObject).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect((refused as grpc.StatusObject).details).toContain('lps.maxStreamsPerConnection 2');
    expect(
      await counter('augur_lps_limit_refusals_total', { limit: 'max_streams_per_connection' }),
    ).toBe(1);
    // Another connection from the same host is not this connection.
    expect(await new Stream(telemetryClient(true), 'c4').outcome()).toBe('taken');
    one.cancel();
    await waitFor(() => !plane!.lps.telemetry.isLive('c1'), 5000, 'c1 to end');
    expect(await new Stream(client, 'c5').outcome()).toBe('taken');
  });

  it('refuses streams past lps.maxStreams in all when they start, before any message, and takes one after another ends', async () => {
    plane = await startTestPlane({ lps: { maxStreams: 2 } });
    const open = () => gauge('augur_lps_agent_streams');
    // Each on a connection of its own: neither the per-connection nor the per-client limit is hit.
    const taken = new Stream(telemetryClient(true), 't1');
    expect(await taken.outcome()).toBe('taken');
    // A stream that never says hello holds its place too.
    const silent = new Stream(telemetryClient(true), undefined);
    await waitFor(async () => (await open()) === 2, 5000, 'two streams open');
    // Refused as it starts, without a message sent.
    const refused = await new Stream(telemetryClient(true), undefined).ended();
    expect(refused.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(refused.details).toContain('the LPS has 2 Report streams open');
    expect(refused.details).toContain('lps.maxStreams 2');
    const withHello = await new Stream(telemetryClient(true), 't2').outcome();
    expect((withHello as grpc.StatusObject).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(plane.lps.store.get('t2')).toBeUndefined();
    expect(await counter('augur_lps_limit_refusals_total', { limit: 'max_streams' })).toBe(2);
    expect(await open()).toBe(2);
    // A refused stream holds nothing; one that ends frees its place.
    silent.cancel();
    await waitFor(async () => (await open()) === 1, 5000, 'the silent stream to be closed');
    expect(await new Stream(telemetryClient(true), 't3').outcome()).toBe('taken');
    expect(plane.lps.telemetry.isLive('t1')).toBe(true);
  });

  it('refuses Watch streams past lps.maxWatchStreams when they start, and takes one after another ends', async () => {
    plane = await startTestPlane({ lps: { maxWatchStreams: 2 } });
    const watch = watcher();
    const first = watch();
    const second = watch();
    await waitFor(() => plane!.lps.api.openWatches === 2, 5000, 'two watches open');
    const third = watch();
    const refused = await waitFor(() => third.ended, 5000, 'the third watch to be refused');
    expect(refused.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(refused.details).toContain('lps.maxWatchStreams 2');
    expect(await counter('augur_lps_limit_refusals_total', { limit: 'max_watch_streams' })).toBe(1);
    expect(plane.lps.api.openWatches).toBe(2);
    expect(first.ended).toBeUndefined();
    expect(second.ended).toBeUndefined();
    // One that ends frees its place.
    first.call.cancel();
    await waitFor(() => plane!.lps.api.openWatches === 1, 5000, 'the cancelled watch to be let go');
    const fourth = watch();
    await waitFor(() => plane!.lps.api.openWatches === 2, 5000, 'the fourth watch open');
    expect(fourth.ended).toBeUndefined();
  });

  it('refuses Watch streams past lps.maxWatchStreamsPerClient from one client when they start, and takes one after another is cancelled or its connection reset', async () => {
    plane = await startTestPlane({ lps: { maxWatchStreamsPerClient: 2 } });
    const watch = watcher();
    const first = watch();
    // The second on an HTTP/2 connection of its own: still client 127.0.0.1.
    const session = await connect(plane.grpcAddress);
    closers.push(() => session.destroy());
    session
      .request({
        ':method': 'POST',
        ':path': LoadPredictionService.watchPrioritizedEndpoints.path,
        'content-type': 'application/grpc',
        te: 'trailers',
      })
      .on('error', () => undefined)
      .end(framed(WatchPrioritizedEndpointsRequest.encode({ services: [] }).finish()));
    await waitFor(() => plane!.lps.api.openWatches === 2, 5000, 'two watches open');

    // Every client here comes from 127.0.0.1: the third is refused as it starts.
    const third = watch();
    const refused = await waitFor(() => third.ended, 5000, 'the third watch to be refused');
    expect(refused.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(refused.details).toBe(
      'client 127.0.0.1 has 2 Watch streams open, the limit (lps.maxWatchStreamsPerClient 2); try again later',
    );
    expect(
      await counter('augur_lps_limit_refusals_total', { limit: 'max_watch_streams_per_client' }),
    ).toBe(1);
    expect(await counter('augur_lps_limit_refusals_total', { limit: 'max_watch_streams' })).toBe(0);
    expect(plane.lps.api.openWatches).toBe(2);
    expect(first.ended).toBeUndefined();

    // A connection reset gives its place back, as does a cancelled watch.
    session.destroy();
    await waitFor(() => plane!.lps.api.openWatches === 1, 5000, 'the reset watch to be let go');
    const fourth = watch();
    await waitFor(() => plane!.lps.api.openWatches === 2, 5000, 'the fourth watch open');
    first.call.cancel();
    await waitFor(() => plane!.lps.api.openWatches === 1, 5000, 'the cancelled watch to be let go');
    const fifth = watch();
    await waitFor(() => plane!.lps.api.openWatches === 2, 5000, 'the fifth watch open');
    expect(fourth.ended).toBeUndefined();
    expect(fifth.ended).toBeUndefined();
    // A client with no Watch open holds no entry.
    fourth.call.cancel();
    fifth.call.cancel();
    await waitFor(() => plane!.lps.api.openWatches === 0, 5000, 'every watch to be let go');
    expect(plane.lps.api.watchingClients).toBe(0);
  });

  it('announces HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS above lps.maxStreamsPerConnection', async () => {
    const announced = async (): Promise<number | undefined> => {
      const session = http2.connect(`http://${plane!.grpcAddress}`);
      try {
        return await new Promise<number | undefined>((resolve, reject) => {
          session.once('remoteSettings', (s) => resolve(s.maxConcurrentStreams));
          session.once('error', reject);
        });
      } finally {
        session.destroy();
      }
    };
    plane = await startTestPlane();
    expect(await announced()).toBe(2000);
    await plane.dispose();
    plane = await startTestPlane({ lps: { maxStreamsPerConnection: 5000 } });
    expect(await announced()).toBe(6000);
  });

  it('refuses streams past lps.maxStreamsPerClient across its connections', async () => {
    plane = await startTestPlane({ lps: { maxStreamsPerClient: 2 } });
    expect(await new Stream(telemetryClient(true), 'p1').outcome()).toBe('taken');
    expect(await new Stream(telemetryClient(true), 'p2').outcome()).toBe('taken');
    const refused = await new Stream(telemetryClient(true), 'p3').outcome();
    expect((refused as grpc.StatusObject).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect((refused as grpc.StatusObject).details).toContain('client 127.0.0.1 has 2');
    expect((refused as grpc.StatusObject).details).toContain('lps.maxStreamsPerClient 2');
    expect(
      await counter('augur_lps_limit_refusals_total', { limit: 'max_streams_per_client' }),
    ).toBe(1);
  });

  it('refuses oversized labels, too many labels, a long locality and a huge id with a short status', async () => {
    plane = await startTestPlane();
    const cases: Array<[Parameters<RawAgentStream['hello']>[0], string]> = [
      [{ endpointId: 'l1', labels: { team: 'x'.repeat(900_000) } }, 'label "team"\'s value'],
      [{ endpointId: 'l2', labels: { ['k'.repeat(200)]: 'v' } }, 'a label key is 1-128'],
      [
        {
          endpointId: 'l3',
          labels: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])),
        },
        'at most 32 labels, got 33',
      ],
      [
        { endpointId: 'l4', locality: { region: 'r'.repeat(500), zone: '', subZone: '' } },
        'locality.region is at most 128',
      ],
      [{ endpointId: 'i'.repeat(900_000) }, 'endpoint_id must be 1-128 characters'],
      [{ endpointId: 'l5', service: 's'.repeat(300) }, 'service must be 1-128 characters'],
    ];
    for (const [hello, says] of cases) {
      const s = agent();
      s.hello(hello);
      const status = await s.waitStatus();
      expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(status.details).toContain(says);
      // The client's value is quoted in part, never echoed whole.
      expect(status.details.length).toBeLessThan(400);
    }
    expect(plane.lps.store.size).toBe(0);
  });

  it('refuses samples past the stream rate with RATE_LIMITED and keeps the stream', async () => {
    plane = await startTestPlane({ lps: { maxSamplesPerSecond: 2, sampleBurst: 5 } });
    const s = await accepted('r1');
    const t0 = Date.now() - 10_000;
    s.send({
      batch: {
        samples: Array.from({ length: 10 }, (_, i) =>
          makeSample({ sequence: i + 1, timestamp: new Date(t0 + i * 100) }),
        ),
      },
    });
    const error = await s.waitMessage((m) => m.error?.code === 'RATE_LIMITED');
    expect(error.error!.sequence).toBe(6);
    expect(error.error!.message).toContain('5 sample(s) from sequence 6 refused');
    expect(error.error!.message).toContain('lps.maxSamplesPerSecond (2)');
    await s.waitMessage((m) => m.ack?.lastSequence === 5);
    expect(plane.lps.store.get('r1')!.samplesStored).toBe(5);
    expect(
      await counter('augur_lps_limit_refusals_total', { limit: 'max_samples_per_second' }),
    ).toBe(5);
    expect(
      await counter('augur_lps_samples_rejected_total', {
        reason: 'RATE_LIMITED',
        field: 'sample',
      }),
    ).toBe(5);
    // The stream stays open: once the bucket refills, the refused samples are taken.
    await waitFor(
      () => {
        if (s.received.some((m) => m.ack?.lastSequence === 6)) return true;
        s.sample({ sequence: 6, timestamp: new Date(t0 + 500) });
        return false;
      },
      10_000,
      'sequence 6 to be taken once the bucket refilled',
    );
    expect(s.status).toBeUndefined();
    expect(plane.lps.telemetry.isLive('r1')).toBe(true);
  });

  it('forgets an endpoint that never sent a sample lps.forgetUnsampledAfter after its stream ended', async () => {
    plane = await startTestPlane({
      lps: { forgetUnsampledAfter: 0.3, scoreInterval: 0.1 },
    });
    const hello = await accepted('hello-only');
    const open = await accepted('open-unsampled');
    const sampled = await accepted('sampled');
    sampled.sample({ sequence: 1 });
    await sampled.waitMessage((m) => m.ack?.lastSequence === 1);
    hello.close();
    sampled.close();
    await waitFor(() => !plane!.lps.store.get('hello-only'), 10_000, 'hello-only to be forgotten');
    // Checked in the same pass: one with a sample is kept for lps.forgetAfter (an hour), and one
    // whose stream is open is never forgotten.
    expect(plane.lps.store.get('sampled')).toBeDefined();
    expect(plane.lps.store.get('open-unsampled')).toBeDefined();
    expect(await counter('augur_lps_endpoints_forgotten_total', { reason: 'unsampled' })).toBe(1);
    open.close();
  });

  it('leaves the largest endpoints out of a ListEndpoints answer past lps.maxReplyBytes, never the service', async () => {
    const maxReplyBytes = 64 << 10;
    plane = await startTestPlane({ lps: { maxReplyBytes } });
    const big = Object.fromEntries(
      Array.from({ length: 32 }, (_, i) => [`k${i}`.padEnd(100, 'k'), 'v'.repeat(256)]),
    );
    // ~12 KB each: 12 of them pass 64 KiB.
    for (let i = 0; i < 12; i++) {
      const s = agent();
      s.hello({ endpointId: `big-${i}`, labels: big });
      await s.waitMessage((m) => m.config !== undefined);
    }
    await accepted('small-1');
    await accepted('small-2');
    const c = new LoadPredictionClient(plane.grpcAddress, grpc.credentials.createInsecure());
    closers.push(() => c.close());
    const res = await unary<ListEndpointsResponse>((cb) => c.listEndpoints({ service: 'svc' }, cb));
    const ids = res.endpoints.map((e) => e.endpointId);
    expect(ids).toContain('small-1');
    expect(ids).toContain('small-2');
    const keptBig = ids.filter((id) => id.startsWith('big-')).length;
    expect(keptBig).toBeGreaterThan(0);
    expect(keptBig).toBeLessThan(12);
    const dropped = await counter('augur_lps_reply_endpoints_dropped_total', {
      reply: 'list_endpoints',
    });
    expect(dropped).toBe(12 - keptBig);
    // The list without labels fits: every endpoint is in it.
    expect(plane.lps.lists.get('svc')?.endpoints.length).toBe(14);
  });

  it('leaves the largest endpoints out of a prioritized list past lps.maxReplyBytes, keeping the rest of the service', async () => {
    const maxReplyBytes = 64 << 10;
    plane = await startTestPlane({ lps: { maxReplyBytes, hostnames: { resolve: false } } });
    const long = (c: string) => c.repeat(128);
    // ~650 bytes each on the wire: 130 of them pass 64 KiB.
    for (let i = 0; i < 130; i++) {
      plane.lps.store.upsertFromHello(
        {
          endpointId: `wide-${String(i).padStart(3, '0')}`.padEnd(128, 'x'),
          service: 'svc',
          address: '127.0.0.1',
          port: 9000 + i,
          labels: {},
          agentVersion: 'test',
          locality: { region: long('r'), zone: long('z'), subZone: long('s') },
        },
        Date.now(),
      );
    }
    plane.lps.store.upsertFromHello(
      {
        endpointId: 'narrow',
        service: 'svc',
        address: '127.0.0.1',
        port: 8000,
        labels: {},
        agentVersion: 'test',
      },
      Date.now(),
    );
    const list = await waitFor(
      () => {
        const l = plane!.lps.lists.get('svc');
        return l && l.endpoints.length > 0 && l;
      },
      5000,
      'the list of svc',
    );
    const ids = list.endpoints.map((e) => e.endpointId);
    expect(ids).toContain('narrow');
    expect(ids.length).toBeLessThan(131);
    expect(ids.length).toBeGreaterThan(50);
    expect(PrioritizedEndpointList.encode(list).finish().length).toBeLessThanOrEqual(maxReplyBytes);
    await waitFor(
      async () =>
        (await counter('augur_lps_reply_endpoints_dropped_total', { reply: 'list' })) ===
        131 - ids.length,
      5000,
      'the dropped endpoints to be counted',
    );
  });
});

describe('lps.maxWatchStreamsPerClient in the configuration', () => {
  it('defaults to 100 and refuses a value that is not a positive integer, naming the setting', () => {
    expect(loadConfig({ env: {}, flags: {} }).lps.maxWatchStreamsPerClient).toBe(100);
    for (const bad of [0, -1, 2.5, '10']) {
      expect(() =>
        loadConfig({ env: {}, flags: { lps: { maxWatchStreamsPerClient: bad } } }),
      ).toThrow(/invalid configuration: lps\.maxWatchStreamsPerClient: /);
    }
  });
});
