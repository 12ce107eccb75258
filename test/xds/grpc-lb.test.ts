/**
 * augur's per-call picker in a real proxyless gRPC client: `augur serve` (fed by agents over the
 * Telemetry API) publishes its weights over xDS, a @grpc/grpc-js-xds client dialling `xds:///S`
 * with `registerAugurBalancer()` called routes each call by the expected-delay rule, over three
 * real gRPC backends on loopback, one of them slow. Runs in its own forked process (vitest's
 * forks pool): GRPC_XDS_BOOTSTRAP_CONFIG and the LB policy registry are process-global.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerAugurBalancer } from '../../src/grpc-lb/index.js';
import { EwmaScorer } from '../../src/lps/ewma-scorer.js';
import { RawAdsClient } from '../../src/xds/ads-client.js';
import { TypeUrl } from '../../src/xds/types.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';
import { FeedingAgent } from '../support/feeding-agent.js';
import { grpcXdsClient } from '../support/xds-client.js';

const SERVICE = 'S';
const WHO = '/augur.test.Echo/Who';
const bytes = {
  serialize: (b: Buffer): Buffer => b,
  deserialize: (b: Buffer): Buffer => b,
};

interface Backend {
  id: string;
  port: number;
  server: grpc.Server;
  /** Milliseconds each call waits before its answer. */
  delayMs: number;
}

/** A gRPC backend that answers every call with its id after `delayMs`. */
async function startBackend(id: string, delayMs: number): Promise<Backend> {
  const server = new grpc.Server();
  const backend: Backend = { id, port: 0, server, delayMs };
  server.addService(
    {
      Who: {
        path: WHO,
        requestStream: false,
        responseStream: false,
        requestSerialize: bytes.serialize,
        requestDeserialize: bytes.deserialize,
        responseSerialize: bytes.serialize,
        responseDeserialize: bytes.deserialize,
      },
    },
    {
      Who: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        setTimeout(() => cb(null, Buffer.from(id)), backend.delayMs);
      },
    },
  );
  backend.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return backend;
}

