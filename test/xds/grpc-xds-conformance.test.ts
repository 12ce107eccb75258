/**
 * Conformance with a real, independent xDS client: @grpc/grpc-js-xds dialling `xds:///S`,
 * configured by `augur serve` fed through the Telemetry API. Runs in its own forked process
 * (vitest's forks pool): GRPC_XDS_BOOTSTRAP_CONFIG is process-global.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

/** A gRPC backend that answers every call with its id. */
async function startBackend(
  id: string,
): Promise<{ id: string; port: number; server: grpc.Server }> {
  const server = new grpc.Server();
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
      Who: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
        cb(null, Buffer.from(id)),
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return { id, port, server };
}

type Cla = {
  endpoints?: Array<{
    lb_endpoints: Array<{ endpoint: { address: { socket_address: { port_value: number } } } }>;
    load_balancing_weight: number;
  }>;
};

/** Watches what augur publishes for S over a raw ADS stream, as an independent observer. */
class AssignmentObserver {
  private readonly client: RawAdsClient;
  latest: Map<number, number> = new Map();

  constructor(address: string) {
    this.client = new RawAdsClient(address);
    this.client.send({
      node: { id: 'observer', user_agent_name: 'test observer' },
      type_url: TypeUrl.ClusterLoadAssignment,
      resource_names: [SERVICE],
    });
  }

  /** Reads responses (ACKing each) until the assignment, port → weight, satisfies `pred`. */
  async until(
    pred: (weights: Map<number, number>) => boolean,
    timeoutMs = 8000,
  ): Promise<Map<number, number>> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.latest)) {
      const r = await this.client.next(Math.max(1, deadline - Date.now()));
      this.client.send({
        type_url: r.type_url,
        resource_names: [SERVICE],
        version_info: r.version_info,
        response_nonce: r.nonce,
      });
      const cla = this.client.decode(r.resources[0]!) as Cla;
      this.latest = new Map(
        (cla.endpoints ?? []).map((e) => [
          e.lb_endpoints[0]!.endpoint.address.socket_address.port_value,
          e.load_balancing_weight,
        ]),
      );
    }
    return this.latest;
  }

  /** Reads every response already received (ACKing each): the latest published assignment. */
  catchUp(): Promise<Map<number, number>> {
    return this.until(() => this.client.pending === 0);
  }

  close(): void {
    this.client.close();
  }
}

/** Chi-square statistic of observed counts against weights; categories with weight 0 must be empty. */
function chiSquare(
  counts: Map<string, number>,
  weights: Map<string, number>,
): { stat: number; df: number } {
  const n = [...counts.values()].reduce((a, b) => a + b, 0);
  const total = [...weights.values()].reduce((a, b) => a + b, 0);
  let stat = 0;
  for (const [id, w] of weights) {
    const expected = (n * w) / total;
    stat += ((counts.get(id) ?? 0) - expected) ** 2 / expected;
  }
  for (const id of counts.keys()) if (!weights.has(id)) stat = Infinity;
  return { stat, df: weights.size - 1 };
}
/** Critical values at p = 0.001: a correct client fails this one run in a thousand. */
const CHI2_CRITICAL: Record<number, number> = { 1: 10.83, 2: 13.82 };

