import { createHash, randomBytes } from 'node:crypto';
import type { Registry } from 'prom-client';
import { Authorizer } from './auth.js';
import type { Logger } from './logger.js';
import { parseHostPort } from './address.js';
import { checkPlaintext, type Principal, type SecurityConfig } from './security.js';
import { serverNameOf, TlsMaterial, type ClientSecurity } from './tls.js';

/** What a server process holds of `security:`: its TLS material, who may do what, the plaintext rule. */
export interface Trust {
  tls: TlsMaterial | undefined;
  authorizer: Authorizer;
  insecure: boolean;
  /** Stops watching the TLS files. */
  close(): void;
}

/**
 * Refuses, before anything starts, a plaintext listen address off loopback without `insecure`
 * (PLAINTEXT_REFUSED). `addresses` maps a surface (gRPC, HTTP, ext_proc) to HOST:PORT or ''.
 */
export function checkListenAddresses(
  config: SecurityConfig,
  addresses: Record<string, string>,
): void {
  for (const [what, listen] of Object.entries(addresses)) {
    if (!listen) continue;
    const { host } = parseHostPort(listen, `${what} listen address`);
    checkPlaintext({ what, host, tls: config.tls.cert !== '', insecure: config.insecure });
  }
}

/** Loads `security:` (reading and checking the TLS files now) and starts watching the files. */
export function trustFrom(
  config: SecurityConfig,
  registry: Registry,
  logger: Logger,
  /** Principals of the process's own (its ext_proc workers), besides the configured ones. */
  internal: Principal[] = [],
): Trust {
  const tls = TlsMaterial.load(config.tls, logger)?.watch();
  const authorizer = new Authorizer(
    config.principals.length > 0 ? [...config.principals, ...internal] : [],
    registry,
  );
  if (tls)
    logger.info(
      { cert: config.tls.cert, clientCert: config.tls.clientCert },
      `TLS on every address (client certificates ${config.tls.clientCert})`,
    );
  if (!authorizer.enabled)
    logger.info(
      'no security.principals configured: every caller that reaches a port may call every method',
    );
  return { tls, authorizer, insecure: config.insecure, close: () => tls?.close() };
}

/** A process's own client settings (`augur rrm` to its LPS) from `security:`. */
export function clientSecurityOf(config: SecurityConfig): ClientSecurity {
  return {
    ca: config.tls.ca || undefined,
    cert: config.tls.cert || undefined,
    key: config.tls.key || undefined,
    serverName: config.tls.serverName || undefined,
    tokenFile: config.tokenFile || undefined,
  };
}

/**
 * The client settings of augur serve's ext_proc workers towards augur serve itself: its CA and
 * certificate, the name its certificate carries, and a token made for this run.
 */
export function selfClientSecurity(config: SecurityConfig, token: string): ClientSecurity {
  const own = clientSecurityOf(config);
  return {
    ...own,
    serverName: own.serverName ?? (config.tls.cert ? serverNameOf(config.tls.cert) : undefined),
    token,
  };
}

/** A principal for a process's own workers, with a fresh token: [principal, token]. */
export function workerPrincipal(): [Principal, string] {
  const token = randomBytes(32).toString('base64url');
  return [
    {
      name: 'augur-ext-proc-worker',
      roles: ['dataPlane', 'admin'],
      endpoints: '*',
      services: '*',
      tokenSha256: [createHash('sha256').update(token).digest('hex')],
    },
    token,
  ];
}
