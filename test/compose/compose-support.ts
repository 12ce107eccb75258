import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Command, type Option } from 'commander';
import { parse } from 'yaml';
import { registerAgentCommand } from '../../src/agent/cli.js';
import { registerDemoToolsCommand } from '../../src/demo/cli.js';
import { registerServeCommand } from '../../src/serve/cli.js';

export const REPO = join(import.meta.dirname, '../..');
const run = promisify(execFile);

/** One service of `docker-compose config` (compose's own normalised view: anchors merged, paths absolute). */
export interface ComposeService {
  image?: string;
  build?: { context: string };
  command?: string[];
  /** Normalised by docker-compose to objects. */
  ports?: Array<{ published: number | string; target: number }>;
  volumes?: string[];
  healthcheck?: { test: string[]; disable?: boolean };
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  networks?: Record<string, { ipv4_address?: string } | null>;
}

export interface ComposeConfig {
  services: Record<string, ComposeService>;
  networks?: Record<string, { ipam?: { config?: Array<{ subnet?: string; ip_range?: string }> } }>;
  volumes?: Record<string, unknown>;
}

/** Runs Debian's docker-compose (v1) on the repository's file: validation plus normalisation. */
export async function composeConfig(
  files: readonly string[] = ['docker-compose.yml'],
): Promise<ComposeConfig> {
  const { stdout } = await run('docker-compose', [...files.flatMap((f) => ['-f', f]), 'config'], {
    cwd: REPO,
    timeout: 20_000,
  });
  return parse(stdout) as ComposeConfig;
}

/** An option of a subcommand, as commander knows it. */
export interface CliOption {
  long: string;
  takesValue: boolean;
  mandatory: boolean;
}

/**
 * The options of the subcommands the compose file runs, read from the same register
 * functions `src/cli/main.ts` calls (that main.ts calls them is checked through the real CLI).
 */
export function cliOptions(): Map<string, CliOption[]> {
  const program = new Command('augur');
  registerServeCommand(program);
  registerAgentCommand(program);
  registerDemoToolsCommand(program);
  return new Map(
    program.commands.map((c) => [
      c.name(),
      c.options.map((o: Option) => ({
        long: o.long ?? '',
        takesValue: o.required || o.optional,
        mandatory: o.mandatory,
      })),
    ]),
  );
}

/**
 * Splits `[subcommand, --flag, value, --switch, ...]` against the subcommand's options; throws
 * on an unknown flag, a flag without its value, a stray operand or a missing mandatory option.
 */
export function parseCommand(
  argv: readonly string[],
  options: Map<string, CliOption[]>,
): { subcommand: string; flags: Map<string, string | true> } {
  const [subcommand, ...rest] = argv;
  const known = options.get(subcommand ?? '');
  if (!subcommand || !known) throw new Error(`"${subcommand}" is not an augur subcommand`);
  const flags = new Map<string, string | true>();
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    const option = known.find((o) => o.long === arg);
    if (!option) throw new Error(`augur ${subcommand} has no option ${arg}`);
    if (option.takesValue) {
      const value = rest[++i];
      if (value === undefined || value.startsWith('--'))
        throw new Error(`augur ${subcommand} ${arg} needs a value`);
      flags.set(arg, value);
    } else {
      flags.set(arg, true);
    }
  }
  for (const o of known) {
    if (o.mandatory && !flags.has(o.long)) throw new Error(`augur ${subcommand} needs ${o.long}`);
  }
  return { subcommand, flags };
}

export interface SocketAddress {
  host: string;
  port: number;
}

/** The parts of envoy/bootstrap.yaml that the compose file must agree with. */
export interface BootstrapFacts {
  adminPort: number | undefined;
  listenerPorts: number[];
  /** Static clusters by name, with their endpoints' addresses. */
  clusters: Map<string, SocketAddress[]>;
  adsClusters: string[];
  /** Clusters named by an `envoy_grpc` service anywhere (ADS, ext_proc, ...). */
  grpcClusters: string[];
  /** Clusters named by ext_proc filters. */
  extProcClusters: string[];
  /** Clusters the routes send traffic to (augur serves them over CDS). */
  routeClusters: string[];
}

