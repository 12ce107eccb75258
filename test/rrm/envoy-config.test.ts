import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { rrmConfigSchema } from '../../src/rrm/config.js';
import { checkEnvoyFolder } from '../../src/xds/envoy-config-check.js';

/*
 * envoy/ must be valid for Envoy (the strict proto check, shared with the xDS part) and must
 * wire the endpoint picker the way the RRM needs it: the traps of DESIGN.md are asserted one
 * by one, since a valid config can still silently drop the picker's answer.
 */

const ENVOY_DIR = join(import.meta.dirname, '../../envoy');
type Tree = Record<string, unknown>;
const at = (v: unknown, ...path: Array<string | number>): unknown =>
  path.reduce<unknown>((o, k) => (o as Tree | undefined)?.[k as string], v);

function load(file: string): Tree {
  return parse(readFileSync(join(ENVOY_DIR, file), 'utf8')) as Tree;
}

function hcm(doc: Tree): Tree {
  return at(
    doc,
    'static_resources',
    'listeners',
    0,
    'filter_chains',
    0,
    'filters',
    0,
    'typed_config',
  ) as Tree;
}

describe('envoy/ configuration for the endpoint picker', () => {
  it('every YAML passes the strict check against Envoy protos (override-host included)', () => {
    const results = checkEnvoyFolder(ENVOY_DIR);
    expect([...results.keys()]).toEqual(
      expect.arrayContaining(['bootstrap.yaml', 'bootstrap-static-cluster.yaml']),
    );
    for (const [file, problems] of results)
      expect({ file, problems }).toEqual({ file, problems: [] });
  });

  it.each(['bootstrap.yaml', 'bootstrap-static-cluster.yaml'])(
    '%s: ext_proc before the router, as the picker needs',
    (file) => {
      const filters = hcm(load(file)).http_filters as Tree[];
      // Client-sent augur headers are stripped first (test/rrm/envoy-edge-headers.test.ts), then
      // what the operator's routes set is added, then the RRM reads them.
      expect(filters.map((f) => f.name)).toEqual([
        'augur.strip_client_headers',
        'augur.route_headers',
        'envoy.filters.http.ext_proc',
        'envoy.filters.http.router',
      ]);
      const ext = filters[2]!.typed_config as Tree;
      expect(ext.processing_mode).toEqual({
        request_header_mode: 'SEND',
        // The response headers carry the RRM's in-band signals.
        response_header_mode: 'SEND',
        request_body_mode: 'NONE',
        response_body_mode: 'NONE',
        request_trailer_mode: 'SKIP',
        response_trailer_mode: 'SKIP',
      });
      expect(ext.failure_mode_allow).toBe(true);
      expect(ext.message_timeout).toMatch(/^\d+(\.\d+)?s$/);
      expect(at(ext, 'metadata_options', 'receiving_namespaces', 'untyped')).toEqual(['envoy.lb']);
      expect(ext.request_attributes).toEqual(['xds.route_name', 'xds.cluster_name']);
      // Which endpoint answered: a retry goes to a fallback, not the pick.
      expect(ext.response_attributes).toEqual(['upstream.address']);
      const cluster = at(ext, 'grpc_service', 'envoy_grpc', 'cluster_name');
      const clusters = at(load(file), 'static_resources', 'clusters') as Tree[];
      const rrmCluster = clusters.find((c) => c.name === cluster)!;
      // ext_proc is gRPC: the cluster must speak HTTP/2.
      expect(
        at(
          rrmCluster,
          'typed_extension_protocol_options',
          'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
          'explicit_http_config',
        ),
      ).toHaveProperty('http2_protocol_options');
      // A stream per request in flight: the default circuit breaker (1,024) would cut them.
      const limits = at(rrmCluster, 'circuit_breakers', 'thresholds', 0) as Tree;
      expect(limits.max_requests).toBeGreaterThanOrEqual(100_000);
      expect(limits.max_pending_requests).toBeGreaterThanOrEqual(100_000);
    },
  );

  it.each(['bootstrap.yaml', 'bootstrap-static-cluster.yaml'])(
    '%s: the route retries onto the fallbacks the RRM gives',
    (file) => {
      const route = at(
        hcm(load(file)),
        'route_config',
        'virtual_hosts',
        0,
        'routes',
        0,
        'route',
      ) as Tree;
      const retry = route.retry_policy as Tree;
      expect(String(retry.retry_on).split(',')).toEqual(
        expect.arrayContaining([
          'connect-failure',
          'refused-stream',
          'reset',
          'retriable-status-codes',
        ]),
      );
      expect(retry.retriable_status_codes).toEqual([503]);
      expect(retry.num_retries).toBe(rrmConfigSchema.parse({}).fallbacks);
    },
  );

  it('the static cluster reads the picker metadata (not the header) and falls back to least request', () => {
    const clusters = at(
      load('bootstrap-static-cluster.yaml'),
      'static_resources',
      'clusters',
    ) as Tree[];
    const demo = clusters.find((c) => c.name === 'demo')!;
    const policy = at(
      demo,
      'load_balancing_policy',
      'policies',
      0,
      'typed_extension_config',
    ) as Tree;
    expect(policy.name).toBe('envoy.load_balancing_policies.override_host');
    const config = policy.typed_config as Tree;
    expect(config.override_host_sources).toEqual([
      { metadata: { key: 'envoy.lb', path: [{ key: 'x-gateway-destination-endpoint' }] } },
    ]);
    expect(at(config, 'fallback_policy', 'policies', 0, 'typed_extension_config', 'name')).toBe(
      'envoy.load_balancing_policies.least_request',
    );
    expect(demo.type).toBe('EDS');
  });
});
