import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from '../common/logger.js';

export interface HostResolverOptions {
  /** Resolve host names; off: a host name has no IP (callers leave such endpoints out). */
  enabled: boolean;
  logger: Logger;
}

/**
 * Endpoint addresses to IP literals, for those that need literals: xDS clients (EDS hosts) and
 * Envoy's override-host policy, which matches the RRM's `ip:port` against those EDS hosts, so
 * both must resolve a name the same way. A host name is looked up once (the OS resolver, as
 * `dns.lookup` does) in the background; until then, and after a failure, it has no IP.
 * `onResolved` listeners hear when a name gets its IP, to rebuild what left it out.
 */
export class HostResolver {
  private readonly options: HostResolverOptions;
  /** Host name → IP; null while the lookup runs or after it failed. */
  private readonly addresses = new Map<string, string | null>();
  private readonly listeners = new Set<(host: string) => void>();

  constructor(options: HostResolverOptions) {
    this.options = options;
  }

  /** An IP literal for `address`: itself if it is one, else its resolved IP if known yet. */
  ipOf(address: string): string | undefined {
    if (isIP(address)) return address;
    if (!this.options.enabled) return undefined;
    const known = this.addresses.get(address);
    if (known !== undefined) return known ?? undefined;
    this.addresses.set(address, null);
    lookup(address)
      .then(({ address: ip }) => {
        this.addresses.set(address, ip);
        this.options.logger.info({ host: address, ip }, 'endpoint host name resolved');
        for (const l of this.listeners) l(address);
      })
      .catch((err: Error) =>
        this.options.logger.warn(
          { host: address, err: err.message },
          'cannot resolve endpoint host name; left out',
        ),
      );
    return undefined;
  }

  /** Calls `listener(host)` each time a host name gets its IP; returns the unsubscribe. */
  onResolved(listener: (host: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

const perProcess = new WeakMap<object, HostResolver>();

/**
 * The one HostResolver of an `augur serve` process, keyed by its ControlPlaneContext: xDS and
 * the RRM both attach with the same context, so they share it (one lookup per name, and a name
 * with several addresses gets the same IP in Envoy's EDS hosts and in the RRM's answers).
 */
export function sharedHostResolver(ctx: {
  config: { xds: { resolveHostnames: boolean } };
  logger: Logger;
}): HostResolver {
  let resolver = perProcess.get(ctx);
  if (!resolver) {
    resolver = new HostResolver({
      enabled: ctx.config.xds.resolveHostnames,
      logger: ctx.logger.child({ part: 'resolver' }),
    });
    perProcess.set(ctx, resolver);
  }
  return resolver;
}
