import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import type http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEnvoyProtos } from '../../src/common/envoy-protos.js';
import {
  GetForecastRequest,
  GetPrioritizedEndpointsRequest,
  ListEndpointsRequest,
  LoadPredictionClient,
  SetMonitoringIntervalRequest,
  WatchPrioritizedEndpointsRequest,
  type ListEndpointsResponse,
  type PrioritizedEndpointList,
} from '../../src/gen/augur/v1/load_prediction.js';
import { AgentMessage, type EndpointData } from '../../src/gen/augur/v1/telemetry.js';
import { ID_PATTERN } from '../../src/lps/validate.js';
import { extProcCodec } from '../../src/rrm/ext-proc/messages.js';
import { startTestPlane, type TestPlane } from '../support/control-plane.js';
import { connect, framed, rawCall, type RawCallResult } from '../support/raw-grpc.js';

/*
 * Property-based fuzzing of every gRPC surface (issue 12), over real sockets against a real
 * control plane: Telemetry/Report, LoadPrediction (all five methods), ADS, and ext_proc on both
 * its addresses (grpc-js and the node:http2 fast path). Each case is a call made byte by byte:
 * raw bytes, or framed messages that are random bytes or well-formed messages with hostile values
 * (huge, empty, non-ASCII, NaN, infinite, negative, 2^53-1), sometimes compressed-flagged,
 * truncated, several to a chunk or split across chunks, half-closed or not.
 *
 * Properties: no crash (the process, both addresses still answer), no hang (every call ends with
 * a status, or answers, within a deadline), and no invalid value stored (ListEndpoints and the
 * prioritized lists afterwards hold only values the API allows).
 *
 * AUGUR_FUZZ_SEED (default 1) and AUGUR_FUZZ_RUNS (default 10,000) choose the cases; both are
 * printed. Cases run 24 at a time; the set of cases depends on the seed only.
 */

const SEED = Number(process.env.AUGUR_FUZZ_SEED ?? 1);
const RUNS = Number(process.env.AUGUR_FUZZ_RUNS ?? 10_000);
const CONCURRENCY = 48;
/** A call with neither a status nor an answer after this long is a hang (generous: 2 busy cores). */
const DEADLINE_MS = 10_000;
/** The deadline each call asks of the server (grpc-timeout). */
const GRPC_TIMEOUT = '500m';

type Address = 'grpc' | 'fast';

interface Target {
  name: string;
  address: Address;
  path: string;
  /** Messages that are well-formed protobuf with hostile values. */
  message: fc.Arbitrary<Uint8Array>;
  /** Watch and ADS: a valid call stays open and may say nothing (no list yet). */
  subscription?: boolean;
}

// ---- hostile values -------------------------------------------------------------------------

const hostileString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('', ' ', 'web', 'fz-1', 'fz-2', 'a'.repeat(129), '../../etc', 'x\u0000y', '🙂'),
  fc.nat({ max: 3000 }).map((n) => 'z'.repeat(n)),
);
const hostileId = fc.oneof(
  hostileString,
  fc.nat({ max: 50 }).map((n) => `fz-${n}`),
);
const hostileNumber = fc.oneof(
  fc.double(),
  fc.constantFrom(NaN, Infinity, -Infinity, -1, 0, 1, 2 ** 53 - 1, 1e308, -0),
);
const hostileInt = fc.oneof(
  fc.integer(),
  fc.constantFrom(0, 1, 65535, 65536, 2 ** 32 - 1, 2 ** 53 - 1, -1),
);

const sample: fc.Arbitrary<EndpointData> = fc
  .record({
    endpointId: hostileId,
    cpuUsage: hostileNumber,
    memoryUsage: hostileNumber,
    networkIo: hostileNumber,
    responseTime: hostileNumber,
    sequence: fc.oneof(fc.nat({ max: 100 }), fc.constantFrom(2 ** 53 - 1, 2 ** 40)),
    requestRate: hostileNumber,
    networkCapacity: hostileNumber,
  })
  .map((s) => AgentMessage.fromPartial({ sample: s }).sample!);

