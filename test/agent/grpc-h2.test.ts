import { createHash, randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  GrpcStatus,
  H2Channel,
  statusName,
  type CallStatus,
  type H2Call,
} from '../../src/agent/grpc-h2.js';
import { ProbeHealth } from '../../src/gen/augur/v1/common.js';
import {
  AgentMessage,
  ControlMessage,
  type AgentHello,
  type EndpointData,
} from '../../src/gen/augur/v1/telemetry.js';
import { TestCa } from '../support/certs.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';

/*
 * The agent's hand-written gRPC transport (src/agent/grpc-h2.ts) against the real LPS gRPC
 * server (grpc-js) on loopback: a whole stream, the statuses it ends with, a server that goes
 * away and comes back, TLS, mutual TLS and bearer tokens; and the framing corner cases against a
 * node:http2 server that writes them on purpose.
 */

const REPORT = '/augur.v1.Telemetry/Report';
const encode = (m: AgentMessage): Uint8Array => AgentMessage.encode(m).finish();
const decode = (b: Uint8Array): ControlMessage => ControlMessage.decode(b);

class Stream {
  readonly received: ControlMessage[] = [];
  status: CallStatus | undefined;
  readonly call: H2Call<AgentMessage, ControlMessage>;
  constructor(channel: H2Channel, path = REPORT) {
    this.call = channel.call(path, encode, decode, {
      onMessage: (m) => this.received.push(m),
      onStatus: (s) => {
        if (this.status) throw new Error(`a second status: ${JSON.stringify(s)}`);
        this.status = s;
      },
    });
  }
  hello(over: Partial<AgentHello> = {}): void {
    this.call.write({
      hello: {
        endpointId: 'h2-1',
        service: 'web',
        address: '127.0.0.1',
        port: 9000,
        labels: {},
        agentVersion: 'test',
        capacity: { cpuCores: 2, memoryBytes: 1 << 30, networkBytesPerSecond: 1e9 },
        ...over,
      },
    });
  }
  sample(sequence: number, endpointId = 'h2-1'): void {
    const s: EndpointData = {
      endpointId,
      cpuUsage: 0.2,
      memoryUsage: 0.3,
      networkIo: 100,
      responseTime: 0.001,
      timestamp: new Date(Date.now() - 10_000 + sequence * 10),
      sequence,
      networkCapacity: 0,
      health: ProbeHealth.PROBE_HEALTH_SERVING,
      requestRate: 0,
    };
    this.call.write({ sample: s });
  }
  async ended(what: string): Promise<CallStatus> {
    return waitFor(() => this.status, 10_000, what);
  }
}

const channels: H2Channel[] = [];
function channel(...args: ConstructorParameters<typeof H2Channel>): H2Channel {
  const c = new H2Channel(...args);
  channels.push(c);
  return c;
}
afterEach(() => {
  for (const c of channels.splice(0)) c.close();
});

describe('the Telemetry stream over node:http2 to the real LPS', () => {
  let plane: TestPlane;
  beforeAll(async () => {
    plane = await startTestPlane();
  });
  afterAll(() => plane.dispose());

  it('says hello, gets the config, sends samples, gets their acks, and ends OK on a goodbye', async () => {
    const s = new Stream(channel({ target: plane.grpcAddress }));
    s.hello({ endpointId: 'h2-ok' });
    await waitFor(() => s.received.some((m) => m.config), 10_000, 'the config');
    for (let i = 1; i <= 5; i++) s.sample(i, 'h2-ok');
    await waitFor(
      () => s.received.some((m) => m.ack?.lastSequence === 5),
      10_000,
      'the ack of sequence 5',
    );
    expect(plane.lps.store.get('h2-ok')?.lastSequence).toBe(5);
    s.call.end();
    expect((await s.ended('the end of the call')).code).toBe(GrpcStatus.OK);
    expect(s.call.done).toBe(true);
  });

  it('ends with the status and message the LPS refuses a hello with', async () => {
    const s = new Stream(channel({ target: plane.grpcAddress }));
    s.hello({ endpointId: 'not an id' });
    const status = await s.ended('the refusal');
    expect(statusName(status.code)).toBe('INVALID_ARGUMENT');
    expect(status.details).toMatch(/endpoint/i);
  });

  it('ends a call to a method the server does not have with UNIMPLEMENTED', async () => {
    const s = new Stream(channel({ target: plane.grpcAddress }), '/augur.v1.Telemetry/Nope');
    s.hello();
    expect((await s.ended('the answer')).code).toBe(GrpcStatus.UNIMPLEMENTED);
  });

  it('cancels a call: CANCELLED, and the LPS sees the stream go', async () => {
    const s = new Stream(channel({ target: plane.grpcAddress }));
    s.hello({ endpointId: 'h2-cancel' });
    await waitFor(() => s.received.some((m) => m.config), 10_000, 'the config');
    s.call.cancel('test cancel');
    expect(await s.ended('the cancel')).toEqual({
      code: GrpcStatus.CANCELLED,
      details: 'test cancel',
    });
  });

  it('several calls share one connection, each with its own end', async () => {
    const c = channel({ target: plane.grpcAddress });
    const a = new Stream(c);
    const b = new Stream(c);
    a.hello({ endpointId: 'h2-a' });
    b.hello({ endpointId: 'h2-b' });
    await waitFor(() => a.received.length > 0 && b.received.length > 0, 10_000, 'two configs');
    a.call.end();
    expect((await a.ended('a')).code).toBe(GrpcStatus.OK);
    expect(b.status).toBeUndefined();
    b.sample(1, 'h2-b');
    await waitFor(() => b.received.some((m) => m.ack), 10_000, 'b still acked');
    b.call.end();
    expect((await b.ended('b')).code).toBe(GrpcStatus.OK);
  });
});

