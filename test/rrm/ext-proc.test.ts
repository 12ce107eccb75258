import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/serve/config.js';
import { formatHostPort } from '../../src/common/address.js';
import { GrpcHost } from '../../src/common/grpc-host.js';
import { createRegistry } from '../../src/common/http-host.js';
import { silentLogger } from '../../src/common/logger.js';
import { EndpointState } from '../../src/gen/augur/v1/common.js';
import { Rrm } from '../../src/rrm/rrm.js';
import {
  exchange,
  exchangeWithResponse,
  extProcClient,
  requestHeadersMessage,
  headerEndpoints,
  metadataEndpoints,
  type ExtProcAnswer,
} from './support/envoy-like-client.js';
import { StaticListSource } from './support/static-list-source.js';

/*
 * The ext_proc conversation as Envoy holds it (see support/envoy-like-client.ts), against a
 * real gRPC server on loopback, with the lists given by a hand-set PrioritizedListSource. Every
 * case runs on both transports: the gRPC host (grpc-js, augur's one gRPC address) and the extra
 * node:http2 listener (`rrm.extProcListen`), spoken to by the same grpc-js client.
 */

/** Each transport gets its own RRM, lists and metrics, so its cases start from the same state. */
let source: StaticListSource;
let forwarded: Array<{ service: string; ids: string[]; seconds: number }>;
let registry: ReturnType<typeof createRegistry>;
let client: ReturnType<typeof extProcClient>;
let rrm: Rrm;

const config = loadConfig({
  env: {},
  flags: {
    logLevel: 'silent',
    rrm: {
      fallbacks: 2,
      // The conversation's shape is what these cases check; the pick, where requests in
      // flight move it, is checked in expected-delay-picker.test.ts and below.
      dynamicPicker: 'highest-score',
      defaultService: 'shop',
      serviceByRoute: { 'checkout-route': 'checkout', 'ghost-route': 'ghost' },
      monitoringIntervalMinGap: 60,
      // These cases send x-augur-monitoring-interval and expect it read.
      monitoringIntervalFromRequests: true,
      extProcListen: '127.0.0.1:0',
    },
  },
});

type Transport = 'grpc-js, the gRPC address' | 'node:http2, rrm.extProcListen';

/** A fresh RRM on loopback, and a client of the transport's address; returns what stops them. */
async function setUp(transport: Transport): Promise<() => Promise<void>> {
  source = new StaticListSource();
  forwarded = [];
  registry = createRegistry(false);
  source.set('shop', [
    { endpointId: 'shop-a', address: '10.0.0.1', port: 8080, score: 0.4 },
    { endpointId: 'shop-b', address: '10.0.0.2', port: 8080, score: 0.9 },
    { endpointId: 'shop-c', address: '10.0.0.3', port: 8080, score: 0.7 },
    { endpointId: 'shop-d', address: '10.0.0.4', port: 8080, score: 0.6 },
    {
      endpointId: 'shop-sick',
      address: '10.0.0.5',
      port: 8080,
      score: 0.95,
      state: EndpointState.ENDPOINT_STATE_FAILING,
    },
    {
      endpointId: 'shop-silent',
      address: '10.0.0.6',
      port: 8080,
      score: 0.99,
      state: EndpointState.ENDPOINT_STATE_STALE,
    },
    { endpointId: 'shop-v6', address: 'fd00::7', port: 9000, score: 0.1 },
  ]);
  source.set('checkout', [{ endpointId: 'co-1', address: '10.1.0.1', port: 7000, score: 0.5 }]);
  source.set('payments-cluster', [
    { endpointId: 'pay-1', address: '10.2.0.1', port: 7001, score: 0.5 },
  ]);
  const sink = forwarded;
  rrm = new Rrm({
    config,
    logger: silentLogger,
    registry,
    lists: source,
    monitoring: {
      setMonitoringInterval: async (service, ids, seconds) => {
        sink.push({ service, ids, seconds });
        return ids;
      },
    },
  });
  const host = new GrpcHost({ listen: '127.0.0.1:0' });
  rrm.register(host);
  const { port } = await host.start();
  const fast = await rrm.listenExtProc();
  client = extProcClient(
    transport === 'node:http2, rrm.extProcListen' ? formatHostPort(fast!) : `127.0.0.1:${port}`,
  );
  const c = client;
  const r = rrm;
  return async () => {
    c.close();
    await r.stop();
    await host.stop();
  };
}