const hostileHello = fc.record({
  endpointId: hostileId,
  service: fc.oneof(hostileString, fc.constantFrom('web', 'api')),
  address: fc.oneof(hostileString, fc.constantFrom('127.0.0.1', '10.0.0.7', '::1')),
  port: hostileInt.map((p) => p >>> 0),
  labels: fc.dictionary(hostileString, hostileString, { maxKeys: 3 }),
  agentVersion: hostileString,
});
/** A hello the LPS takes, so that what follows on its stream reaches the store. */
const goodHello = fc.record({
  endpointId: fc.nat({ max: 200 }).map((n) => `fz-${n}`),
  service: fc.constantFrom('web', 'api'),
  address: fc.constantFrom('127.0.0.1', '10.0.0.7'),
  port: fc.integer({ min: 1, max: 65535 }),
  labels: fc.dictionary(hostileString, hostileString, { maxKeys: 3 }),
});

const agentMessage = fc
  .oneof(
    fc.record({ hello: fc.oneof(hostileHello, goodHello) }),
    fc.record({ sample }),
    fc.record({ batch: fc.record({ samples: fc.array(sample, { maxLength: 4 }) }) }),
  )
  .map((m) => AgentMessage.encode(AgentMessage.fromPartial(m)).finish());

const duration = fc.record({
  seconds: fc.oneof(fc.integer({ min: -1e6, max: 1e9 }), fc.constantFrom(0, 1, 300, 2 ** 53 - 1)),
  nanos: fc.integer({ min: -2e9, max: 2e9 }),
});

const envoy = loadEnvoyProtos().root;
const discoveryRequest = envoy.lookupType('envoy.service.discovery.v3.DiscoveryRequest');
const TYPE_URLS = [
  'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  'type.googleapis.com/envoy.config.listener.v3.Listener',
  'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
];
const adsMessage = fc
  .record({
    version_info: hostileString,
    node: fc.record({ id: hostileString, cluster: hostileString }),
    resource_names: fc.array(hostileString, { maxLength: 4 }),
    type_url: fc.oneof(fc.constantFrom(...TYPE_URLS), hostileString),
    response_nonce: hostileString,
  })
  .map((m) => discoveryRequest.encode(discoveryRequest.fromObject(m)).finish());

const HEADER_KEYS = [
  ':path',
  ':authority',
  ':method',
  'x-augur-endpoints',
  'x-augur-monitoring-interval',
  'x-augur-dynamic-routing',
  ':status',
];
const header = fc.record({
  key: fc.oneof(fc.constantFrom(...HEADER_KEYS), hostileString),
  raw_value: hostileString.map((s) => Buffer.from(s)),
});
const processingRequest = fc
  .oneof(
    fc.record({
      request_headers: fc.record({
        headers: fc.record({ headers: fc.array(header, { maxLength: 6 }) }),
        end_of_stream: fc.boolean(),
      }),
    }),
    fc.record({
      response_headers: fc.record({
        headers: fc.record({ headers: fc.array(header, { maxLength: 4 }) }),
      }),
    }),
    fc.record({ request_body: fc.record({ body: fc.uint8Array({ maxLength: 64 }) }) }),
  )
  .map((m) => {
    const { request } = extProcCodec();
    return request.encode(request.fromObject(m)).finish();
  });

const LP = '/augur.v1.LoadPrediction';
const EXT_PROC = '/envoy.service.ext_proc.v3.ExternalProcessor/Process';
const TARGETS: Target[] = [
  {
    name: 'Telemetry/Report',
    address: 'grpc',
    path: '/augur.v1.Telemetry/Report',
    message: agentMessage,
  },
  {
    name: 'LoadPrediction/GetPrioritizedEndpoints',
    address: 'grpc',
    path: `${LP}/GetPrioritizedEndpoints`,
    message: fc
      .record({ service: hostileString })
      .map((m) => GetPrioritizedEndpointsRequest.encode(m).finish()),
  },
  {
    name: 'LoadPrediction/WatchPrioritizedEndpoints',
    address: 'grpc',
    path: `${LP}/WatchPrioritizedEndpoints`,
    subscription: true,
    message: fc
      .record({ services: fc.array(hostileString, { maxLength: 3 }) })
      .map((m) => WatchPrioritizedEndpointsRequest.encode(m).finish()),
  },
  {
    name: 'LoadPrediction/SetMonitoringInterval',
    address: 'grpc',
    path: `${LP}/SetMonitoringInterval`,
    message: fc
      .record({
        service: hostileString,
        endpointIds: fc.array(hostileId, { maxLength: 4 }),
        monitoringInterval: duration,
      })
      .map((m) =>
        SetMonitoringIntervalRequest.encode(SetMonitoringIntervalRequest.fromPartial(m)).finish(),
      ),
  },
  {
    name: 'LoadPrediction/ListEndpoints',
    address: 'grpc',
    path: `${LP}/ListEndpoints`,
    message: fc
      .record({ service: hostileString })
      .map((m) => ListEndpointsRequest.encode(m).finish()),
  },
  {
    name: 'LoadPrediction/GetForecast',
    address: 'grpc',
    path: `${LP}/GetForecast`,
    message: fc.record({ endpointId: hostileId }).map((m) => GetForecastRequest.encode(m).finish()),
  },
  {
    name: 'ADS',
    address: 'grpc',
    path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
    subscription: true,
    message: adsMessage,
  },
  { name: 'ext_proc (gRPC address)', address: 'grpc', path: EXT_PROC, message: processingRequest },
  { name: 'ext_proc (fast path)', address: 'fast', path: EXT_PROC, message: processingRequest },
];

