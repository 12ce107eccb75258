import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { formatHostPort, parseHostPort, type HostPort } from '../common/address.js';

/*
 * Where RouteResponse may deliver (issue 12, "fetch-anything": it delivered to any host:port
 * registered as an endpoint and returned the body, augur's own /metrics among them).
 *
 * A delivery goes ahead only when the endpoint's address
 * - resolves, every address of it, into `rrm.routeResponseAllow` (CIDRs; by default the private
 *   and loopback ranges), and the delivery then goes to the address checked (no second lookup a
 *   DNS answer could change in between);
 * - is none of augur's own listening addresses (`addOwnAddress`, fed by the servers as they
 *   start; an unspecified host such as 0.0.0.0 stands for every local address on that port);
 * - belongs to an endpoint whose identity was verified (`isVerified`, a seam for the identity
 *   model of docs/security.md; every endpoint passes by default).
 */

/** The private and loopback ranges (RFC 1918, RFC 4193, loopback). */
export const DEFAULT_ROUTE_RESPONSE_ALLOW = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '127.0.0.0/8',
  '::1/128',
  'fc00::/7',
];

export type RefusalReason = 'not_allowed' | 'own_address' | 'unverified' | 'unresolved';

export type GuardDecision =
  | { ok: true; /** ip:port to deliver to */ address: string }
  | { ok: false; reason: RefusalReason; message: string };

/** Whether an endpoint's identity was verified (for RouteResponse's deliveries). */
export type IsVerified = (endpointId: string, hostPort: string) => boolean;

export interface DeliveryGuardOptions {
  /** CIDRs deliveries may go to. */
  allow: readonly string[];
  isVerified?: IsVerified;
  /** Resolves a host name to its addresses (default: the system resolver). */
  resolve?: (host: string) => Promise<string[]>;
}

/** A CIDR as `net.BlockList` takes it, or an Error naming what is wrong with it. */
export function parseCidr(cidr: string): {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
} {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr.trim());
  const family = m ? isIP(m[1]!) : 0;
  const prefix = m ? Number(m[2]) : NaN;
  if (!m || family === 0 || prefix > (family === 4 ? 32 : 128)) {
    throw new Error(`"${cidr}" is not a CIDR like 10.0.0.0/8 or fc00::/7`);
  }
  return { address: m[1]!, prefix, family: family === 4 ? 'ipv4' : 'ipv6' };
}

export class DeliveryGuard {
  private readonly allowList = new BlockList();
  private readonly allow: readonly string[];
  private readonly own: HostPort[] = [];
  private readonly isVerified: IsVerified;
  private readonly resolve: (host: string) => Promise<string[]>;

  constructor(options: DeliveryGuardOptions) {
    this.allow = options.allow;
    for (const cidr of options.allow) {
      const c = parseCidr(cidr);
      this.allowList.addSubnet(c.address, c.prefix, c.family);
    }
    this.isVerified = options.isVerified ?? (() => true);
    this.resolve =
      options.resolve ??
      (async (host) => (await lookup(host, { all: true })).map((a) => a.address));
  }

  /** One of augur's own listening addresses: never delivered to. */
  addOwnAddress(address: HostPort | string): void {
    this.own.push(typeof address === 'string' ? parseHostPort(address, 'own address') : address);
  }

  /** Whether (and where) a delivery to endpoint `endpointId` at `hostPort` may go. */
  async check(endpointId: string, hostPort: string): Promise<GuardDecision> {
    if (!this.isVerified(endpointId, hostPort)) {
      return {
        ok: false,
        reason: 'unverified',
        message: `endpoint ${endpointId}'s identity is not verified; RouteResponse delivers only to verified endpoints`,
      };
    }
    let target: HostPort;
    try {
      target = parseHostPort(hostPort, 'endpoint address');
    } catch {
      return { ok: false, reason: 'unresolved', message: `"${hostPort}" is not HOST:PORT` };
    }
    let addresses: string[];
    if (isIP(unbracket(target.host))) addresses = [unbracket(target.host)];
    else {
      try {
        addresses = await this.resolve(target.host);
      } catch (err) {
        return {
          ok: false,
          reason: 'unresolved',
          message: `cannot resolve ${target.host}: ${err instanceof Error ? err.message : String(err)}`,
        };
      }
    }
    if (addresses.length === 0) {
      return { ok: false, reason: 'unresolved', message: `${target.host} has no address` };
    }
    for (const raw of addresses) {
      const ip = plainIp(raw);
      if (!this.allowList.check(ip, isIP(ip) === 4 ? 'ipv4' : 'ipv6')) {
        return {
          ok: false,
          reason: 'not_allowed',
          message: `${ip} is outside rrm.routeResponseAllow (${this.allow.join(', ') || 'empty'})`,
        };
      }
      if (this.isOwn(ip, target.port)) {
        return {
          ok: false,
          reason: 'own_address',
          message: `${formatHostPort({ host: ip, port: target.port })} is one of augur's own addresses`,
        };
      }
    }
    return {
      ok: true,
      address: formatHostPort({ host: plainIp(addresses[0]!), port: target.port }),
    };
  }

  private isOwn(ip: string, port: number): boolean {
    for (const own of this.own) {
      if (own.port !== port) continue;
      const host = plainIp(unbracket(own.host));
      if (host === '0.0.0.0' || host === '::' || host === '') {
        if (localAddresses().has(ip) || isLoopback(ip)) return true;
      } else if (host === ip || (isLoopback(host) && isLoopback(ip))) return true;
    }
    return false;
  }
}

function unbracket(host: string): string {
  return host.replace(/^\[|\]$/g, '');
}

/** `::ffff:10.0.0.1` as `10.0.0.1`. */
function plainIp(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1]! : ip;
}

function isLoopback(ip: string): boolean {
  return ip === '::1' || ip.startsWith('127.') || ip === 'localhost';
}

function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) out.add(plainIp(a.address));
  }
  return out;
}
