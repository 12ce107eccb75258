import * as grpc from '@grpc/grpc-js';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { Counter, type Registry } from 'prom-client';
import { quoted as quote } from './text.js';
import { globRegExp, type Principal, type Role } from './security.js';

/*
 * Who is calling, and may they. One model for every surface (docs/security.md):
 *
 * - An identity comes from the client certificate that the CA verified (its URI SANs, SPIFFE
 *   style, then its DNS SANs, matched against each principal's `name` glob in config order), or
 *   from `authorization: Bearer TOKEN`, whose SHA-256 is compared in constant time with each
 *   principal's `tokenSha256`.
 * - A method needs one of a few roles (METHOD_ROLES); `admin` may call every method.
 * - An agent may report only for endpoint ids and services its principal's globs allow (checked
 *   by the Telemetry service at the hello, which also keeps an id with the identity that holds it).
 *
 * With no principals configured authorisation is off: every caller is anonymous and allowed.
 * Every refusal is counted in augur_auth_refused_total{surface,reason}.
 */

export interface Identity {
  /** The SAN that matched, or the principal's name for a token. */
  name: string;
  principal: Principal;
  via: 'certificate' | 'token';
}

export type RefusalReason =
  | 'no_credentials'
  | 'unknown_certificate'
  | 'bad_token'
  | 'role'
  | 'endpoint'
  | 'service'
  | 'owner';

export interface Refusal {
  code: grpc.status.UNAUTHENTICATED | grpc.status.PERMISSION_DENIED;
  reason: RefusalReason;
  message: string;
}

export function isRefusal(x: Identity | Refusal | undefined): x is Refusal {
  return x !== undefined && 'reason' in x;
}

/** What a caller presented. */
export interface Presented {
  /** The peer certificate, only when the TLS handshake verified it against the CA. */
  certificate?: PeerCertificate | undefined;
  /** The `authorization` header/metadata value. */
  authorization?: string | undefined;
}

/** The roles that may call a gRPC method (by path prefix, first match); `open`: anyone. */
const METHOD_ROLES: ReadonlyArray<readonly [string, readonly Role[] | 'open']> = [
  ['/grpc.health.v1.Health/', 'open'],
  ['/augur.v1.Telemetry/', ['agent']],
  ['/augur.v1.LoadPrediction/SetMonitoringInterval', ['admin']],
  ['/augur.v1.LoadPrediction/', ['reader', 'dataPlane']],
  ['/envoy.service.discovery.v3.AggregatedDiscoveryService/', ['dataPlane']],
  ['/envoy.service.ext_proc.v3.ExternalProcessor/', ['dataPlane']],
  ['/augur.v1.ResponseRouter/', ['dataPlane']],
  ['/grpc.reflection.', ['reader', 'dataPlane', 'agent']],
];

/** The roles a method needs (anything not listed: admin only). */
export function rolesFor(path: string): readonly Role[] | 'open' {
  for (const [prefix, roles] of METHOD_ROLES) if (path.startsWith(prefix)) return roles;
  return ['admin'];
}

/** URI SANs first, then DNS SANs, of a certificate. */
export function subjectAltNames(cert: PeerCertificate): string[] {
  const entries = (cert.subjectaltname ?? '').split(/,\s*/).filter(Boolean);
  const of = (kind: string) =>
    entries.filter((e) => e.startsWith(`${kind}:`)).map((e) => e.slice(kind.length + 1));
  return [...of('URI'), ...of('DNS')];
}

interface CompiledPrincipal {
  principal: Principal;
  name: RegExp;
  endpoints: RegExp;
  services: RegExp;
  tokens: Buffer[];
}

export class Authorizer {
  private readonly principals: CompiledPrincipal[];
  private readonly refusedCounter: Counter<'surface' | 'reason'> | undefined;

  constructor(principals: readonly Principal[], registry?: Registry) {
    this.principals = principals.map((p) => ({
      principal: p,
      name: globRegExp(p.name),
      endpoints: globRegExp(p.endpoints),
      services: globRegExp(p.services),
      tokens: p.tokenSha256.map((h) => Buffer.from(h, 'hex')),
    }));
    if (registry) {
      const existing = registry.getSingleMetric('augur_auth_refused_total');
      this.refusedCounter =
        (existing as Counter<'surface' | 'reason'> | undefined) ??
        new Counter({
          name: 'augur_auth_refused_total',
          help: 'Calls and streams refused for who the caller is (UNAUTHENTICATED, PERMISSION_DENIED), by surface and reason',
          labelNames: ['surface', 'reason'],
          registers: [registry],
        });
    }
  }

  /** Whether any principal is configured (otherwise every caller is allowed). */
  get enabled(): boolean {
    return this.principals.length > 0;
  }

  /** Counts a refusal and returns it. */
  refuse(surface: string, refusal: Refusal): Refusal {
    this.refusedCounter?.inc({ surface, reason: refusal.reason });
    return refusal;
  }