// ---- how the bytes go on the wire -----------------------------------------------------------

interface Case {
  target: number;
  chunks: Buffer[];
  end: boolean;
}

/** Framed messages (each well-formed or random), with framing faults, split into chunks. */
function wire(message: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Buffer[]> {
  const payload = fc.oneof(
    { weight: 3, arbitrary: message },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 48 }) },
  );
  const frame = fc
    .record({
      body: payload,
      fault: fc.constantFrom('none', 'none', 'none', 'none', 'compressed', 'short', 'long'),
    })
    .map(({ body, fault }) => {
      const f = framed(body, fault === 'compressed' ? 1 : 0);
      // Declares more bytes than follow (the rest never comes) or fewer (the tail is garbage).
      if (fault === 'short') f.writeUInt32BE(body.length + 1 + (body.length % 7), 1);
      if (fault === 'long' && body.length > 0) f.writeUInt32BE(body.length - 1, 1);
      return f;
    });
  const framedCase = fc
    .record({
      frames: fc.array(frame, { minLength: 0, maxLength: 4 }),
      cuts: fc.array(fc.nat(), { maxLength: 2 }),
    })
    .map(({ frames, cuts }) => split(Buffer.concat(frames), cuts));
  const rawCase = fc.uint8Array({ maxLength: 96 }).map((b) => [Buffer.from(b)]);
  return fc.oneof({ weight: 4, arbitrary: framedCase }, { weight: 1, arbitrary: rawCase });
}

function split(all: Buffer, cuts: number[]): Buffer[] {
  if (all.length === 0) return [];
  const at = [...new Set(cuts.map((c) => c % all.length))]
    .filter((c) => c > 0)
    .sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of at) {
    out.push(all.subarray(from, c));
    from = c;
  }
  out.push(all.subarray(from));
  return out;
}

const caseArb: fc.Arbitrary<Case> = fc.nat({ max: TARGETS.length - 1 }).chain((target) =>
  fc.record({
    target: fc.constant(target),
    chunks: wire(TARGETS[target]!.message),
    end: fc.oneof(
      { weight: 3, arbitrary: fc.constant(true) },
      { weight: 1, arbitrary: fc.constant(false) },
    ),
  }),
);

// ---- the run --------------------------------------------------------------------------------

/** A few sessions per address, replaced when the server closes one. */
class Sessions {
  private readonly pool: Array<Promise<http2.ClientHttp2Session>> = [];
  private next = 0;

  constructor(
    private readonly address: string,
    size: number,
  ) {
    for (let i = 0; i < size; i++) this.pool.push(connect(address));
  }

  async get(): Promise<http2.ClientHttp2Session> {
    const i = this.next++ % this.pool.length;
    const s = await this.pool[i]!;
    if (s.closed || s.destroyed) {
      this.pool[i] = connect(this.address);
      return this.pool[i]!;
    }
    return s;
  }

  async close(): Promise<void> {
    for (const p of this.pool) (await p).destroy();
  }
}

const SERVICE_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

let plane: TestPlane;

beforeAll(async () => {
  plane = await startTestPlane({ rrm: { extProcListen: '127.0.0.1:0' } });
});

afterAll(async () => {
  await plane?.dispose();
});

