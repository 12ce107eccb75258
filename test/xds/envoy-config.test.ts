import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BOOTSTRAP_TYPE,
  checkEnvoyFolder,
  checkEnvoyYaml,
} from '../../src/xds/envoy-config-check.js';
import { envoyRegistry } from '../../src/xds/envoy-registry.js';

const ENVOY_DIR = join(import.meta.dirname, '../../envoy');
const protos = envoyRegistry();
const bootstrap = readFileSync(join(ENVOY_DIR, 'bootstrap.yaml'), 'utf8');
const check = (yaml: string, root = BOOTSTRAP_TYPE): string[] =>
  checkEnvoyYaml(yaml, root, { protos }).map((p) => `${p.path}: ${p.message}`);

describe('Envoy configuration check', () => {
  it('accepts every Envoy YAML shipped in envoy/', () => {
    const results = checkEnvoyFolder(ENVOY_DIR, { protos });
    expect([...results.keys()]).toContain('bootstrap.yaml');
    expect([...results.keys()]).toContain('bootstrap-mtls.yaml');
    for (const [file, problems] of results) expect(problems, file).toEqual([]);
  });

  it('catches a misspelt field inside a typed_config, with its path and a suggestion', () => {
    const problems = check(bootstrap.replace('stat_prefix: ingress', 'stat_prefx: ingress'));
    expect(problems).toEqual([
      'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefx: unknown field "stat_prefx" in envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager (did you mean "stat_prefix"?)',
    ]);
  });

  it('catches a wrong enum name', () => {
    const problems = check(bootstrap.replace('type: STRICT_DNS', 'type: STRICT_DNZ'));
    expect(problems).toEqual([
      'static_resources.clusters[0].type: cannot decode enum envoy.config.cluster.v3.Cluster.DiscoveryType from JSON: "STRICT_DNZ" (one of STATIC, STRICT_DNS, LOGICAL_DNS, EDS, ORIGINAL_DST)',
    ]);
  });

  it('catches two members of one oneof', () => {
    const problems = check(
      bootstrap.replace(
        'socket_address: { address: augur, port_value: 18000 }',
        'socket_address: { address: augur, port_value: 18000, named_port: grpc }',
      ),
    );
    expect(problems).toEqual([
      'static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address: cannot decode oneof envoy.config.core.v3.SocketAddress.port_specifier from JSON: oneof set multiple times by port_value and named_port',
    ]);
  });

  it('catches an unknown @type', () => {
    const problems = check(bootstrap.replace('http.router.v3.Router', 'http.router.v3.Routr'));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(
      /^static_resources\.listeners\[0\]\.filter_chains\[0\]\.filters\[0\]\.typed_config\.http_filters\[\d+\]\.typed_config\.@type: unknown type "envoy\.extensions\.filters\.http\.router\.v3\.Routr": no proto in augur's Envoy API or the given descriptor sets defines it$/,
    );
  });

  it('catches scalars of the wrong type and a malformed duration', () => {
    const problems = check(
      bootstrap
        .replace('connect_timeout: 1s', 'connect_timeout: 1')
        .replace('port_value: 9901', 'port_value: "ninety"'),
    );
    expect(problems).toEqual([
      'admin.address.socket_address.port_value: cannot decode field envoy.config.core.v3.SocketAddress.port_value from JSON: expected number (uint32), got "ninety"',
      'static_resources.clusters[0].connect_timeout: cannot decode message google.protobuf.Duration from JSON: 1',
    ]);
  });

  it('reads camelCase names as Envoy does, but not the same field twice', () => {
    expect(check('node: { id: a, userAgentName: envoy }')).toEqual([]);
    expect(check('node: { user_agent_name: envoy, userAgentName: envoy }')).toHaveLength(1);
  });

  it("knows the override-host policy from proto/envoy-extra, and a user's protos from a descriptor set", () => {
    const overrideHost = `
name: demo
type: EDS
eds_cluster_config: { eds_config: { ads: {}, resource_api_version: V3 } }
load_balancing_policy:
  policies:
    - typed_extension_config:
        name: envoy.load_balancing_policies.override_host
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost
          override_host_sources: [{ metadata: { key: envoy.lb, path: [{ key: x-gateway-destination-endpoint }] } }]
          fallback_policy:
            policies:
              - typed_extension_config:
                  name: envoy.load_balancing_policies.least_request
                  typed_config: { "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest }
`;
    expect(check(overrideHost, 'envoy.config.cluster.v3.Cluster')).toEqual([]);
    // selected_host_key is deliberately not in augur's minimal copy of the proto.
    expect(
      check(
        overrideHost.replace(
          'override_host_sources:',
          'selected_host_key: x\n          override_host_sources:',
        ),
        'envoy.config.cluster.v3.Cluster',
      ),
    ).toHaveLength(1);

    const dir = mkdtempSync(join(tmpdir(), 'augur-protos-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'acme/filters/v1'), { recursive: true });
    writeFileSync(
      join(dir, 'acme/filters/v1/tag.proto'),
      'syntax = "proto3";\npackage acme.filters.v1;\nmessage Tag { string value = 1; }\n',
    );
    const filter = `
name: ingress
address: { socket_address: { address: 0.0.0.0, port_value: 1 } }
filter_chains:
  - filters:
      - name: acme.tag
        typed_config: { "@type": type.googleapis.com/acme.filters.v1.Tag, value: x }
`;
    expect(check(filter, 'envoy.config.listener.v3.Listener')).toHaveLength(1);
    // Built as a user would, with buf (protoc --include_imports --descriptor_set_out does the same).
    const set = join(dir, 'acme.binpb');
    execFileSync(join(import.meta.dirname, '../../node_modules/.bin/buf'), [
      'build',
      dir,
      '-o',
      set,
    ]);
    expect(
      checkEnvoyYaml(filter, 'envoy.config.listener.v3.Listener', {
        descriptorSets: [readFileSync(set)],
      }),
    ).toEqual([]);
    expect(
      checkEnvoyYaml(filter.replace('value: x', 'valu: x'), 'envoy.config.listener.v3.Listener', {
        descriptorSets: [readFileSync(set)],
      }),
    ).toEqual(
      [
        'filter_chains[0].filters[0].typed_config.valu: unknown field "valu" in acme.filters.v1.Tag (did you mean "value"?)',
      ].map((line) => {
        const [path, ...rest] = line.split(': ');
        return { path, message: rest.join(': ') };
      }),
    );
  });

  it('checks the TLS transport sockets of the mTLS bootstrap as strictly', () => {
    const mtls = readFileSync(join(ENVOY_DIR, 'bootstrap-mtls.yaml'), 'utf8');
    expect(check(mtls)).toEqual([]);
    const problems = check(mtls.replace('trusted_ca:', 'trusted_cas:'));
    expect(problems.length).toBeGreaterThan(0);
    expect(problems[0]).toMatch(
      /unknown field "trusted_cas" in envoy\.extensions\.transport_sockets\.tls\.v3\.CertificateValidationContext/,
    );
  });

  it('reports YAML syntax errors', () => {
    expect(check('node: { id: [ }')[0]).toMatch(/^: YAML: /);
  });
});