describe('a server that goes away', () => {
  it('ends open calls when the LPS stops, fails while it is down, and connects again when it is back', async () => {
    const first = await startTestPlane();
    const address = first.grpcAddress;
    const c = channel({ target: address });
    const s = new Stream(c);
    s.hello({ endpointId: 'h2-restart' });
    await waitFor(() => s.received.some((m) => m.config), 10_000, 'the config');
    const stopping = first.stop();
    const lost = await s.ended('the end of the call when the LPS stops');
    await stopping;
    expect(lost.code).not.toBe(GrpcStatus.OK);

    const down = new Stream(c);
    down.hello({ endpointId: 'h2-restart' });
    const refused = await down.ended('a call while the LPS is down');
    expect(statusName(refused.code)).toBe('UNAVAILABLE');
    expect(refused.details).toMatch(/ECONNREFUSED/);

    const again = await startTestPlane({ grpcListen: address }, first.dataDir);
    try {
      const back = new Stream(c);
      back.hello({ endpointId: 'h2-restart' });
      await waitFor(() => back.received.some((m) => m.config), 10_000, 'the config again');
      back.call.end();
      expect((await back.ended('the goodbye')).code).toBe(GrpcStatus.OK);
    } finally {
      await again.dispose();
    }
  });
});

describe('TLS, mutual TLS and tokens to the real LPS', () => {
  const ca = new TestCa('h2-ca');
  const stranger = new TestCa('h2-stranger');
  const agentToken = randomBytes(24).toString('base64url');
  let plane: TestPlane;
  beforeAll(async () => {
    const server = ca.issue('server', { dns: ['augur'] });
    plane = await startTestPlane({
      security: {
        tls: { cert: server.cert, key: server.key, ca: ca.cert, clientCert: 'optional' },
        principals: [
          {
            name: 'spiffe://augur.test/agent/h2',
            roles: ['agent'],
            endpoints: 'h2-*',
            services: 'web',
          },
          {
            name: 'token-agent',
            roles: ['agent'],
            endpoints: 'h2-*',
            tokenSha256: [createHash('sha256').update(agentToken).digest('hex')],
          },
        ],
      },
    });
  });
  afterAll(async () => {
    await plane.dispose();
    ca.dispose();
    stranger.dispose();
  });

  it('streams over mutual TLS with the client certificate as the identity, the server name given', async () => {
    const me = ca.issue('agent', { uris: ['spiffe://augur.test/agent/h2'] });
    const s = new Stream(
      channel({
        target: plane.grpcAddress,
        security: { ca: ca.cert, cert: me.cert, key: me.key, serverName: 'augur' },
      }),
    );
    s.hello({ endpointId: 'h2-mtls' });
    await waitFor(() => s.received.some((m) => m.config), 10_000, 'the config over mTLS');
    expect(plane.lps.store.ownerOf('h2-mtls')).toBe('spiffe://augur.test/agent/h2');
    s.call.end();
    expect((await s.ended('the goodbye')).code).toBe(GrpcStatus.OK);
  });

  it('sends the bearer token (TLS without a client certificate)', async () => {
    const s = new Stream(
      channel({ target: plane.grpcAddress, security: { ca: ca.cert, token: agentToken } }),
    );
    s.hello({ endpointId: 'h2-token' });
    await waitFor(() => s.received.some((m) => m.config), 10_000, 'the config with a token');
    expect(plane.lps.store.ownerOf('h2-token')).toBe('token-agent');
  });

  it('is refused UNAUTHENTICATED with neither certificate nor token', async () => {
    const s = new Stream(channel({ target: plane.grpcAddress, security: { ca: ca.cert } }));
    s.hello({ endpointId: 'h2-nobody' });
    expect(statusName((await s.ended('the refusal')).code)).toBe('UNAUTHENTICATED');
  });

  it('refuses a server certificate from another CA: UNAVAILABLE naming the certificate problem', async () => {
    const s = new Stream(channel({ target: plane.grpcAddress, security: { ca: stranger.cert } }));
    s.hello();
    const status = await s.ended('the TLS failure');
    expect(statusName(status.code)).toBe('UNAVAILABLE');
    expect(status.details).toMatch(/certificate/i);
  });

  it('names an unreadable CA file at construction', () => {
    expect(
      () => new H2Channel({ target: plane.grpcAddress, security: { ca: '/nonexistent/ca.pem' } }),
    ).toThrow(/cannot read the TLS CA bundle \/nonexistent\/ca.pem/);
  });
});

