import { lookup, Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from '../common/logger.js';
import type { HostNamesConfig } from './config.js';

/** How one name's last lookup went, for whoever reports it (ListEndpoints, metrics). */
export interface HostNameStatus {
  /** The IP to use: the last one the name resolved to (kept across failed re-lookups). */
  ip: string | undefined;
  /** The last lookup's error; undefined when it succeeded or has not finished yet. */
  error: string | undefined;
}

export interface HostNameResolverOptions extends HostNamesConfig {
  logger: Logger;
  /** A name got its first IP, or another one: lists that carry it must be rebuilt. */
  onChange: (host: string) => void;
  /** Each finished lookup, for the metrics. */
  onLookup?: (outcome: 'resolved' | 'failed') => void;
}

interface Entry {
  ip: string | undefined;
  error: string | undefined;
  failures: number;
  timer: NodeJS.Timeout | undefined;
  looking: boolean;
}

/**
 * The one place endpoint host names become IPs (agents may report a name; xDS clients and Envoy's
 * override-host policy need IP literals). The LPS publishes the IP in each list entry, so xDS and
 * the RRM, local or remote, use the same IP for a name and resolve nothing themselves.
 *
 * A name is looked up when first asked for, again every `ttl` seconds (a DNS server's shorter
 * record TTL wins), and after a failure again after `retryInitial` seconds, doubling up to
 * `retryMax`: a failure is never kept for good. A name that resolved once keeps its last IP while
 * re-lookups fail, as Envoy's DNS clusters keep their hosts. Lookups go to the OS resolver
 * (getaddrinfo: /etc/hosts, search domains), or to `servers` when given.
 */
export class HostNameResolver {
  private readonly options: HostNameResolverOptions;
  private readonly entries = new Map<string, Entry>();
  private readonly dns: Resolver | undefined;
  private closed = false;

  constructor(options: HostNameResolverOptions) {
    this.options = options;
    if (options.servers.length > 0) {
      this.dns = new Resolver({ timeout: Math.round(options.timeout * 1000), tries: 1 });
      this.dns.setServers(options.servers);
    }
  }

  /** The IP of `address`: itself if it is an IP literal, else the name's IP if known yet. */
  ipOf(address: string): string | undefined {
    if (isIP(address)) return address;
    return this.entry(address)?.ip;
  }

  /** The status of `address`; an IP literal is always resolved. */
  statusOf(address: string): HostNameStatus {
    if (isIP(address)) return { ip: address, error: undefined };
    const e = this.entry(address);
    if (!e) return { ip: undefined, error: 'host name resolution is off (lps.hostnames.resolve)' };
    return { ip: e.ip, error: e.error };
  }

  /** Stops looking up names no endpoint has any more. */
  retain(addresses: Iterable<string>): void {
    if (this.entries.size === 0) return;
    const keep = new Set(addresses);
    for (const [host, e] of this.entries) {
      if (keep.has(host)) continue;
      clearTimeout(e.timer);
      this.entries.delete(host);
    }
  }

  close(): void {
    this.closed = true;
    for (const e of this.entries.values()) clearTimeout(e.timer);
    this.entries.clear();
    this.dns?.cancel();
  }

  private entry(host: string): Entry | undefined {
    if (!this.options.resolve) return undefined;
    let e = this.entries.get(host);
    if (!e) {
      e = { ip: undefined, error: undefined, failures: 0, timer: undefined, looking: false };
      this.entries.set(host, e);
      void this.lookUp(host, e);
    }
    return e;
  }

  private async lookUp(host: string, e: Entry): Promise<void> {
    if (e.looking || this.closed) return;
    e.looking = true;
    let next: number;
    try {
      const { ip, ttl } = await this.resolve(host);
      if (this.entries.get(host) !== e) return;
      const before = e.ip;
      const recovered = e.error !== undefined;
      e.ip = ip;
      e.error = undefined;
      e.failures = 0;
      next = Math.max(1, Math.min(this.options.ttl, ttl ?? Infinity));
      this.options.onLookup?.('resolved');
      if (ip !== before || recovered) {
        this.options.logger.info({ host, ip, was: before }, 'endpoint host name resolved');
      }
      if (ip !== before) this.options.onChange(host);
    } catch (err) {
      if (this.entries.get(host) !== e) return;
      const message = (err as Error).message;
      e.failures++;
      next = Math.min(this.options.retryMax, this.options.retryInitial * 2 ** (e.failures - 1));
      this.options.onLookup?.('failed');
      if (message !== e.error) {
        this.options.logger.warn(
          { host, err: message, keptIp: e.ip, retryInSeconds: next },
          e.ip
            ? 'endpoint host name no longer resolves; keeping its last IP and retrying'
            : 'endpoint host name does not resolve; its endpoint is left out of xDS until it does',
        );
      }
      e.error = message;
    } finally {
      e.looking = false;
    }
    if (this.closed || this.entries.get(host) !== e) return;
    e.timer = setTimeout(() => void this.lookUp(host, e), next * 1000);
    e.timer.unref();
  }

  private async resolve(host: string): Promise<{ ip: string; ttl?: number }> {
    if (!this.dns) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`lookup of ${host} took more than ${this.options.timeout} s`)),
          this.options.timeout * 1000,
        );
      });
      try {
        const { address } = await Promise.race([lookup(host), timeout]);
        return { ip: address };
      } finally {
        clearTimeout(timer);
      }
    }
    try {
      const [a] = await this.dns.resolve4(host, { ttl: true });
      if (a) return { ip: a.address, ttl: a.ttl };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENODATA') throw err;
    }
    const [aaaa] = await this.dns.resolve6(host, { ttl: true });
    if (!aaaa) throw new Error(`${host} has no A or AAAA record`);
    return { ip: aaaa.address, ttl: aaaa.ttl };
  }
}
