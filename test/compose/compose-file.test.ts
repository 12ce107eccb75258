import { execFile } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  REPO,
  cliOptions,
  composeConfig,
  hostPort,
  inSubnet,
  parseCommand,
  publishes,
  readBootstrap,
  urlAddress,
  type BootstrapFacts,
  type ComposeConfig,
  type ComposeService,
} from './compose-support.js';
import { parseRamp } from '../../src/demo/profile.js';

/**
 * docker-compose.yml, checked without a container engine: Debian's docker-compose (v1)
 * validates and normalises it, then every service's command is parsed against the real
 * CLI's options and every address, port, mount and start-order rule is checked against the
 * other services and envoy/bootstrap.yaml.
 */

const AUGUR_IMAGE = 'augur:local';
let compose: ComposeConfig;
let bootstrap: BootstrapFacts;
const options = cliOptions();
// Loaded in each test (once), not in beforeAll: a file docker-compose rejects then fails every
// test by name instead of skipping them.
let loading: Promise<void> | undefined;
beforeEach(async () => {
  loading ??= (async () => {
    compose = await composeConfig();
    bootstrap = readBootstrap();
  })();
  await loading;
});

const service = (name: string): ComposeService => {
  const s = compose.services[name];
  if (!s) throw new Error(`docker-compose.yml has no service "${name}"`);
  return s;
};
const augurServices = () =>
  Object.entries(compose.services).filter(([, s]) => s.image === AUGUR_IMAGE);
const commandOf = (name: string) => parseCommand(service(name).command ?? [], options);
const flag = (name: string, f: string): string => {
  const v = commandOf(name).flags.get(f);
  if (typeof v !== 'string') throw new Error(`${name} has no ${f} value`);
  return v;
};
const byCommand = (sub: string) =>
  augurServices()
    .filter(([, s]) => s.command?.[0] === sub)
    .map(([n]) => n);
