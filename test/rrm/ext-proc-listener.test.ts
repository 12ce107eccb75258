import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatHostPort } from '../../src/common/address.js';
import { loadConfig } from '../../src/serve/config.js';
import { createRegistry } from '../../src/common/http-host.js';
import { silentLogger } from '../../src/common/logger.js';
import { HEALTH_CHECK_PATH, PROCESS_PATH } from '../../src/rrm/ext-proc/http2-listener.js';
import { Rrm } from '../../src/rrm/rrm.js';
import { exchange, extProcClient, metadataEndpoints } from './support/envoy-like-client.js';
import { StaticListSource } from './support/static-list-source.js';

/*
 * The node:http2 ext_proc listener's own protocol behaviour (the conversation itself is covered
 * on both transports by ext-proc.test.ts): what it answers to other methods, non-gRPC requests,
 * compressed, oversized, malformed and truncated messages, Envoy's gRPC health check, and a
 * graceful stop. Raw node:http2 requests where grpc-js would not send what is being tested.
 */

const registry = createRegistry(false);
const source = new StaticListSource();
let rrm: Rrm;
let address: string;

beforeAll(async () => {
  source.set('shop', [
    { endpointId: 'a', address: '10.0.0.1', port: 8080, score: 0.4 },
    { endpointId: 'b', address: '10.0.0.2', port: 8080, score: 0.9 },
  ]);
  rrm = new Rrm({
    config: loadConfig({
      env: {},
      flags: {
        logLevel: 'silent',
        rrm: { defaultService: 'shop', extProcListen: '127.0.0.1:0', fallbacks: 1 },
      },
    }),
    logger: silentLogger,
    registry,
    lists: source,
    monitoring: { setMonitoringInterval: async (_s, ids) => ids },
  });
  address = formatHostPort((await rrm.listenExtProc())!);
});

afterAll(async () => {
  await rrm?.stop();
});

interface RawResult {
  status: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One raw HTTP/2 request: sends `frames`, half-closes, and collects everything that comes back. */
function raw(
  headers: http2.OutgoingHttpHeaders,
  frames: Buffer[],
  target = address,
): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${target}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ...headers });
    const chunks: Buffer[] = [];
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on('response', (h) => (responseHeaders = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', reject);
    stream.on('close', () => {
      session.close();
      resolve({
        status: Number(responseHeaders[':status']),
        headers: responseHeaders,
        trailers,
        body: Buffer.concat(chunks),
      });
    });
    for (const f of frames) stream.write(f);
    stream.end();
  });
}

const grpcHeaders = (path: string): http2.OutgoingHttpHeaders => ({
  ':path': path,
  'content-type': 'application/grpc',
  te: 'trailers',
});

function framed(body: Buffer, compressed = 0): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = compressed;
  out.writeUInt32BE(body.length, 1);
  body.copy(out, 5);
  return out;
}

/** grpc-status and grpc-message, from the trailers or (trailers-only) the headers. */
function status(r: RawResult): { code: number; message: string } {
  const where = r.trailers['grpc-status'] !== undefined ? r.trailers : r.headers;
  return {
    code: Number(where['grpc-status']),
    message: decodeURIComponent(String(where['grpc-message'] ?? '')),
  };
}

describe('ext_proc HTTP/2 listener', () => {
  it('answers an Envoy-like conversation from a grpc-js client', async () => {
    const client = extProcClient(address);
    try {
      const a = await exchange(client, { path: '/x' });
      expect(metadataEndpoints(a)).toBe('10.0.0.2:8080,10.0.0.1:8080');
    } finally {
      client.close();
    }
  });

  it('answers any other method with UNIMPLEMENTED, naming the one it serves', async () => {
    const r = await raw(grpcHeaders('/augur.v1.ResponseRouter/RouteResponse'), [
      framed(Buffer.alloc(0)),
    ]);
    expect(r.status).toBe(200);
    expect(status(r).code).toBe(grpc.status.UNIMPLEMENTED);
    expect(status(r).message).toContain(PROCESS_PATH);
  });

  it('answers a request that is not gRPC with HTTP 415', async () => {
    const r = await raw({ ':path': PROCESS_PATH, 'content-type': 'application/json' }, [
      Buffer.from('{}'),
    ]);
    expect(r.status).toBe(415);
  });

  it('refuses a compressed message, and one over the size limit, with a status that says why', async () => {
    const compressed = await raw(grpcHeaders(PROCESS_PATH), [framed(Buffer.from([1, 2, 3]), 1)]);
    expect(status(compressed).code).toBe(grpc.status.UNIMPLEMENTED);
    expect(status(compressed).message).toMatch(/compressed/);

    const huge = Buffer.alloc(5);
    huge.writeUInt32BE(64 << 20, 1);
    const big = await raw(grpcHeaders(PROCESS_PATH), [huge]);
    expect(status(big).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(status(big).message).toMatch(/67108864 bytes is larger than the limit/);
  });

  it('answers a message that is not a ProcessingRequest with INVALID_ARGUMENT', async () => {
    // Field 2 (request_headers) claims 100 bytes that are not there.
    const r = await raw(grpcHeaders(PROCESS_PATH), [framed(Buffer.from([0x12, 100, 1]))]);
    expect(status(r).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status(r).message).toMatch(/cannot read the ProcessingRequest/);
  });

  it('answers a stream that ends inside a message with INTERNAL', async () => {
    const half = framed(Buffer.alloc(40, 0)).subarray(0, 20);
    const r = await raw(grpcHeaders(PROCESS_PATH), [half]);
    expect(status(r).code).toBe(grpc.status.INTERNAL);
    expect(status(r).message).toMatch(/inside a message/);
  });

  it("answers Envoy's gRPC health check with SERVING", async () => {
    const r = await raw(grpcHeaders(HEALTH_CHECK_PATH), [framed(Buffer.alloc(0))]);
    expect(status(r).code).toBe(grpc.status.OK);
    // grpc.health.v1.HealthCheckResponse { status: SERVING (1) }
    expect([...r.body]).toEqual([0, 0, 0, 0, 2, 0x08, 0x01]);
  });

  it('on stop, answers the streams in flight, refuses new connections, and counts none open', async () => {
    const ownRegistry = createRegistry(false);
    const own = new Rrm({
      config: loadConfig({
        env: {},
        flags: {
          logLevel: 'silent',
          rrm: { defaultService: 'shop', extProcListen: '127.0.0.1:0' },
        },
      }),
      logger: silentLogger,
      registry: ownRegistry,
      lists: source,
      monitoring: { setMonitoringInterval: async (_s, ids) => ids },
    });
    const at = formatHostPort((await own.listenExtProc())!).replace('0.0.0.0', '127.0.0.1');
    const client = extProcClient(at);
    try {
      // A stream opened, answered, and not yet closed by the client when the stop begins.
      const stream = client.Process();
      const answered = new Promise((resolve) => stream.once('data', resolve));
      stream.on('error', () => undefined);
      stream.write({
        request_headers: {
          headers: { headers: [{ key: ':path', raw_value: Buffer.from('/') }] },
          end_of_stream: true,
        },
      });
      await answered;
      const stopping = own.stop();
      stream.end();
      await stopping;
      await expect(raw(grpcHeaders(HEALTH_CHECK_PATH), [], at)).rejects.toThrow(/ECONNREFUSED/);
      expect(await ownRegistry.getSingleMetricAsString('augur_rrm_ext_proc_streams')).toMatch(
        /augur_rrm_ext_proc_streams 0/,
      );
    } finally {
      client.close();
    }
  });
});
