import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { status as grpcStatus } from '@grpc/grpc-js';
import type { AddressInfo } from 'node:net';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import { type Authorizer, isRefusal } from './auth.js';
import { AugurError } from './errors.js';
import { formatHostPort, parseHostPort, type HostPort } from './address.js';
import { HostGuard, presentedByRequest, SECURITY_HEADERS } from './http-guard.js';
import type { Logger } from './logger.js';
import { checkPlaintext, isLoopbackHost, type Role } from './security.js';
import { refuseRenegotiation, type TlsMaterial } from './tls.js';

export type HttpHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
) => void | Promise<void>;

/**
 * Who may reach a route when the HTTP address is off loopback and principals are configured:
 * `open` anyone (/healthz), otherwise the roles that may (admin always may).
 */
export type HttpAccess = 'open' | readonly Role[];

/** What reads state (/metrics, the dashboard) needs: a reader, a data plane or an admin. */
export const READER_ACCESS: HttpAccess = ['reader', 'dataPlane'];

export interface HttpHostOptions {
  listen: string;
  registry: Registry;
  /**
   * What /metrics serves, if not `registry.metrics()` alone (a process with workers adds
   * theirs); in the registry's content type.
   */
  metrics?: () => Promise<string>;
  /** Extra checks for /healthz; each returns a problem or undefined. */
  healthChecks?: Array<() => string | undefined>;
  /** HTTPS from files kept current; absent: plain HTTP. */
  tls?: TlsMaterial | undefined;
  /** Plaintext off loopback allowed (`--insecure`); otherwise start() refuses it. */
  insecure?: boolean;
  /** Where the INSECURE warning goes. */
  logger?: Logger | undefined;
  /**
   * Who may do what (security.principals): off loopback, every route but the open ones needs an
   * identity with the route's roles (401 without one, 403 with the wrong one).
   */
  authorizer?: Authorizer | undefined;
  /** Host names accepted besides the ones always accepted (`http.allowedHosts`; see HostGuard). */
  allowedHosts?: readonly string[] | undefined;
}

/** One HTTP address per process: /metrics, /healthz, and whatever parts mount on it. */
export class HttpHost {
  private readonly server: Server;
  private readonly routes = new Map<string, Route>();
  private readonly prefixes: Array<[string, Route]> = [];
  private readonly options: HttpHostOptions;
  private bound: HostPort | undefined;
  private guard: HostGuard | undefined;
  /** Whether routes that are not open need an identity (principals set, not on loopback). */
  private authenticate = false;
  private readonly refused: Counter<'reason'>;

  constructor(options: HttpHostOptions) {
    this.options = options;
    const handle = (req: IncomingMessage, res: ServerResponse): void => void this.handle(req, res);
    const tls = options.tls;
    if (tls) {
      const server = createHttpsServer(tls.serverOptions(), handle);
      tls.on('change', (context) => server.setSecureContext(context));
      refuseRenegotiation(server);
      this.server = server;
    } else this.server = createServer(handle);
    this.server.keepAliveTimeout = 5_000;
    this.refused =
      (options.registry.getSingleMetric('augur_http_refused_total') as
        Counter<'reason'> | undefined) ??
      new Counter({
        name: 'augur_http_refused_total',
        help: 'HTTP requests refused before any route saw them, by reason (host: a Host header this address does not answer to, DNS rebinding; unauthenticated, forbidden: see augur_auth_refused_total)',
        labelNames: ['reason'],
        registers: [options.registry],
      });
    this.route('/metrics', async (_req, res) => {
      const body = await (this.options.metrics ?? (() => this.options.registry.metrics()))();
      res.writeHead(200, { 'content-type': this.options.registry.contentType });
      res.end(body);
    });
    this.route(
      '/healthz',
      (_req, res) => {
        const problems = (this.options.healthChecks ?? [])
          .map((c) => c())
          .filter((p) => p !== undefined);
        res.writeHead(problems.length ? 503 : 200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: problems.length ? 'unhealthy' : 'ok', problems }));
      },
      'open',
    );
  }

  /** Serves `path` exactly; `access`: who may, when identities are required (readers by default). */
  route(path: string, handler: HttpHandler, access: HttpAccess = READER_ACCESS): void {
    this.routes.set(path, { handler, access });
  }

  /** Serves every path that starts with `prefix`. */
  routePrefix(prefix: string, handler: HttpHandler, access: HttpAccess = READER_ACCESS): void {
    this.prefixes.push([prefix, { handler, access }]);
  }

  get address(): HostPort {
    if (!this.bound) throw new AugurError('NOT_STARTED', 'HTTP host is not listening yet');
    return this.bound;
  }

  get url(): string {
    return `${this.options.tls ? 'https' : 'http'}://${formatHostPort(this.address)}`;
  }

  async start(): Promise<HostPort> {
    const wanted = parseHostPort(this.options.listen, 'HTTP listen address');
    checkPlaintext({
      what: 'HTTP',
      host: wanted.host,
      tls: this.options.tls !== undefined,
      insecure: this.options.insecure ?? false,
      logger: this.options.logger,
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) =>
        reject(
          new AugurError(
            'LISTEN_FAILED',
            `cannot listen on ${this.options.listen}: ${err.message}`,
          ),
        );
      this.server.once('error', onError);
      this.server.listen(wanted.port, wanted.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    const info = this.server.address() as AddressInfo;
    this.bound = { host: wanted.host, port: info.port };
    this.guard = new HostGuard({
      listenHost: wanted.host,
      allowedHosts: this.options.allowedHosts,
      tls: this.options.tls,
    });
    this.authenticate = (this.options.authorizer?.enabled ?? false) && !isLoopbackHost(wanted.host);
    return this.bound;
  }

  async stop(): Promise<void> {
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    if (this.guard && !this.guard.allows(req.headers.host)) {
      this.refused.inc({ reason: 'host' });
      res.writeHead(421, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(this.guard.refusal(req.headers.host));
      return;
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route =
      this.routes.get(url.pathname) ?? this.prefixes.find(([p]) => url.pathname.startsWith(p))?.[1];
    try {
      if (!route) {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(`no route for ${url.pathname}\n`);
        return;
      }
      if (this.authenticate && route.access !== 'open' && !this.admit(req, res, url, route.access))
        return;
      await route.handler(req, res, url);
    } catch (err) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`internal error: ${(err as Error).message}\n`);
    }
  }

  /** Checks who is asking for a route; answers 401/403 and returns false when they may not. */
  private admit(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    roles: readonly Role[],
  ): boolean {
    const verdict = this.options.authorizer!.authorizeRoles(
      roles,
      url.pathname,
      presentedByRequest(req),
      'http',
    );
    if (!isRefusal(verdict)) return true;
    const unauthenticated = verdict.code === grpcStatus.UNAUTHENTICATED;
    this.refused.inc({ reason: unauthenticated ? 'unauthenticated' : 'forbidden' });
    res.writeHead(unauthenticated ? 401 : 403, {
      'content-type': 'text/plain; charset=utf-8',
      // A browser asks for the token as the password of Basic authentication; scrapers send Bearer.
      ...(unauthenticated
        ? { 'www-authenticate': ['Basic realm="augur", charset="UTF-8"', 'Bearer realm="augur"'] }
        : {}),
    });
    res.end(`${verdict.message}\n`);
    return false;
  }
}

interface Route {
  handler: HttpHandler;
  access: HttpAccess;
}

/** A metrics registry for one process (or one test), with Node's default metrics. */
export function createRegistry(defaults = true): Registry {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry });
  return registry;
}
