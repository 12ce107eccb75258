import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authorizer, isRefusal } from '../../src/common/auth.js';
import { TlsMaterial } from '../../src/common/tls.js';
import { loadConfig } from '../../src/serve/config.js';
import {
  REPO,
  cliOptions,
  composeConfig,
  parseCommand,
  type ComposeConfig,
} from './compose-support.js';

/*
 * docker-compose.mtls.yml over docker-compose.yml, checked without a container engine:
 * docker-compose (v1) merges and validates the two; scripts/demo-certs.sh makes the demo's
 * certificates; then every file a service names is mounted and exists, augur's config loads with
 * its TLS material, no service says --insecure, and each party's certificate is the identity
 * docker/augur-mtls.yaml gives the rights it needs (and no more: an agent cannot report another
 * backend).
 */

const PKI_MOUNT = '/etc/augur/pki';
let compose: ComposeConfig;
let pki: string;
const options = cliOptions();

beforeAll(async () => {
  compose = await composeConfig(['docker-compose.yml', 'docker-compose.mtls.yml']);
  pki = mkdtempSync(join(tmpdir(), 'augur-demo-pki-'));
  execFileSync(join(REPO, 'scripts/demo-certs.sh'), [pki], { stdio: 'ignore' });
});
afterAll(() => rmSync(pki, { recursive: true, force: true }));

const service = (name: string) => {
  const s = compose.services[name];
  if (!s) throw new Error(`no service ${name}`);
  return s;
};

/** The host path a container path comes from, through the service's mounts. */
function hostPath(name: string, containerPath: string): string {
  for (const v of service(name).volumes ?? []) {
    const [source, target] = v.split(':');
    if (!source || !target) continue;
    if (containerPath === target || containerPath.startsWith(`${target}/`)) {
      const rest = containerPath.slice(target.length);
      // The pki folder is made by scripts/demo-certs.sh: read it from this test's copy.
      const root = relative(REPO, source) === 'pki' ? pki : source;
      return join(root, rest);
    }
  }
  throw new Error(`${name} does not mount ${containerPath}`);
}

const certificateOf = (file: string): PeerCertificate =>
  ({ subjectaltname: new X509Certificate(readFileSync(file)).subjectAltName }) as PeerCertificate;

function augurConfig() {
  const command = parseCommand(service('augur').command ?? [], options);
  const file = command.flags.get('--config');
  if (typeof file !== 'string') throw new Error('augur has no --config');
  const config = loadConfig({ file: hostPath('augur', file), env: {} });
  return { command, config };
}

describe('docker-compose.mtls.yml', () => {
  it('runs augur with TLS from the mounted demo certificates and without --insecure', () => {
    const { command, config } = augurConfig();
    expect(command.flags.has('--insecure')).toBe(false);
    const tls = config.security.tls;
    for (const f of [tls.cert, tls.key, tls.ca])
      expect(f.startsWith(`${PKI_MOUNT}/`), f).toBe(true);
    const material = TlsMaterial.load({
      ...tls,
      cert: hostPath('augur', tls.cert),
      key: hostPath('augur', tls.key),
      ca: hostPath('augur', tls.ca),
    });
    expect(material).toBeDefined();
    material?.close();
    expect(config.security.principals.length).toBeGreaterThan(0);
    // Its health check speaks HTTPS and trusts the demo CA.
    expect(service('augur').healthcheck?.test.join(' ')).toMatch(/https:\/\/localhost:18080/);
    expect(existsSync(hostPath('augur', service('augur').environment!.NODE_EXTRA_CA_CERTS!))).toBe(
      true,
    );
  });

  it("gives each agent its own certificate, allowed to report its backend and no other's", () => {
    const { config } = augurConfig();
    const authorizer = new Authorizer(config.security.principals);
    const agents = Object.keys(compose.services).filter((n) => n.startsWith('agent-'));
    expect(agents).toHaveLength(3);
    for (const name of agents) {
      const { flags } = parseCommand(service(name).command ?? [], options);
      expect(flags.has('--insecure'), name).toBe(false);
      const id = flags.get('--endpoint-id') as string;
      const cert = hostPath(name, flags.get('--tls-cert') as string);
      expect(existsSync(hostPath(name, flags.get('--tls-key') as string)), name).toBe(true);
      expect(existsSync(hostPath(name, flags.get('--tls-ca') as string)), name).toBe(true);
      expect(flags.get('--tls-server-name')).toBe('augur');
      const identity = authorizer.identify({ certificate: certificateOf(cert) });
      if (identity === undefined || isRefusal(identity)) throw new Error(`${name}: no identity`);
      const service_ = flags.get('--service') as string;
      expect(authorizer.mayReport(identity, id, service_), name).toBeUndefined();
      const other = agents.find((a) => a !== name)!.replace('agent-', 'backend-');
      expect(authorizer.mayReport(identity, other, service_)?.code, name).toBeDefined();
    }
    // The server certificate names `augur`, the name the agents expect.
    const san = new X509Certificate(readFileSync(hostPath('augur', config.security.tls.cert)))
      .subjectAltName;
    expect(san).toContain('DNS:augur');
  });

  it('points Envoy at bootstrap-mtls.yaml, whose certificate is a dataPlane identity', () => {
    const envoy = service('envoy');
    const bootstrapFile = (envoy.command ?? [])[(envoy.command ?? []).indexOf('-c') + 1]!;
    expect(bootstrapFile).toBe('/etc/envoy/bootstrap-mtls.yaml');
    const bootstrap = readFileSync(hostPath('envoy', bootstrapFile), 'utf8');
    const files = [...bootstrap.matchAll(/filename: ([^ }]+)/g)].map((m) => m[1]!);
    expect(files.length).toBeGreaterThanOrEqual(6);
    for (const f of files) expect(existsSync(hostPath('envoy', f)), f).toBe(true);
    const tlsClusters = (
      parse(bootstrap) as {
        static_resources: { clusters: Array<{ name: string; transport_socket?: unknown }> };
      }
    ).static_resources.clusters.filter((c) => c.transport_socket);
    expect(tlsClusters.map((c) => c.name).sort()).toEqual(['augur_rrm', 'augur_xds']);
    const { config } = augurConfig();
    const authorizer = new Authorizer(config.security.principals);
    const envoyCert = files.find((f) => f.endsWith('.crt') && !f.endsWith('ca.crt'))!;
    const presented = { certificate: certificateOf(hostPath('envoy', envoyCert)) };
    for (const path of [
      '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
      '/envoy.service.ext_proc.v3.ExternalProcessor/Process',
    ])
      expect(isRefusal(authorizer.authorize(path, presented, 'test')), path).toBe(false);
    expect(
      isRefusal(
        authorizer.authorize('/augur.v1.LoadPrediction/SetMonitoringInterval', presented, 'test'),
      ),
    ).toBe(true);
  });
});