const healthUrl = (name: string): string | undefined => {
  const test = service(name).healthcheck?.test ?? [];
  return test.find((t) => /^https?:\/\//.test(t));
};
const ipOf = (name: string): string | undefined =>
  Object.values(service(name).networks ?? {}).find((n) => n?.ipv4_address)?.ipv4_address;

describe('docker-compose.yml', () => {
  it('is accepted by docker-compose (v1) and has the demo: augur, three backends with agents, Envoy, a load generator', () => {
    expect(Object.keys(compose.services).sort()).toEqual(
      [
        'agent-1',
        'agent-2',
        'agent-3',
        'augur',
        'backend-1',
        'backend-2',
        'backend-3',
        'envoy',
        'loadgen',
      ].sort(),
    );
    expect(byCommand('serve')).toEqual(['augur']);
    expect(byCommand('demo-backend')).toHaveLength(3);
    expect(byCommand('agent')).toHaveLength(3);
    expect(byCommand('loadgen')).toHaveLength(1);
  });

  it("runs every augur service from this repository's Dockerfile with a subcommand and flags the CLI has", () => {
    const services = augurServices();
    expect(services.length).toBe(8);
    for (const [name, s] of services) {
      expect(realpathSync(s.build!.context), name).toBe(realpathSync(REPO));
      expect(() => parseCommand(s.command ?? [], options), name).not.toThrow();
    }
  });

  it('uses only subcommands that src/cli/main.ts registers (through the real CLI)', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', '--help'],
      { cwd: REPO, timeout: 60_000 },
    );
    const listed = new Set(
      [...stdout.matchAll(/^\s{2}([a-z][a-z-]*)\b/gm)].map((m) => m[1]).filter(Boolean),
    );
    for (const [, s] of augurServices()) expect(listed).toContain(s.command![0]);
  });

  it('agrees on ports: what each service listens on is what its health check, its clients and its port mappings use', () => {
    const grpc = hostPort(flag('augur', '--grpc-listen'));
    const http = hostPort(flag('augur', '--http-listen'));
    expect(grpc.host).toBe('0.0.0.0'); // reachable from the other containers
    expect(http.host).toBe('0.0.0.0');
    expect(publishes(service('augur'), grpc.port)).toBe(true);
    expect(publishes(service('augur'), http.port)).toBe(true); // the dashboard, from the host
    expect(urlAddress(healthUrl('augur')!)).toEqual({ host: '127.0.0.1', port: http.port });

    const agents = byCommand('agent');
    const backends = byCommand('demo-backend');
    const services = new Set<string>();
    const ids = new Set<string>();
    for (const backend of backends) {
      const listen = hostPort(flag(backend, '--listen'));
      expect(listen.host, backend).toBe('0.0.0.0');
      expect(urlAddress(healthUrl(backend)!), backend).toEqual({
        host: '127.0.0.1',
        port: listen.port,
      });
      // Exactly one agent beside each backend, reporting the backend's own address and load.
      const mine = agents.filter((a) => urlAddress(flag(a, '--load-url')).host === backend);
      expect(mine, backend).toHaveLength(1);
      const agent = mine[0]!;
      expect(hostPort(flag(agent, '--lps'))).toEqual({ host: 'augur', port: grpc.port });
      expect(hostPort(flag(agent, '--address'))).toEqual({
        host: ipOf(backend),
        port: listen.port,
      });
      expect(urlAddress(flag(agent, '--load-url'))).toEqual({ host: backend, port: listen.port });
      expect(new URL(flag(agent, '--load-url')).pathname).toBe('/load');
      expect(urlAddress(flag(agent, '--health-url'))).toEqual({ host: backend, port: listen.port });
      expect(flag(backend, '--id')).toBe(flag(agent, '--endpoint-id'));
      ids.add(flag(agent, '--endpoint-id'));
      services.add(flag(agent, '--service'));
    }
    expect(ids.size).toBe(backends.length);
    expect(services.size).toBe(1); // one service, balanced by one Envoy cluster

    const target = urlAddress(flag('loadgen', '--target'));
    expect(target.host).toBe('envoy');
    expect(bootstrap.listenerPorts).toContain(target.port);
  });

  it("starts backend-2's background ramp within the first minute, as `augur demo` does", () => {
    const ramps = byCommand('demo-backend').filter((b) => commandOf(b).flags.has('--ramp'));
    expect(ramps).toEqual(['backend-2']);
    const ramp = parseRamp(flag('backend-2', '--ramp'));
    expect(ramp.at).toBeLessThan(60);
    expect(ramp.to).toBeGreaterThanOrEqual(0.8);
  });

  it('mounts envoy/bootstrap.yaml from the repository into a pinned Envoy >= 1.35, and the two agree', () => {
    const envoy = service('envoy');
    const version = /^envoyproxy\/envoy:v(\d+)\.(\d+)\.(\d+)$/.exec(envoy.image ?? '');
    expect(version, `pinned official image, got ${envoy.image}`).not.toBeNull();
    expect(Number(version![1]) * 1000 + Number(version![2])).toBeGreaterThanOrEqual(1035);

    // The file Envoy is told to read, found through the bind mounts, is the repository's bootstrap.
    const command = envoy.command ?? [];
    const configPath = command[command.indexOf('-c') + 1]!;
    const mounts = (envoy.volumes ?? []).map((v) => {
      const [host, container] = v.split(':');
      return { host: host!, container: container! };
    });
    const mount = mounts.find((m) => configPath.startsWith(`${m.container}/`));
    expect(mount, `a mount holding ${configPath}`).toBeDefined();
    for (const m of mounts) expect(existsSync(m.host), m.host).toBe(true);
    const hostFile = join(mount!.host, relative(mount!.container, configPath));
    expect(realpathSync(hostFile)).toBe(realpathSync(join(REPO, 'envoy/bootstrap.yaml')));
    expect(readFileSync(hostFile, 'utf8')).toContain('dynamic_resources');

    // Envoy publishes its listener(s) and admin port, and its health check asks the admin port.
    for (const port of [...bootstrap.listenerPorts, bootstrap.adminPort!]) {
      expect(publishes(envoy, port), `envoy publishes ${port}`).toBe(true);
    }
    expect(envoy.healthcheck!.test.join(' ')).toContain(`/${bootstrap.adminPort}`);

    // ext_proc goes to augur's ext_proc fast path; ADS and any other gRPC service Envoy calls
    // to augur's gRPC address.
    const grpc = hostPort(flag('augur', '--grpc-listen'));
    const extProc = hostPort(flag('augur', '--ext-proc-listen'));
    expect(extProc.host).toBe('0.0.0.0'); // reachable from Envoy's container
    expect(extProc.port).not.toBe(grpc.port);
    expect(bootstrap.adsClusters.length).toBeGreaterThan(0);
    for (const name of bootstrap.grpcClusters) {
      const addresses = bootstrap.clusters.get(name);
      expect(addresses, `static cluster ${name}`).toBeDefined();
      const port = bootstrap.extProcClusters.includes(name) ? extProc.port : grpc.port;
      for (const a of addresses!) expect([a.host, a.port], name).toEqual(['augur', port]);
    }
    for (const name of bootstrap.adsClusters) expect(bootstrap.extProcClusters).not.toContain(name);
    // The routes' cluster is the agents' service: augur's xDS names each cluster after its service.
    expect(bootstrap.routeClusters).toEqual([flag('agent-1', '--service')]);
  });

  it('wires the ext_proc endpoint picker to augur (the per-request pick)', () => {
    expect(bootstrap.extProcClusters.length).toBeGreaterThan(0);
    for (const name of bootstrap.extProcClusters) expect(bootstrap.grpcClusters).toContain(name);
  });

  it('starts in order: what a service needs is healthy first, and every awaited health check exists', () => {
    const needs = (name: string) =>
      Object.fromEntries(
        Object.entries(service(name).depends_on ?? {}).map(([k, v]) => [k, v.condition]),
      );
    for (const agent of byCommand('agent')) {
      const backend = urlAddress(flag(agent, '--load-url')).host;
      expect(needs(agent)).toEqual({ augur: 'service_healthy', [backend]: 'service_healthy' });
    }
    expect(needs('envoy')).toEqual({ augur: 'service_healthy' });
    expect(needs('loadgen')).toMatchObject({ envoy: 'service_healthy' });
    for (const agent of byCommand('agent')) expect(Object.keys(needs('loadgen'))).toContain(agent);

    for (const [name, s] of Object.entries(compose.services)) {
      for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
        if (condition !== 'service_healthy') continue;
        const test = service(dep).healthcheck?.test ?? [];
        expect(test.length > 0 && test[0] !== 'NONE', `${name} waits for ${dep}'s health`).toBe(
          true,
        );
      }
    }
    // Health checks that run a script run one the image ships.
    const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
    for (const [name] of augurServices()) {
      const test = service(name).healthcheck?.test ?? [];
      const script = test.find((t) => t.endsWith('.mjs'));
      if (!script) continue;
      expect(existsSync(join(REPO, script)), script).toBe(true);
      expect(dockerfile).toMatch(new RegExp(`^COPY ${script} `, 'm'));
    }
  });

  it('gives the backends fixed addresses inside the network, outside its dynamic range, all different', () => {
    const ipam = Object.values(compose.networks ?? {})[0]?.ipam?.config?.[0];
    expect(ipam?.subnet).toBeDefined();
    const fixed = Object.keys(compose.services)
      .map((n) => ipOf(n))
      .filter((ip): ip is string => ip !== undefined);
    for (const b of byCommand('demo-backend')) expect(fixed).toContain(ipOf(b));
    expect(new Set(fixed).size).toBe(fixed.length);
    for (const ip of fixed) {
      expect(inSubnet(ip, ipam!.subnet!), ip).toBe(true);
      if (ipam!.ip_range) expect(inSubnet(ip, ipam!.ip_range), ip).toBe(false);
    }
  });
});
