import * as grpc from '@grpc/grpc-js';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcHost } from '../../src/common/grpc-host.js';
import { createRegistry } from '../../src/common/http-host.js';
import { silentLogger } from '../../src/common/logger.js';
import {
  ResponseRouterClient,
  type RouteResponseRequest,
  type RouteResponseResponse,
} from '../../src/gen/augur/v1/response_router.js';
import { DeliveryGuard } from '../../src/rrm/delivery-guard.js';
import { Rrm } from '../../src/rrm/rrm.js';
import { loadConfig } from '../../src/serve/config.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';
import { RawAgentStream } from '../support/raw-agent.js';
import { StaticListSource } from './support/static-list-source.js';

/*
 * RouteResponse's guard (issue 12, "fetch-anything"): it delivers only inside
 * rrm.routeResponseAllow, never to augur's own addresses, only to verified endpoints, and returns
 * at most rrm.routeResponseMaxResponseBytes of an answer.
 */

function call(
  client: ResponseRouterClient,
  req: Partial<RouteResponseRequest>,
): Promise<RouteResponseResponse> {
  return new Promise((resolve, reject) =>
    client.routeResponse(
      {
        payload: Buffer.alloc(0),
        contentType: '',
        endpointIds: [],
        service: '',
        maxAttempts: 0,
        ...req,
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    ),
  );
}

describe('RouteResponse against augur itself', () => {
  let plane: TestPlane;
  let agent: RawAgentStream | undefined;
  let client: ResponseRouterClient | undefined;

  beforeAll(async () => {
    plane = await startTestPlane();
  });

  afterAll(async () => {
    agent?.close();
    client?.close();
    await plane?.dispose();
  });

  it("can no longer fetch augur's own /metrics through an endpoint registered at its HTTP address", async () => {
    const http = new URL(plane.httpUrl);
    agent = new RawAgentStream(plane.grpcAddress);
    agent.hello({
      endpointId: 'self-1',
      service: 'self',
      address: '127.0.0.1',
      port: Number(http.port),
    });
    agent.sample({ sequence: 1 });
    client = new ResponseRouterClient(plane.grpcAddress, grpc.credentials.createInsecure());
    const c = client;
    // Once the endpoint is listed and fresh, the only thing left to refuse is the guard.
    const err = await waitFor(
      async () => {
        agent!.sample({ sequence: Date.now() });
        try {
          await call(c, {
            service: 'self',
            http: { method: 'GET', path: '/metrics', headers: {} },
          });
          return new Error('delivered');
        } catch (e) {
          const s = e as grpc.ServiceError;
          return s.code === grpc.status.UNAVAILABLE && /every endpoint tried failed/.test(s.details)
            ? s
            : undefined;
        }
      },
      20_000,
      'the endpoint at augur’s own address to be tried',
    );
    expect(err).toBeInstanceOf(Error);
    const details = (err as grpc.ServiceError).details;
    expect(details).toMatch(
      /self-1 \(127\.0\.0\.1:\d+\): not delivered: 127\.0\.0\.1:\d+ is one of augur's own addresses/,
    );
    expect(details).not.toMatch(/augur_/);
    const metrics = await (await fetch(`${plane.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/augur_rrm_route_response_refused_total\{reason="own_address"\} [1-9]/);
  });
});

describe('RouteResponse delivery guard', () => {
  const source = new StaticListSource();
  let backend: Server;
  let backendPort: number;
  let host: GrpcHost;
  let rrm: Rrm;
  let client: ResponseRouterClient;
  const verified = new Set(['outside', 'local', 'big']);

  beforeAll(async () => {
    backend = createServer((req, res) => {
      res.end(req.url === '/big' ? Buffer.alloc(3000, 0x61) : 'ok');
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    backendPort = (backend.address() as AddressInfo).port;
    source.set('hooks', [
      { endpointId: 'outside', address: '203.0.113.5', port: 80, score: 0.9 },
      { endpointId: 'stranger', address: '127.0.0.1', port: backendPort, score: 0.8 },
      { endpointId: 'local', address: '127.0.0.1', port: backendPort, score: 0.5 },
    ]);
    rrm = new Rrm({
      config: loadConfig({
        env: {},
        flags: { logLevel: 'silent', rrm: { routeResponseMaxResponseBytes: 1000 } },
      }),
      logger: silentLogger,
      registry: createRegistry(false),
      lists: source,
      monitoring: { setMonitoringInterval: async (_s, ids) => ids },
      isVerified: (id) => verified.has(id),
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
    await new Promise((r) => backend?.close(r));
  });

  it('skips an endpoint outside the allow-list and an unverified one, delivers to the next', async () => {
    const res = await call(client, {
      service: 'hooks',
      dynamicRoutingEnabled: false,
      http: { method: 'GET', path: '/', headers: {} },
    });
    expect(res.endpointId).toBe('local');
    expect(res.responseBody.toString()).toBe('ok');
    expect(res.attempts.map((a) => [a.endpointId, a.error])).toEqual([
      [
        'outside',
        expect.stringMatching(
          /^not delivered: 203\.0\.113\.5 is outside rrm\.routeResponseAllow \(10\.0\.0\.0\/8, /,
        ),
      ],
      [
        'stranger',
        expect.stringMatching(/^not delivered: endpoint stranger's identity is not verified/),
      ],
      ['local', ''],
    ]);
  });

  it('returns at most rrm.routeResponseMaxResponseBytes of an answer', async () => {
    const res = await call(client, {
      service: 'hooks',
      endpointIds: ['local'],
      http: { method: 'GET', path: '/big', headers: {} },
    });
    expect(res.statusCode).toBe(200);
    expect(res.responseBody.length).toBe(1000);
  });

  it('refuses a listening address of this process, also when it listens on every interface', async () => {
    const guard = new DeliveryGuard({ allow: ['127.0.0.0/8'] });
    guard.addOwnAddress('0.0.0.0:18080');
    guard.addOwnAddress({ host: '127.0.0.1', port: 18000 });
    expect(await guard.check('a', '127.0.0.1:18080')).toMatchObject({
      ok: false,
      reason: 'own_address',
    });
    expect(await guard.check('a', '127.0.0.5:18000')).toMatchObject({
      ok: false,
      reason: 'own_address',
    });
    expect(await guard.check('a', 'localhost:18000')).toMatchObject({
      ok: false,
      reason: 'own_address',
    });
    expect(await guard.check('a', '127.0.0.1:18001')).toEqual({
      ok: true,
      address: '127.0.0.1:18001',
    });
  });

  it('rejects a config whose allow-list entry is not a CIDR, naming it', () => {
    expect(() =>
      loadConfig({ env: {}, flags: { rrm: { routeResponseAllow: ['10.0.0.0/8', 'intranet'] } } }),
    ).toThrow(/"intranet" is not a CIDR/);
  });
});