type Json = Record<string, unknown>;

function walk(node: unknown, visit: (obj: Json, key: string | undefined) => void, key?: string) {
  if (Array.isArray(node)) for (const item of node) walk(item, visit, key);
  else if (node && typeof node === 'object') {
    visit(node as Json, key);
    for (const [k, v] of Object.entries(node)) walk(v, visit, k);
  }
}

function socketAddress(node: unknown): SocketAddress | undefined {
  const sa = (node as { socket_address?: { address?: string; port_value?: number } } | undefined)
    ?.socket_address;
  if (!sa?.address || sa.port_value === undefined) return undefined;
  return { host: sa.address, port: sa.port_value };
}

export function readBootstrap(path = join(REPO, 'envoy/bootstrap.yaml')): BootstrapFacts {
  const doc = parse(readFileSync(path, 'utf8')) as Json;
  const statics = (doc.static_resources ?? {}) as { listeners?: Json[]; clusters?: Json[] };
  const clusters = new Map<string, SocketAddress[]>();
  for (const c of statics.clusters ?? []) {
    const addresses: SocketAddress[] = [];
    walk(c.load_assignment, (obj) => {
      const sa = socketAddress(obj.address);
      if (sa) addresses.push(sa);
    });
    clusters.set(String(c.name), addresses);
  }
  const grpcClusters: string[] = [];
  const extProcClusters: string[] = [];
  const routeClusters: string[] = [];
  walk(doc, (obj, key) => {
    const envoyGrpc = obj.envoy_grpc as { cluster_name?: string } | undefined;
    if (envoyGrpc?.cluster_name) grpcClusters.push(envoyGrpc.cluster_name);
    if (key === 'route' && typeof obj.cluster === 'string') routeClusters.push(obj.cluster);
    const type = obj['@type'];
    if (typeof type === 'string' && type.endsWith('ext_proc.v3.ExternalProcessor')) {
      walk(obj.grpc_service, (inner) => {
        const name = (inner.envoy_grpc as { cluster_name?: string } | undefined)?.cluster_name;
        if (name) extProcClusters.push(name);
      });
    }
  });
  const adsClusters: string[] = [];
  walk((doc.dynamic_resources as Json | undefined)?.ads_config, (obj) => {
    const name = (obj.envoy_grpc as { cluster_name?: string } | undefined)?.cluster_name;
    if (name) adsClusters.push(name);
  });
  return {
    adminPort: socketAddress((doc.admin as Json | undefined)?.address)?.port,
    listenerPorts: (statics.listeners ?? [])
      .map((l) => socketAddress(l.address)?.port)
      .filter((p): p is number => p !== undefined),
    clusters,
    adsClusters,
    grpcClusters: [...new Set(grpcClusters)],
    extProcClusters: [...new Set(extProcClusters)],
    routeClusters: [...new Set(routeClusters)],
  };
}

/** Does the service publish this container port on the same host port? */
export function publishes(s: ComposeService, port: number): boolean {
  return (s.ports ?? []).some((p) => Number(p.target) === port && Number(p.published) === port);
}

/** `host:port` of a URL, with the scheme's default port. */
export function urlAddress(url: string): SocketAddress {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)) };
}

export function hostPort(value: string): SocketAddress {
  const i = value.lastIndexOf(':');
  return { host: value.slice(0, i), port: Number(value.slice(i + 1)) };
}

/** Is the IPv4 address inside `a.b.c.d/n`? */
export function inSubnet(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  const toInt = (a: string) => a.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
  const size = 2 ** (32 - Number(bits));
  const start = Math.floor(toInt(base!) / size) * size;
  const n = toInt(ip);
  return n >= start && n < start + size;
}