  /** The identity of what was presented, a refusal (UNAUTHENTICATED), or undefined when off. */
  identify(presented: Presented): Identity | Refusal | undefined {
    if (!this.enabled) return undefined;
    const bearer = /^Bearer\s+(.+)$/i.exec(presented.authorization ?? '')?.[1]?.trim();
    if (bearer !== undefined) {
      const digest = createHash('sha256').update(bearer).digest();
      let found: CompiledPrincipal | undefined;
      // Every configured hash is compared, so the time does not say which (if any) matched.
      for (const p of this.principals)
        for (const t of p.tokens) if (timingSafeEqual(digest, t) && !found) found = p;
      if (found) return { name: found.principal.name, principal: found.principal, via: 'token' };
      return {
        code: grpc.status.UNAUTHENTICATED,
        reason: 'bad_token',
        message: 'the bearer token is not one augur knows (security.principals[].tokenSha256)',
      };
    }
    if (presented.certificate) {
      const sans = subjectAltNames(presented.certificate);
      for (const p of this.principals)
        for (const san of sans)
          if (p.name.test(san)) return { name: san, principal: p.principal, via: 'certificate' };
      return {
        code: grpc.status.UNAUTHENTICATED,
        reason: 'unknown_certificate',
        message: `the client certificate (${sans.length ? sans.map((s) => quote(s)).join(', ') : 'no URI or DNS SAN'}) matches no identity in security.principals`,
      };
    }
    return {
      code: grpc.status.UNAUTHENTICATED,
      reason: 'no_credentials',
      message:
        'no credentials: present a client certificate signed by augur\'s CA or "authorization: Bearer TOKEN"',
    };
  }

  /** Identifies the caller of `path` and checks its role; undefined when off or open. */
  authorize(path: string, presented: Presented, surface: string): Identity | Refusal | undefined {
    const roles = rolesFor(path);
    if (!this.enabled || roles === 'open') return undefined;
    return this.authorizeRoles(roles, path, presented, surface);
  }

  /**
   * Identifies the caller of `what` (a method or an HTTP path) and checks that it holds one of
   * `roles` (admin holds all); undefined when authorisation is off.
   */
  authorizeRoles(
    roles: readonly Role[],
    what: string,
    presented: Presented,
    surface: string,
  ): Identity | Refusal | undefined {
    if (!this.enabled) return undefined;
    const identity = this.identify(presented);
    if (identity === undefined) return undefined;
    if (isRefusal(identity)) return this.refuse(surface, identity);
    const have = identity.principal.roles;
    if (have.includes('admin') || roles.some((r) => have.includes(r))) return identity;
    return this.refuse(surface, {
      code: grpc.status.PERMISSION_DENIED,
      reason: 'role',
      message: `${quote(identity.name)} (roles ${have.join(', ')}) may not call ${what}: it needs ${roles.join(' or ')}`,
    });
  }

  /** Whether an agent identity may report endpoint `id` in `service`; a refusal if not. */
  mayReport(identity: Identity | undefined, id: string, service: string): Refusal | undefined {
    if (!identity) return undefined;
    const p = this.principals.find((c) => c.principal === identity.principal);
    if (!p || identity.principal.roles.includes('admin')) return undefined;
    if (!p.endpoints.test(id))
      return this.refuse('telemetry', {
        code: grpc.status.PERMISSION_DENIED,
        reason: 'endpoint',
        message: `${quote(identity.name)} may not report endpoint ${quote(id)} (allowed: ${quote(p.principal.endpoints)})`,
      });
    if (!p.services.test(service))
      return this.refuse('telemetry', {
        code: grpc.status.PERMISSION_DENIED,
        reason: 'service',
        message: `${quote(identity.name)} may not report in service ${quote(service)} (allowed: ${quote(p.principal.services)})`,
      });
    return undefined;
  }

  /** A grpc-js server interceptor that refuses calls before their handler sees them. */
  interceptor(surface = 'grpc'): grpc.ServerInterceptor {
    return (method, call) => {
      const passThrough = call as grpc.ServerInterceptingCall;
      if (!this.enabled || rolesFor(method.path) === 'open') return passThrough;
      let refused = false;
      return new grpc.ServerInterceptingCall(call, {
        start: (next) =>
          next({
            onReceiveMetadata: (metadata, nextMetadata) => {
              const verdict = this.authorize(method.path, presentedBy(call, metadata), surface);
              if (isRefusal(verdict)) {
                refused = true;
                call.sendStatus({
                  code: verdict.code,
                  details: verdict.message,
                  metadata: new grpc.Metadata(),
                });
                return;
              }
              nextMetadata(metadata);
            },
            onReceiveMessage: (message, nextMessage) => {
              if (!refused) nextMessage(message);
            },
            onReceiveHalfClose: (nextHalfClose) => {
              if (!refused) nextHalfClose();
            },
          }),
      });
    };
  }
}

interface AuthContextCall {
  getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null;
}

/** What the caller of a grpc-js call presented. */
export function presentedBy(call: AuthContextCall, metadata: grpc.Metadata): Presented {
  const auth = metadata.get('authorization')[0];
  return {
    certificate: call.getAuthContext()?.sslPeerCertificate,
    authorization: typeof auth === 'string' ? auth : undefined,
  };
}
