import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/serve/config.js';
import { GrpcHost } from '../../src/common/grpc-host.js';
import { createRegistry } from '../../src/common/http-host.js';
import { silentLogger } from '../../src/common/logger.js';
import {
  ResponseRouterClient,
  type RouteResponseRequest,
  type RouteResponseResponse,
} from '../../src/gen/augur/v1/response_router.js';
import { Rrm } from '../../src/rrm/rrm.js';
import { StaticListSource } from './support/static-list-source.js';

/* RouteResponse delivering as a gRPC call (the payload is the serialized request message). */

const identity = (b: Buffer) => b;
const received: Buffer[] = [];
let hooks: grpc.Server;
let hooksPort: number;
let host: GrpcHost;
let rrm: Rrm;
let client: ResponseRouterClient;
const source = new StaticListSource();

function call(req: Partial<RouteResponseRequest>): Promise<RouteResponseResponse> {
  return new Promise((resolve, reject) =>
    client.routeResponse(
      {
        payload: Buffer.alloc(0),
        contentType: '',
        endpointIds: [],
        service: 'hooks',
        maxAttempts: 0,
        ...req,
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    ),
  );
}

beforeAll(async () => {
  hooks = new grpc.Server();
  const def = {
    Deliver: {
      path: '/acme.Hooks/Deliver',
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    },
    Busy: {
      path: '/acme.Hooks/Busy',
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    },
  } as grpc.ServiceDefinition;
  hooks.addService(def, {
    Deliver: (c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      received.push(c.request);
      cb(null, Buffer.from('ack'));
    },
    Busy: (_c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
      cb({ code: grpc.status.FAILED_PRECONDITION, details: 'order already shipped' }),
  });
  hooksPort = await new Promise<number>((resolve, reject) =>
    hooks.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  source.set('hooks', [
    { endpointId: 'down', port: 1, score: 0.9 },
    { endpointId: 'up', port: hooksPort, score: 0.5 },
  ]);
  rrm = new Rrm({
    config: loadConfig({ env: {}, flags: { logLevel: 'silent' } }),
    logger: silentLogger,
    registry: createRegistry(false),
    lists: source,
    monitoring: { setMonitoringInterval: async (_s, ids) => ids },
  });
  host = new GrpcHost({ listen: '127.0.0.1:0' });
  rrm.register(host);
  const { port } = await host.start();
  client = new ResponseRouterClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await rrm?.stop();
  await host?.stop();
  hooks?.forceShutdown();
});

describe('RouteResponse over gRPC', () => {
  it('falls back past an unreachable endpoint and returns every attempt', async () => {
    const res = await call({
      payload: Buffer.from([8, 42]),
      grpc: { method: '/acme.Hooks/Deliver' },
    });
    expect(res.endpointId).toBe('up');
    expect(res.statusCode).toBe(grpc.status.OK);
    expect(res.responseBody.toString()).toBe('ack');
    expect(res.attempts.map((a) => [a.endpointId, a.statusCode])).toEqual([
      ['down', grpc.status.UNAVAILABLE],
      ['up', 0],
    ]);
    expect(res.attempts[0]!.error).toMatch(/^gRPC UNAVAILABLE/);
    expect(received.at(-1)).toEqual(Buffer.from([8, 42]));
  });

  it('an application error is a delivery: the endpoint took it and said no', async () => {
    const res = await call({ endpointIds: ['up'], grpc: { method: '/acme.Hooks/Busy' } });
    expect(res.endpointId).toBe('up');
    expect(res.statusCode).toBe(grpc.status.FAILED_PRECONDITION);
    expect(res.attempts).toHaveLength(1);
  });

  it('UNAVAILABLE listing every attempt when nobody takes it; INVALID_ARGUMENT for a bad method', async () => {
    await expect(
      call({ endpointIds: ['down'], grpc: { method: '/acme.Hooks/Deliver' } }),
    ).rejects.toMatchObject({
      code: grpc.status.UNAVAILABLE,
      details: expect.stringMatching(
        /every endpoint tried failed: down \(127\.0\.0\.1:1\): gRPC UNAVAILABLE/,
      ),
    });
    await expect(call({ grpc: { method: 'Deliver' } })).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/grpc.method: "Deliver" is not a full method name/),
    });
  });

  it('max_attempts bounds the walk', async () => {
    await expect(
      call({ maxAttempts: 1, grpc: { method: '/acme.Hooks/Deliver' } }),
    ).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });
});