describe('a @grpc/grpc-js-xds client follows augur', () => {
  let plane: TestPlane;
  let grpcPort: number;
  let dataDir: string;
  const backends: Array<{ id: string; port: number; server: grpc.Server }> = [];
  const agents = new Map<string, FeedingAgent>();
  let observer: AssignmentObserver;
  let client: grpc.Client;
  const flags = {
    // Stale after 1 s of silence: short, yet beyond the hiccups of a loaded machine.
    lps: { defaultInterval: 0.2, minInterval: 0.1, scoreInterval: 0.2, staleAfterIntervals: 5 },
    forecast: { lstm: { enabled: false } },
    xds: { warmup: 0.3 },
  };

  /**
   * The LPS's EWMA scorer (weight ∝ 1 − CPU) instead of the forecasting one, whose damped weight
   * controller moves the weights tick after tick: this test needs weights that hold still while
   * thousands of RPCs are counted against them.
   */
  const pinScorer = (): void => plane.lps.setScorer(new EwmaScorer());

  const idOfPort = (port: number): string => backends.find((b) => b.port === port)!.id;
  const byId = (weights: Map<number, number>): Map<string, number> =>
    new Map([...weights].map(([port, w]) => [idOfPort(port), w]));

  /**
   * Whether an assignment gives each backend its `final` share within half a point. The LPS's
   * EWMA takes a few ticks to settle after a change of load (each tick that moves 2 % of the
   * traffic is pushed): counting thousands of RPCs against weights that still move would test
   * the EWMA, not the client.
   */
  const settledAt =
    (final: Record<string, number>) =>
    (x: Map<number, number>): boolean => {
      const w = byId(x);
      const sum = [...w.values()].reduce((t, v) => t + v, 0);
      return w.size === 3 && [...w].every(([id, v]) => Math.abs(v / sum - final[id]!) < 0.005);
    };

  /** `n` RPCs, `concurrency` at a time; counts of answers per backend id. */
  async function split(n: number, concurrency = 50): Promise<Map<string, number>> {
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
            { deadline: Date.now() + 5000 },
            (err, reply) => (err ? reject(err) : resolve(reply!.toString())),
          ),
        );
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return counts;
  }

  beforeAll(async () => {
    for (const id of ['a', 'b', 'c']) backends.push(await startBackend(id));
    plane = await startTestPlane(flags);
    pinScorer();
    dataDir = plane.dataDir;
    grpcPort = Number(plane.grpcAddress.split(':').pop());
    const cpu: Record<string, number> = { a: 0.2, b: 0.5, c: 0.8 };
    for (const b of backends)
      agents.set(
        b.id,
        new FeedingAgent(b.id, b.port, cpu[b.id]!, SERVICE).connect(plane.grpcAddress),
      );
    client = await grpcXdsClient(plane.grpcAddress, 'conformance-client', SERVICE);
    observer = new AssignmentObserver(plane.grpcAddress);
  });

  afterAll(async () => {
    client?.close();
    observer?.close();
    for (const a of agents.values()) a.disconnect();
    await plane?.dispose();
    for (const b of backends) b.server.forceShutdown();
  });

  it('splits a few thousand RPCs across the three backends as the published weights say', async () => {
    // EWMA scorer: weight ∝ 1 - cpu, so shares 0.8 : 0.5 : 0.2. Until the first samples are
    // scored every weight is equal: wait for the final shares, so no push changes them while the
    // RPCs run.
    const weights = await observer.until(settledAt({ a: 0.8 / 1.5, b: 0.5 / 1.5, c: 0.2 / 1.5 }));
    const w = byId(weights);
    // The channel connects to a backend when it is first picked, and until a locality's
    // connection is ready grpc-js-xds gives its share to the others: count from when every
    // backend has answered.
    for (let i = 0; i < 20 && (await split(100)).size < 3; i++);
    const counts = await split(1500);
    const { stat, df } = chiSquare(counts, w);
    expect(
      stat,
      `counts ${JSON.stringify([...counts])} vs weights ${JSON.stringify([...w])}`,
    ).toBeLessThan(CHI2_CRITICAL[df]!);
    // Both ADS streams (the grpc-js-xds client and the observer) are gRPC-kind and on /metrics.
    const metrics = await (await fetch(`${plane.httpUrl}/metrics`)).text();
    expect(Number(/^augur_xds_streams\{client_kind="grpc"\} (\d+)/m.exec(metrics)?.[1])).toBe(2);
    expect(metrics).toMatch(
      /^augur_xds_responses_total\{type_url="type\.googleapis\.com\/envoy\.config\.listener\.v3\.Listener"\} [1-9]/m,
    );
  });

  it('follows a change of scores within a second of its publication', async () => {
    // New load: the weights reverse, 0.2 : 0.5 : 0.8 once the LPS has taken the new samples in.
    agents.get('a')!.setCpu(0.8);
    agents.get('c')!.setCpu(0.2);
    const weights = await observer.until((w) => {
      const x = byId(w);
      return x.size === 3 && x.get('c')! > 3.5 * x.get('a')! && x.get('b')! > 2 * x.get('a')!;
    });
    // RPCs sent from 0.2 s after the new assignment appeared on the observer's stream already follow
    // it: a client still on the old weights (a ≫ c) fails this by far, even over 300 RPCs.
    await new Promise((r) => setTimeout(r, 200));
    const early = await split(300);
    const first = chiSquare(early, byId(weights));
    expect(first.stat, `first 300: ${JSON.stringify([...early])}`).toBeLessThan(
      CHI2_CRITICAL[first.df]!,
    );
    // The long count against the settled shares (it failed in a fresh clone's run when counted
    // against the first assignment past the reversal, which the EWMA was still moving).
    const settled = byId(
      await observer.until(settledAt({ a: 0.2 / 1.5, b: 0.5 / 1.5, c: 0.8 / 1.5 })),
    );
    await new Promise((r) => setTimeout(r, 200));
    const counts = await split(1500);
    const { stat, df } = chiSquare(counts, settled);
    expect(
      stat,
      `counts ${JSON.stringify([...counts])} vs weights ${JSON.stringify([...settled])}`,
    ).toBeLessThan(CHI2_CRITICAL[df]!);
  });

  it('sends nothing to an endpoint that went stale', async () => {
    agents.get('c')!.disconnect();
    agents.delete('c');
    const weights = await observer.until((w) => w.size === 2);
    expect([...byId(weights).keys()].sort()).toEqual(['a', 'b']);
    await new Promise((r) => setTimeout(r, 200));
    const counts = await split(800);
    expect(counts.get('c') ?? 0).toBe(0);
    const { stat, df } = chiSquare(counts, byId(weights));
    expect(stat).toBeLessThan(CHI2_CRITICAL[df]!);
  });

  it('keeps routing on its last config while augur is down, then resynchronises after a restart', async () => {
    const before = byId(observer.latest);
    observer.close();
    for (const a of agents.values()) a.disconnect();
    await plane.stop();

    const whileDown = await split(400);
    expect(whileDown.get('c') ?? 0).toBe(0);
    expect((whileDown.get('a') ?? 0) + (whileDown.get('b') ?? 0)).toBe(400);
    expect(chiSquare(whileDown, before).stat).toBeLessThan(CHI2_CRITICAL[1]!);

    plane = await startTestPlane({ ...flags, grpcListen: `127.0.0.1:${grpcPort}` }, dataDir);
    pinScorer();
    for (const a of agents.values()) a.connect(plane.grpcAddress);
    // New load: b is now far better than a; the client must pick that up from the new augur.
    agents.get('a')!.setCpu(0.9);
    agents.get('b')!.setCpu(0.1);
    observer = new AssignmentObserver(plane.grpcAddress);
    await observer.until((w) => w.size === 2 && byId(w).get('b')! > 7 * byId(w).get('a')!);

    // grpc-js-xds reconnects with backoff, and augur may still refine the weights for a push or
    // two: wait until the client's split follows what augur publishes now, then test it.
    await waitFor(
      async () => {
        const latest = byId(await observer.catchUp());
        const c = await split(300);
        return chiSquare(c, latest).stat < CHI2_CRITICAL[1]!;
      },
      15_000,
      'the client to resynchronise with the restarted augur',
    );
    // The final sample is read between two identical published assignments (augur may still
    // republish a refinement; then the sample is taken again).
    let weights = new Map<string, number>();
    let counts = new Map<string, number>();
    let stable = false;
    for (let i = 0; i < 5 && !stable; i++) {
      weights = byId(await observer.catchUp());
      counts = await split(1500);
      stable = JSON.stringify([...byId(await observer.catchUp())]) === JSON.stringify([...weights]);
    }
    expect(stable, 'augur kept republishing during the final sample').toBe(true);
    expect(weights.get('b')!).toBeGreaterThan(7 * weights.get('a')!);
    expect(counts.get('c') ?? 0).toBe(0);
    const { stat, df } = chiSquare(counts, weights);
    expect(
      stat,
      `counts ${JSON.stringify([...counts])} vs ${JSON.stringify([...weights])}`,
    ).toBeLessThan(CHI2_CRITICAL[df]!);
  });
});