function immediate(a: ExtProcAnswer): { status: number; body: string; details: string } {
  expect(a.response).toBe('immediate_response');
  const ir = a.immediate_response!;
  return {
    status: Number(
      ir.status.code === 'BadRequest'
        ? 400
        : ir.status.code === 'ServiceUnavailable'
          ? 503
          : ir.status.code,
    ),
    body: ir.body.toString(),
    details: ir.details,
  };
}

describe.each<Transport>(['grpc-js, the gRPC address', 'node:http2, rrm.extProcListen'])(
  'ext_proc endpoint picker conversation (%s)',
  (transport) => {
    let tearDown: () => Promise<void>;
    beforeAll(async () => {
      tearDown = await setUp(transport);
    });
    afterAll(async () => {
      await tearDown?.();
    });

    it('answers request headers with the best healthy, fresh endpoint and its fallbacks, in header and envoy.lb metadata', async () => {
      const a = await exchange(client, { path: '/cart' });
      expect(a.response).toBe('request_headers');
      const mutation = a.request_headers!.response!.header_mutation!;
      // shop-sick (failing) and shop-silent (stale) score higher but may not take traffic.
      expect(metadataEndpoints(a)).toBe('10.0.0.2:8080,10.0.0.3:8080,10.0.0.4:8080');
      expect(headerEndpoints(a)).toBe('10.0.0.2:8080,10.0.0.3:8080,10.0.0.4:8080');
      const set = mutation.set_headers![0]!;
      // Envoy rejects a header option that sets both value and raw_value.
      expect(set.header.value ?? '').toBe('');
      expect(set.append_action).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
      expect(mutation.remove_headers ?? []).toEqual([]);
      expect(a.request_headers!.response!.status ?? 'CONTINUE').toBe('CONTINUE');
    });

    it('removes a client-sent x-gateway-destination-endpoint and never trusts it', async () => {
      const a = await exchange(client, {
        headers: { 'x-gateway-destination-endpoint': '6.6.6.6:22' },
        close: 'cancel',
      });
      expect(a.request_headers!.response!.header_mutation!.remove_headers).toEqual([
        'x-gateway-destination-endpoint',
      ]);
      expect(metadataEndpoints(a)).toBe('10.0.0.2:8080,10.0.0.3:8080,10.0.0.4:8080');
      expect(headerEndpoints(a)).not.toContain('6.6.6.6');
    });

    it('keeps the caller order with dynamic routing off, skipping endpoints that may not take traffic', async () => {
      const a = await exchange(client, {
        headers: {
          'x-augur-dynamic-routing': 'false',
          'x-augur-endpoints': 'shop-sick,shop-a,shop-d,shop-b',
        },
      });
      expect(metadataEndpoints(a)).toBe('10.0.0.1:8080,10.0.0.4:8080,10.0.0.2:8080');
    });

    it('orders the caller list by score with dynamic routing on, and brackets IPv6 addresses', async () => {
      const a = await exchange(client, {
        headers: { 'x-augur-dynamic-routing': 'TRUE', 'x-augur-endpoints': 'shop-v6, shop-a' },
      });
      expect(metadataEndpoints(a)).toBe('10.0.0.1:8080,[fd00::7]:9000');
    });

    it('joins a repeated x-augur-endpoints header as a list', async () => {
      const a = await exchange(client, {
        headers: { 'x-augur-dynamic-routing': 'false', 'x-augur-endpoints': ['shop-c', 'shop-a'] },
      });
      expect(metadataEndpoints(a)).toBe('10.0.0.3:8080,10.0.0.1:8080');
    });

    it('maps the route and cluster attributes to a service', async () => {
      const byRoute = await exchange(client, {
        routeName: 'checkout-route',
        clusterName: 'whatever',
      });
      expect(metadataEndpoints(byRoute)).toBe('10.1.0.1:7000');
      const byCluster = await exchange(client, { routeName: 'r', clusterName: 'payments-cluster' });
      expect(metadataEndpoints(byCluster)).toBe('10.2.0.1:7001');
      const fallback = await exchange(client, { routeName: 'r', clusterName: 'unknown' });
      expect(metadataEndpoints(fallback)).toBe('10.0.0.2:8080,10.0.0.3:8080,10.0.0.4:8080');
    });

    it.each([
      ['x-augur-dynamic-routing', 'yes', /x-augur-dynamic-routing: "yes" is not true or false/],
      ['x-augur-endpoints', 'shop-a,,shop-b', /x-augur-endpoints: entry 2 is empty/],
      ['x-augur-endpoints', 'shop a', /x-augur-endpoints: entry 1 "shop a" is not an endpoint id/],
      [
        'x-augur-monitoring-interval',
        'soon',
        /x-augur-monitoring-interval: "soon" is not a duration/,
      ],
      [
        'x-augur-monitoring-interval',
        '0.001',
        /x-augur-monitoring-interval: 0.001 s is outside the allowed range 0.1 s to 300 s/,
      ],
      ['x-augur-monitoring-interval', '1h', /outside the allowed range/],
    ])('rejects %s: %s with 400 naming the header and why', async (name, value, why) => {
      const a = await exchange(client, { headers: { [name]: value } });
      const r = immediate(a);
      expect(r.status).toBe(400);
      expect(r.body).toMatch(why);
      expect(r.details).toBe('augur_bad_routing_header');
    });

    it('rejects a single-valued routing header repeated with different values', async () => {
      const r = immediate(
        await exchange(client, { headers: { 'x-augur-dynamic-routing': ['true', 'false'] } }),
      );
      expect(r.status).toBe(400);
      expect(r.body).toMatch(/x-augur-dynamic-routing: sent more than once/);
    });

    it('answers 503 when no candidate may take the request', async () => {
      const r = immediate(
        await exchange(client, { headers: { 'x-augur-endpoints': 'shop-sick,nope' } }),
      );
      expect(r.status).toBe(503);
      expect(r.body).toMatch(/none of the 2 endpoints in x-augur-endpoints/);
    });

    it('routes to a stale endpoint when no candidate is fresh, never to a failing one', async () => {
      const r = await exchange(client, {
        headers: { 'x-augur-endpoints': 'shop-sick,shop-silent,nope' },
      });
      expect(metadataEndpoints(r)).toBe('10.0.0.6:8080');
    });

    it('answers 503 for a service without endpoints', async () => {
      const r = immediate(await exchange(client, { routeName: 'ghost-route', clusterName: 'y' }));
      expect(r.status).toBe(503);
      expect(r.body).toMatch(/service "ghost" has no endpoints known to augur/);
      expect(r.details).toBe('augur_no_endpoint');
    });

    it('forwards x-augur-monitoring-interval to the LPS once per endpoint set within the gap', async () => {
      forwarded.length = 0;
      const headers = {
        'x-augur-endpoints': 'shop-b,shop-a',
        'x-augur-monitoring-interval': '500ms',
      };
      const first = await exchange(client, { headers });
      const second = await exchange(client, {
        headers: { ...headers, 'x-augur-endpoints': 'shop-a,shop-b' },
      });
      expect(metadataEndpoints(first)).toBe('10.0.0.2:8080,10.0.0.1:8080');
      expect(metadataEndpoints(second)).toBe('10.0.0.2:8080,10.0.0.1:8080');
      await new Promise((r) => setTimeout(r, 20));
      expect(forwarded).toEqual([{ service: 'shop', ids: ['shop-b', 'shop-a'], seconds: 0.5 }]);
      const metrics = await registry.getSingleMetricAsString(
        'augur_rrm_monitoring_interval_requests_total',
      );
      expect(metrics).toMatch(/outcome="forwarded"} 1/);
      expect(metrics).toMatch(/outcome="rate_limited"} 1/);
    });

    it('follows a new list version at once', async () => {
      source.set('checkout', [
        { endpointId: 'co-1', address: '10.1.0.1', port: 7000, score: 0.2 },
        { endpointId: 'co-2', address: '10.1.0.2', port: 7000, score: 0.8 },
      ]);
      const a = await exchange(client, { routeName: 'checkout-route' });
      expect(metadataEndpoints(a)).toBe('10.1.0.2:7000,10.1.0.1:7000');
    });

    it('serves many concurrent streams, one per request, and closes every one', async () => {
      const answers = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          exchange(client, {
            close: i % 2 ? 'cancel' : 'end-then-cancel',
            headers: { 'x-augur-endpoints': 'shop-a,shop-c' },
          }),
        ),
      );
      for (const a of answers) expect(metadataEndpoints(a)).toBe('10.0.0.3:8080,10.0.0.1:8080');
      await expect
        .poll(async () =>
          (await registry.getSingleMetricAsString('augur_rrm_ext_proc_streams'))
            .trim()
            .split('\n')
            .pop(),
        )
        .toBe('augur_rrm_ext_proc_streams 0');
    });

    it('keeps a routed stream open for its response headers, counts the request in flight until then, and closes with OK', async () => {
      const pick = rrm.loads.of('10.0.0.2:8080');
      const before = { responses: pick.responses, failures: pick.failures };
      const { request, response, status } = await exchangeWithResponse(
        client,
        { path: '/cart' },
        { status: 200, upstreamAddress: '10.0.0.2:8080' },
        async (answer) => {
          expect(metadataEndpoints(answer)).toMatch(/^10\.0\.0\.2:8080,/);
          expect(pick.inFlight).toBe(1);
          // nothing more comes from the RRM until the response headers
          await new Promise((r) => setTimeout(r, 20));
        },
      );
      expect(request.response).toBe('request_headers');
      expect(response.response).toBe('response_headers');
      expect(status).toBe(grpc.status.OK);
      expect(pick.inFlight).toBe(0);
      expect(pick.responses).toBe(before.responses + 1);
      expect(pick.failures).toBe(before.failures);
      expect(pick.latency).toBeGreaterThan(0.015);
      expect(await registry.getSingleMetricAsString('augur_rrm_routed_requests_total')).toMatch(
        /outcome="answered"} [1-9]/,
      );
    });

    it('reads which endpoint answered from upstream.address: a retry to a fallback is a failure of the pick', async () => {
      const pick = rrm.loads.of('10.0.0.2:8080');
      const fallback = rrm.loads.of('10.0.0.3:8080');
      const before = { pick: pick.failures, fallback: fallback.responses };
      await exchangeWithResponse(
        client,
        { path: '/cart' },
        { status: 200, upstreamAddress: '10.0.0.3:8080' },
      );
      expect(pick.failures).toBe(before.pick + 1);
      expect(fallback.responses).toBe(before.fallback + 1);
      expect(fallback.failures).toBe(0);
      expect(pick.inFlight + fallback.inFlight).toBe(0);
    });

    it('a 5xx response counts as a failure of the endpoint that sent it', async () => {
      const pick = rrm.loads.of('10.0.0.2:8080');
      const before = pick.failures;
      await exchangeWithResponse(client, {}, { status: 503, upstreamAddress: '10.0.0.2:8080' });
      expect(pick.failures).toBe(before + 1);
    });

    it.each(['cancel', 'end'] as const)(
      'gives the in-flight count back when the stream ends without response headers (%s)',
      async (how) => {
        const pick = rrm.loads.of('10.0.0.2:8080');
        await new Promise<void>((resolve, reject) => {
          const stream = client.Process();
          stream.on('data', () => {
            expect(pick.inFlight).toBe(1);
            if (how === 'cancel') stream.cancel();
            else stream.end();
            resolve();
          });
          stream.on('error', (e: grpc.ServiceError) =>
            e.code === grpc.status.CANCELLED ? undefined : reject(e),
          );
          stream.write(requestHeadersMessage({ path: '/x' }));
        });
        await expect.poll(() => pick.inFlight).toBe(0);
        expect(await registry.getSingleMetricAsString('augur_rrm_requests_in_flight')).toMatch(
          /augur_rrm_requests_in_flight 0/,
        );
      },
    );

    it('lets a phase it did not ask for through unchanged', async () => {
      const a = await new Promise<ExtProcAnswer>((resolve, reject) => {
        const stream = client.Process();
        stream.on('data', (m: ExtProcAnswer) => {
          resolve(m);
          stream.cancel();
        });
        stream.on('error', (e: Error & { code?: number }) =>
          e.code === 1 ? undefined : reject(e),
        );
        stream.write({
          response_headers: {
            headers: { headers: [{ key: ':status', raw_value: Buffer.from('200') }] },
          },
        });
      });
      expect(a.response).toBe('response_headers');
    });
  },
);
