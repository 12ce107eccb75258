import { isIP } from 'node:net';
import { z } from 'zod';
import { AugurError } from './errors.js';
import type { Logger } from './logger.js';

/*
 * The `security:` section: TLS material, the plaintext rule, and who may do what (see
 * docs/security.md for the model). Shared by `augur serve` and `augur rrm`; the agent takes the
 * same things as flags.
 */

export const ROLES = ['agent', 'reader', 'dataPlane', 'admin'] as const;
export type Role = (typeof ROLES)[number];

const sha256Hex = z
  .string()
  .regex(/^[0-9a-f]{64}$/, 'must be the SHA-256 of the token as 64 lowercase hex digits');

/** One principal: a certificate's URI or DNS SAN (a glob, `*` any characters) or bearer tokens. */
export const principalSchema = z
  .object({
    /**
     * Matched against the client certificate's URI SANs (SPIFFE-style, e.g.
     * `spiffe://augur/agent/web-*`) and DNS SANs; `*` matches any run of characters. The name of
     * the identity in logs and refusals.
     */
    name: z.string().min(1),
    /** agent: Telemetry/Report; reader: LoadPrediction reads; dataPlane: ADS, ext_proc,
     * RouteResponse and the reads; admin: everything, among it SetMonitoringInterval. */
    roles: z.array(z.enum(ROLES)).min(1),
    /** Endpoint ids an agent identity may report for (glob). */
    endpoints: z.string().min(1).default('*'),
    /** Services an agent identity may report in (glob). */
    services: z.string().min(1).default('*'),
    /**
     * Bearer tokens of this identity (for clients without a certificate), each as the SHA-256 of
     * the token in hex (`printf %s TOKEN | sha256sum`); the token itself is never in config.
     */
    tokenSha256: z.array(sha256Hex).default([]),
  })
  .strict();
export type Principal = z.infer<typeof principalSchema>;

export const tlsConfigSchema = z
  .object({
    /** This process's certificate chain (PEM); empty: no TLS. */
    cert: z.string().default(''),
    /** Its private key (PEM). */
    key: z.string().default(''),
    /** The CA bundle (PEM) client certificates are verified against (and, as a client, servers). */
    ca: z.string().default(''),
    /**
     * Mutual TLS: `required` refuses a handshake without a certificate the CA signed; `optional`
     * asks for one and treats a connection without a valid one as unauthenticated (bearer tokens
     * still work); `none` does not ask.
     */
    clientCert: z.enum(['none', 'optional', 'required']).default('optional'),
    /** How often the files are checked for a change (new material is used without a restart), seconds. */
    reloadInterval: z.number().positive().default(5),
    /** As a client (`augur rrm` watching the LPS): the name the server's certificate must carry. */
    serverName: z.string().default(''),
  })
  .strict()
  .refine((t) => (t.cert === '') === (t.key === ''), {
    message: 'cert and key must be given together',
  });
export type TlsConfig = z.infer<typeof tlsConfigSchema>;

export const securityConfigSchema = z
  .object({
    /**
     * Allows plaintext on addresses other than loopback. Without it a server that would listen in
     * plaintext off loopback refuses to start (PLAINTEXT_REFUSED); with it the log says so.
     */
    insecure: z.boolean().default(false),
    tls: tlsConfigSchema.default(() => tlsConfigSchema.parse({})),
    /**
     * Who may do what. Empty: no authorisation (every caller that reaches a port may do
     * everything; only sensible on loopback or behind mutual TLS you trust). Non-empty: every
     * call must come from one of these identities with a role that allows it.
     */
    principals: z.array(principalSchema).default([]),
    /** As a client (`augur rrm` watching the LPS): a file holding the bearer token to send. */
    tokenFile: z.string().default(''),
  })
  .strict();
export type SecurityConfig = z.infer<typeof securityConfigSchema>;

/** Whether `host` (an IP or a name) is this machine's loopback. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (h === '::1') return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  return mapped !== null && mapped[1]!.startsWith('127.');
}

/**
 * Refuses plaintext on an address other than loopback unless the operator said `insecure`; with
 * it, says so in the log. `what` names the address (`gRPC`, `HTTP`, `ext_proc`, `LPS client`).
 */
export function checkPlaintext(options: {
  what: string;
  host: string;
  tls: boolean;
  insecure: boolean;
  logger?: Logger;
  flag?: string;
}): void {
  if (options.tls || isLoopbackHost(options.host)) return;
  const flag = options.flag ?? '--insecure or security.insecure: true';
  if (!options.insecure) {
    throw new AugurError(
      'PLAINTEXT_REFUSED',
      `${options.what} on ${options.host} would be plaintext off loopback: configure TLS ` +
        `(security.tls.cert/key/ca) or allow plaintext explicitly with ${flag}`,
    );
  }
  options.logger?.warn(
    { address: options.host, surface: options.what },
    `INSECURE: ${options.what} on ${options.host} is plaintext off loopback (${flag}); anyone who reaches it can read and change routing`,
  );
}

/** A `*` glob as an anchored regular expression. */
export function globRegExp(glob: string): RegExp {
  const body = glob
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`);
}
