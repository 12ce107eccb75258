import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  framedWrites,
  serializeSharedResponse,
  SharedResponse,
  sharedResponses,
} from '../../src/common/shared-response.js';

/** A bidi method that answers each request with the one shared message, and echoes otherwise. */
const PATH = '/test.Shared/Stream';
const definition: grpc.ServiceDefinition = {
  Stream: {
    path: PATH,
    requestStream: true,
    responseStream: true,
    originalName: 'stream',
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: serializeSharedResponse,
    responseDeserialize: (b: Buffer) => b,
  },
};

describe('shared responses (one framing for many streams)', () => {
  const servers: grpc.Server[] = [];
  const clients: grpc.Client[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const s of servers.splice(0)) s.forceShutdown();
  });

  async function start(options: grpc.ServerOptions, message: SharedResponse): Promise<string> {
    const server = new grpc.Server(options);
    servers.push(server);
    server.addService(definition, {
      Stream: (call: grpc.ServerDuplexStream<Buffer, SharedResponse>) => {
        call.on('data', () => call.write(message));
        call.on('end', () => call.end());
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    return `127.0.0.1:${port}`;
  }

  /** Opens `n` streams, each on a connection of its own, and returns what each received. */
  async function receive(address: string, n: number): Promise<Buffer[]> {
    return Promise.all(
      Array.from({ length: n }, () => {
        const client = new grpc.Client(address, grpc.credentials.createInsecure(), {
          'grpc.use_local_subchannel_pool': 1,
        });
        clients.push(client);
        const call = client.makeBidiStreamRequest(
          PATH,
          (b: Buffer) => b,
          (b: Buffer) => b,
        );
        return new Promise<Buffer>((resolve, reject) => {
          call.on('data', (b: Buffer) => {
            resolve(Buffer.from(b));
            call.end();
          });
          call.on('error', reject);
          call.write(Buffer.from('hi'));
        });
      }),
    );
  }

  // 70,000 bytes: more than one HTTP/2 frame and more than one default flow-control window.
  const parts = [Buffer.alloc(30_000, 1), Buffer.from([0, 2, 3]), Buffer.alloc(39_997, 4)];
  const whole = Buffer.concat(parts);

  it('frames the parts once: a 5-byte gRPC prefix (not compressed, the length) and the message', () => {
    const m = SharedResponse.concat(parts);
    expect(m.framed.length).toBe(whole.length + 5);
    expect(m.framed[0]).toBe(0);
    expect(m.framed.readUInt32BE(1)).toBe(whole.length);
    expect(m.bytes.equals(whole)).toBe(true);
    expect(serializeSharedResponse(m).equals(whole)).toBe(true);
  });

  it('with the interceptor, every stream receives the exact bytes and grpc-js frames no copy', async () => {
    const address = await start({ interceptors: [sharedResponses] }, SharedResponse.concat(parts));
    const before = framedWrites();
    const got = await receive(address, 5);
    for (const b of got) expect(b.equals(whole)).toBe(true);
    // With grpc-js 1.14 the framing step is replaced; an upgrade that loses it fails here.
    expect(framedWrites() - before).toBe(5);
  });

  it('without it, grpc-js frames each write itself and the bytes are the same', async () => {
    const address = await start({}, SharedResponse.concat(parts));
    const before = framedWrites();
    const got = await receive(address, 3);
    for (const b of got) expect(b.equals(whole)).toBe(true);
    expect(framedWrites() - before).toBe(0);
  });

  it('leaves methods with other serializers alone', async () => {
    const server = new grpc.Server({ interceptors: [sharedResponses] });
    servers.push(server);
    server.addService(
      { Stream: { ...definition.Stream!, responseSerialize: (b: Buffer) => b } },
      {
        Stream: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
          call.on('data', (b: Buffer) => call.write(Buffer.concat([b, b])));
          call.on('end', () => call.end());
        },
      },
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const before = framedWrites();
    const got = await receive(`127.0.0.1:${port}`, 2);
    for (const b of got) expect(b.toString()).toBe('hihi');
    expect(framedWrites() - before).toBe(0);
  });
});