describe('fuzzing every gRPC surface', () => {
  it(`${RUNS} seeded cases: no crash, no hang, no invalid value stored`, async () => {
    const cases = fc.sample(caseArb, { seed: SEED, numRuns: RUNS });
    const sessions: Record<Address, Sessions> = {
      grpc: new Sessions(plane.grpcAddress, 4),
      fast: new Sessions(plane.extProcAddress!, 2),
    };
    const outcomes = new Map<string, number>();
    const hangs: Array<{ index: number; target: string; c: Case; r: RawCallResult }> = [];
    const started = performance.now();
    let nextCase = 0;
    const worker = async (): Promise<void> => {
      for (;;) {
        const index = nextCase++;
        if (index >= cases.length) return;
        const c = cases[index]!;
        const target = TARGETS[c.target]!;
        const session = await sessions[target.address].get();
        const r = await rawCall(session, target.path, c.chunks, {
          end: c.end,
          deadlineMs: DEADLINE_MS,
          settleOnData: true,
          // A client that does not half-close gives the server its deadline, as real ones do.
          // One that did half-close sends none: the server has all it will get and owes a status
          // (or, for a subscription, which never ends by itself, an answer or the deadline's).
          headers: c.end && !target.subscription ? {} : { 'grpc-timeout': GRPC_TIMEOUT },
        });
        const outcome = r.hung
          ? 'hung'
          : r.code !== undefined
            ? `status ${grpc.status[r.code] ?? r.code}`
            : r.bodyBytes > 0
              ? 'answered'
              : r.httpStatus && r.httpStatus !== 200
                ? `http ${r.httpStatus}`
                : 'reset';
        const key = `${target.name}: ${outcome}`;
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        if (r.hung) hangs.push({ index, target: target.name, c, r });
      }
    };
    try {
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    } finally {
      await sessions.grpc.close();
      await sessions.fast.close();
    }
    const seconds = (performance.now() - started) / 1000;
    const summary = [...outcomes.entries()].sort().map(([k, n]) => `  ${k}: ${n}`);
    console.log(
      `fuzz: ${cases.length} cases, seed ${SEED} (AUGUR_FUZZ_SEED), ${seconds.toFixed(1)} s, ` +
        `${hangs.length} hung\n${summary.join('\n')}`,
    );
    for (const h of hangs.slice(0, 5)) {
      console.log(
        `hung: case ${h.index} ${h.target} end=${h.c.end} chunks=${h.c.chunks
          .map((b) => b.toString('hex'))
          .join('|')
          .slice(0, 300)}`,
      );
    }
    expect(hangs.map((h) => `${h.index} ${h.target}`)).toEqual([]);

    // No crash: both addresses still answer.
    const health = await connect(plane.grpcAddress);
    try {
      const r = await rawCall(health, '/grpc.health.v1.Health/Check', [framed(new Uint8Array())]);
      expect(r.code).toBe(grpc.status.OK);
    } finally {
      health.destroy();
    }

    // No invalid value stored.
    const client = new LoadPredictionClient(plane.grpcAddress, grpc.credentials.createInsecure());
    try {
      const listed = await new Promise<ListEndpointsResponse>((resolve, reject) =>
        client.listEndpoints({ service: '' }, (err, res) => (err ? reject(err) : resolve(res))),
      );
      const services = new Set<string>();
      for (const e of listed.endpoints) {
        expect(e.endpointId).toMatch(ID_PATTERN);
        expect(e.service).toMatch(SERVICE_PATTERN);
        expect(e.port).toBeGreaterThanOrEqual(1);
        expect(e.port).toBeLessThanOrEqual(65535);
        expect(e.address.length).toBeGreaterThan(0);
        expect(Number.isSafeInteger(e.lastSequence)).toBe(true);
        const l = e.latest;
        if (l) {
          for (const v of [l.cpuUsage, l.memoryUsage]) expect(v >= 0 && v <= 1).toBe(true);
          for (const v of [l.networkIo, l.responseTime, l.requestRate]) {
            expect(Number.isFinite(v) && v >= 0).toBe(true);
          }
        }
        services.add(e.service);
      }
      for (const service of services) {
        const list = await new Promise<PrioritizedEndpointList>((resolve, reject) =>
          client.getPrioritizedEndpoints({ service }, (err, res) =>
            err ? reject(err) : resolve(res),
          ),
        );
        for (const s of list.endpoints) {
          expect(Number.isFinite(s.score) && s.score >= 0 && s.score <= 1).toBe(true);
          expect(Number.isFinite(s.weight) && s.weight >= 0).toBe(true);
        }
      }
      console.log(`fuzz: ${listed.endpoints.length} endpoints stored, all valid`);
    } finally {
      client.close();
    }
  });
});
