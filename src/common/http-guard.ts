import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import type { SecureContextOptions, TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { z } from 'zod';
import type { Presented } from './auth.js';
import { globRegExp, isLoopbackHost } from './security.js';
import { quoted } from './text.js';
import { verifiedPeerCertificate, type TlsMaterial } from './tls.js';

/*
 * What guards the HTTP address (docs/security.md, "The HTTP address"):
 *
 * - the Host header check against DNS rebinding: a page on another site whose name an attacker
 *   points at augur's address sends its own name in Host; only the names augur answers to pass
 *   (loopback names and addresses, the listen address, this machine's addresses and host name
 *   when listening on every interface, the server certificate's names, `http.allowedHosts`);
 * - the security headers every answer carries;
 * - what a browser or a scraper presented (a verified client certificate, or a token as
 *   `Authorization: Bearer TOKEN` or as the password of HTTP Basic authentication).
 */

/** `http:` in the config: the HTTP address (/metrics, /healthz, the dashboard). */
export const httpConfigSchema = z
  .object({
    /**
     * Host names (or addresses) browsers and scrapers may use for the HTTP address besides the
     * ones always accepted (loopback, the listen address, this machine's addresses and host name
     * when listening on every interface, the DNS names of the server certificate). `*.example.org`
     * matches any name under example.org; `*` alone turns the Host check off (DNS rebinding
     * protection with it). Any other Host is answered 421.
     */
    allowedHosts: z
      .array(
        z
          .string()
          .min(1)
          .regex(/^[A-Za-z0-9.*:[\]_-]+$/, 'must be a host name, an address or a * glob'),
      )
      .default([]),
  })
  .strict();
export type HttpConfig = z.infer<typeof httpConfigSchema>;

/** The security headers of every answer on the HTTP address. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  // The dashboard's page loads its script, uPlot and its styles from the same origin and reads its
  // event stream from it; nothing else, nothing inline, no framing.
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  // Answers are live state; a route that serves files says otherwise.
  'cache-control': 'no-store',
};

/**
 * The host name of a Host header value (`name`, `name:port`, `[v6]:port`), lowercased without a
 * trailing dot; undefined when it is not one.
 */
export function hostOfHeader(value: string): string | undefined {
  const v = value.trim().toLowerCase();
  let host: string;
  if (v.startsWith('[')) {
    const m = /^\[([0-9a-f:.]+)\](?::\d{1,5})?$/.exec(v);
    if (!m || isIP(m[1]!) !== 6) return undefined;
    host = m[1]!;
  } else {
    const m = /^([a-z0-9._-]+)(?::\d{1,5})?$/.exec(v);
    if (!m) return undefined;
    host = m[1]!;
  }
  host = host.replace(/\.$/, '');
  return host === '' ? undefined : host;
}

function normalise(host: string): string {
  return host
    .replace(/^\[|\]$/g, '')
    .toLowerCase()
    .replace(/\.$/, '');
}

/** A certificate name (`*.example.org` covers one label) as a matcher. */
function certNameMatcher(name: string): RegExp {
  const body = name
    .toLowerCase()
    .split('.')
    .map((l) => (l === '*' ? '[^.]+' : l.replace(/[.+?^${}()|[\]\\*]/g, '\\$&')))
    .join('\\.');
  return new RegExp(`^${body}$`);
}

/** Decides whether a Host header names this HTTP address. */
export class HostGuard {
  private readonly any: boolean;
  private readonly exact = new Set<string>();
  private readonly globs: RegExp[] = [];
  private readonly wildcard: boolean;
  private readonly tls: TlsMaterial | undefined;
  private certNames: { of: SecureContextOptions; names: RegExp[] } | undefined;

  constructor(options: {
    /** The host of the listen address ('0.0.0.0' or '::' for every interface). */
    listenHost: string;
    allowedHosts?: readonly string[] | undefined;
    tls?: TlsMaterial | undefined;
  }) {
    const listen = normalise(options.listenHost);
    this.wildcard = listen === '0.0.0.0' || listen === '::' || listen === '';
    if (!this.wildcard) this.exact.add(listen);
    this.tls = options.tls;
    const allowed = options.allowedHosts ?? [];
    this.any = allowed.includes('*');
    for (const a of allowed) {
      const h = normalise(a);
      if (h.includes('*')) this.globs.push(globRegExp(h));
      else this.exact.add(h);
    }
  }

  /** Whether a request with this Host header value may be answered (no header: HTTP/1.0, yes). */
  allows(header: string | undefined): boolean {
    if (this.any || header === undefined) return true;
    const host = hostOfHeader(header);
    if (host === undefined) return false;
    if (isLoopbackHost(host) || this.exact.has(host)) return true;
    if (this.globs.some((g) => g.test(host))) return true;
    if (this.tls && this.namesOfCertificate().some((n) => n.test(host))) return true;
    return this.wildcard && this.isThisMachine(host);
  }

  /** What a refusal says: the Host given and where to allow it. */
  refusal(header: string | undefined): string {
    return (
      `Host ${quoted(header ?? '')} is not a name this address answers to (a guard against DNS ` +
      'rebinding): use its address, localhost, or add the name to http.allowedHosts\n'
    );
  }

  private isThisMachine(host: string): boolean {
    const me = hostname().toLowerCase();
    if (host === me || host === me.split('.')[0]) return true;
    if (isIP(host) === 0) return false;
    for (const list of Object.values(networkInterfaces()))
      for (const a of list ?? [])
        if (normalise(a.address.replace(/%.*$/, '')) === host) return true;
    return false;
  }

  private namesOfCertificate(): RegExp[] {
    const context = this.tls!.current();
    if (this.certNames?.of === context) return this.certNames.names;
    let names: RegExp[] = [];
    try {
      const pem = Array.isArray(context.cert) ? context.cert[0] : context.cert;
      const san = pem ? (new X509Certificate(pem as string | Buffer).subjectAltName ?? '') : '';
      names = san
        .split(/,\s*/)
        .map((e) => /^(?:DNS|IP Address):(.+)$/.exec(e)?.[1])
        .filter((n): n is string => n !== undefined)
        .map((n) => certNameMatcher(normalise(n)));
    } catch {
      names = [];
    }
    this.certNames = { of: context, names };
    return names;
  }
}

/**
 * What the client of an HTTP request presented: the client certificate when the TLS handshake
 * verified it, and a token from `Authorization: Bearer TOKEN` or from HTTP Basic authentication
 * (the password, or the user name when the password is empty: what a browser can send).
 */
export function presentedByRequest(req: IncomingMessage): Presented {
  const socket = req.socket as Partial<TLSSocket>;
  const certificate = socket.encrypted ? verifiedPeerCertificate(socket as TLSSocket) : undefined;
  let authorization = req.headers.authorization;
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? '')?.[1];
  if (basic !== undefined) {
    const decoded = Buffer.from(basic, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user = colon < 0 ? decoded : decoded.slice(0, colon);
    const password = colon < 0 ? '' : decoded.slice(colon + 1);
    const token = password || user;
    authorization = token ? `Bearer ${token}` : undefined;
  }
  return {
    certificate,
    authorization,
  };
}