describe('a grpc-js-xds client with augur_expected_delay registered', () => {
  let plane: TestPlane;
  const backends: Backend[] = [];
  const agents: FeedingAgent[] = [];
  let client: grpc.Client;
  let ads: RawAdsClient;

  /** `n` calls, `concurrency` at a time; answers per backend id. */
  async function split(n: number, concurrency: number): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next++ < n) {
        const id = await new Promise<string>((resolve, reject) =>
          client.makeUnaryRequest(
            WHO,
            bytes.serialize,
            bytes.deserialize,
            Buffer.alloc(0),
            { deadline: Date.now() + 10_000 },
            (err, reply) => (err ? reject(err) : resolve(reply!.toString())),
          ),
        );
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return counts;
  }

  /** The latest assignment on an ADS stream of our own: backend id → weight. */
  async function assignment(): Promise<Map<string, number>> {
    let latest = new Map<string, number>();
    while (ads.pending > 0 || latest.size === 0) {
      const r = await ads.next(8000);
      ads.send({
        type_url: r.type_url,
        resource_names: [SERVICE],
        version_info: r.version_info,
        response_nonce: r.nonce,
      });
      if (r.type_url !== TypeUrl.ClusterLoadAssignment) continue;
      const cla = ads.decode(r.resources[0]!) as {
        endpoints?: Array<{
          lb_endpoints: Array<{
            endpoint: { address: { socket_address: { port_value: number } } };
          }>;
          load_balancing_weight: number;
        }>;
      };
      latest = new Map(
        (cla.endpoints ?? []).map((e) => [
          backends.find(
            (b) => b.port === e.lb_endpoints[0]!.endpoint.address.socket_address.port_value,
          )!.id,
          e.load_balancing_weight,
        ]),
      );
    }
    return latest;
  }

  beforeAll(async () => {
    // c is slow; a and b answer almost at once.
    for (const [id, delay] of [
      ['a', 2],
      ['b', 2],
      ['c', 250],
    ] as const)
      backends.push(await startBackend(id, delay));
    plane = await startTestPlane({
      lps: { defaultInterval: 0.2, minInterval: 0.1, scoreInterval: 0.2, staleAfterIntervals: 5 },
      forecast: { lstm: { enabled: false } },
      xds: { warmup: 0.3 },
    });
    // Weights ∝ 1 − CPU, holding still while the calls are counted.
    plane.lps.setScorer(new EwmaScorer());
    for (const b of backends)
      agents.push(new FeedingAgent(b.id, b.port, 0.3, SERVICE).connect(plane.grpcAddress));
    registerAugurBalancer();
    client = await grpcXdsClient(plane.grpcAddress, 'grpc-lb-client', SERVICE);
    ads = new RawAdsClient(plane.grpcAddress);
    ads.send({
      node: { id: 'observer', user_agent_name: 'test observer' },
      type_url: TypeUrl.ClusterLoadAssignment,
      resource_names: [SERVICE],
    });
  });

  afterAll(async () => {
    client?.close();
    ads?.close();
    for (const a of agents) a.disconnect();
    await plane?.dispose();
    for (const b of backends) b.server.forceShutdown();
  });

  it('publishes the gRPC cluster with augur_expected_delay first and wrr_locality second', async () => {
    const cds = new RawAdsClient(plane.grpcAddress);
    try {
      cds.send({
        node: { id: 'cds-reader', user_agent_name: 'gRPC Node Pure JS' },
        type_url: TypeUrl.Cluster,
        resource_names: [SERVICE],
      });
      const cluster = cds.decode((await cds.next(8000)).resources[0]!) as {
        lb_policy?: string;
        load_balancing_policy: {
          policies: Array<{ typed_extension_config: { typed_config: Record<string, unknown> } }>;
        };
      };
      const configs = cluster.load_balancing_policy.policies.map(
        (p) => p.typed_extension_config.typed_config,
      );
      expect(configs).toEqual([
        {
          '@type': 'type.googleapis.com/xds.type.v3.TypedStruct',
          type_url: 'type.googleapis.com/augur_expected_delay',
          value: {},
        },
        {
          '@type':
            'type.googleapis.com/envoy.extensions.load_balancing_policies.wrr_locality.v3.WrrLocality',
          endpoint_picking_policy: {
            policies: [
              {
                typed_extension_config: {
                  name: 'envoy.load_balancing_policies.round_robin',
                  typed_config: {
                    '@type':
                      'type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin',
                  },
                },
              },
            ],
          },
        },
      ]);
      expect(cluster.lb_policy).toBeUndefined();
    } finally {
      cds.close();
    }
  });

  it('sends less to a backend that answers slowly, at equal published weights', async () => {
    // Equal CPU: equal weights once the LPS has scored the samples.
    await waitFor(
      async () => {
        const w = await assignment();
        return w.size === 3 && new Set(w.values()).size === 1;
      },
      15_000,
      'three equal published weights',
    );
    // Until every backend's connection is ready the client sends only to the ready ones.
    await waitFor(async () => (await split(60, 6)).size === 3, 15_000, 'answers from a, b and c');
    const counts = await split(600, 12);
    const share = (id: string): number => (counts.get(id) ?? 0) / 600;
    // Round robin (the fallback policy) gives each a third. By the rule c, over 100× slower on an
    // idle machine (and still several times slower on a loaded one, where the event loop delays
    // every answer), holds its calls that much longer and its latency counts against it too:
    // under half of that third.
    expect(share('c'), JSON.stringify([...counts])).toBeLessThan(1 / 6);
    expect(share('a')).toBeGreaterThan(1 / 3);
    expect(share('b')).toBeGreaterThan(1 / 3);
  });

  it('sends more to the endpoint augur weighs more, when their latencies are alike', async () => {
    backends[2]!.delayMs = 2;
    // a is idle, b busy: augur weighs a about 4× b.
    agents[0]!.setCpu(0.1);
    agents[1]!.setCpu(0.8);
    agents[2]!.setCpu(0.5);
    await waitFor(
      async () => {
        const w = await assignment();
        return w.size === 3 && w.get('a')! > 3 * w.get('b')!;
      },
      15_000,
      'a weighed over 3× b',
    );
    const counts = await split(1200, 12);
    expect(counts.get('a') ?? 0, JSON.stringify([...counts])).toBeGreaterThan(
      2 * (counts.get('b') ?? 0),
    );
    expect(counts.get('a') ?? 0).toBeGreaterThan(counts.get('c') ?? 0);
    expect(counts.get('c') ?? 0).toBeGreaterThan(counts.get('b') ?? 0);
  });
});
