import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/serve/config.js';
import {
  cliOptions,
  composeConfig,
  parseCommand,
  publishes,
  type ComposeConfig,
} from './compose-support.js';

/*
 * docker-compose.cluster.yml over docker-compose.yml, checked without a container engine:
 * docker-compose (v1) merges and validates the two; then Redis and three augur serve replicas in
 * cluster mode, one address (`augur`) for all three, each with the CLI's own flags and a valid
 * configuration, started once Redis is healthy.
 */

const REPLICAS = ['augur', 'augur-2', 'augur-3'];
let compose: ComposeConfig;
const options = cliOptions();

beforeAll(async () => {
  compose = await composeConfig(['docker-compose.yml', 'docker-compose.cluster.yml']);
}, 60_000);

const service = (name: string) => {
  const s = compose.services[name];
  if (!s) throw new Error(`no service ${name}`);
  return s;
};

describe('docker-compose.cluster.yml', () => {
  it('runs Redis (>= 7) and three augur serve replicas on it, after Redis is healthy', () => {
    expect(service('redis').image).toMatch(/^redis:7/);
    expect(service('redis').healthcheck?.test).toContain('redis-cli');
    for (const name of REPLICAS) {
      const s = service(name);
      const { subcommand, flags } = parseCommand(s.command ?? [], options);
      expect(subcommand).toBe('serve');
      expect(flags.get('--cluster')).toBe('redis://redis:6379');
      // The flags make a valid configuration (the URL passes cluster.redis's check).
      const config = loadConfig({
        env: {},
        flags: { cluster: { redis: flags.get('--cluster') as string } },
      });
      expect(config.cluster.redis).toBe('redis://redis:6379');
      expect(s.depends_on?.redis?.condition).toBe('service_healthy');
      expect(s.healthcheck?.test.join(' ')).toContain('/healthz');
    }
  });

  it('gives the three replicas one address, their own IPs and data, and one set of host ports', () => {
    const ips = new Set<string>();
    for (const name of REPLICAS) {
      const net = service(name).networks?.demo as
        { ipv4_address?: string; aliases?: string[] } | undefined;
      expect(net?.ipv4_address).toBeDefined();
      ips.add(net!.ipv4_address!);
      // `augur` is the first replica's name and the others' alias: it resolves to all three.
      if (name !== 'augur') expect(net?.aliases).toContain('augur');
    }
    expect(ips.size).toBe(3);
    const dataVolumes = REPLICAS.map((n) =>
      (service(n).volumes ?? []).find((v) => v.includes(':/var/lib/augur')),
    );
    expect(new Set(dataVolumes).size).toBe(3);
    expect(publishes(service('augur'), 18000)).toBe(true);
    for (const name of ['augur-2', 'augur-3']) expect(service(name).ports ?? []).toEqual([]);
    // Agents still dial the one address.
    for (const agent of ['agent-1', 'agent-2', 'agent-3']) {
      const { flags } = parseCommand(service(agent).command ?? [], options);
      expect(flags.get('--lps')).toBe('augur:18000');
    }
  });
});