describe('framing and answers that are not gRPC (a node:http2 server writing them on purpose)', () => {
  let server: http2.Http2Server;
  let target: string;
  let handler: (stream: http2.ServerHttp2Stream) => void = () => undefined;
  beforeAll(async () => {
    server = http2.createServer();
    server.on('stream', (stream) => {
      stream.on('error', () => undefined); // the resets this suite provokes
      handler(stream);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    target = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });

  const frame = (m: ControlMessage, flag = 0): Buffer => {
    const body = ControlMessage.encode(m).finish();
    const out = Buffer.alloc(5 + body.length);
    out[0] = flag;
    out.writeUInt32BE(body.length, 1);
    out.set(body, 5);
    return out;
  };

  it('reassembles messages split across DATA frames and several in one, then reads the trailers', async () => {
    handler = (stream) => {
      stream.respond(
        { ':status': 200, 'content-type': 'application/grpc' },
        { waitForTrailers: true },
      );
      const all = Buffer.concat([1, 2, 3].map((n) => frame({ ack: { lastSequence: n } })));
      // Byte by byte for the first message, the rest in one write.
      const firstLength = frame({ ack: { lastSequence: 1 } }).length;
      let i = 0;
      const step = (): void => {
        if (i < firstLength) {
          stream.write(all.subarray(i, i + 1));
          i++;
          setImmediate(step);
        } else {
          stream.end(all.subarray(firstLength));
        }
      };
      stream.on('wantTrailers', () =>
        stream.sendTrailers({ 'grpc-status': '9', 'grpc-message': 'not%20now%20%E2%9C%93' }),
      );
      step();
    };
    const s = new Stream(channel({ target }));
    const status = await s.ended('the trailers');
    expect(s.received.map((m) => m.ack?.lastSequence)).toEqual([1, 2, 3]);
    expect(status).toEqual({ code: GrpcStatus.FAILED_PRECONDITION, details: 'not now ✓' });
  });

  it('maps an HTTP error without grpc-status (503: UNAVAILABLE, 401: UNAUTHENTICATED)', async () => {
    handler = (stream) => stream.respond({ ':status': 503 }, { endStream: true });
    expect((await new Stream(channel({ target })).ended('503')).code).toBe(GrpcStatus.UNAVAILABLE);
    handler = (stream) => stream.respond({ ':status': 401 }, { endStream: true });
    const s = await new Stream(channel({ target })).ended('401');
    expect(s.code).toBe(GrpcStatus.UNAUTHENTICATED);
    expect(s.details).toMatch(/HTTP 401/);
  });

  it('refuses a compressed message it did not ask for, and a stream reset mid-call', async () => {
    handler = (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      stream.write(frame({ ack: { lastSequence: 1 } }, 1));
    };
    const compressed = await new Stream(channel({ target })).ended('the compressed message');
    expect(compressed.code).toBe(GrpcStatus.INTERNAL);
    expect(compressed.details).toMatch(/compressed/);

    handler = (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      stream.write(frame({ ack: { lastSequence: 1 } }));
      setImmediate(() => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM));
    };
    const s = new Stream(channel({ target }));
    const reset = await s.ended('the reset');
    expect(reset.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(s.received).toHaveLength(1);
  });

  it('ends a call whose answer is not application/grpc with UNKNOWN', async () => {
    handler = (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'text/html' });
      stream.end('<html>');
    };
    const s = await new Stream(channel({ target })).ended('the html answer');
    expect(s.code).toBe(GrpcStatus.UNKNOWN);
    expect(s.details).toMatch(/text\/html/);
  });
});
