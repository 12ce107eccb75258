import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { AugurError } from './errors.js';
import { formatHostPort, parseHostPort, type HostPort } from './address.js';
import type { Logger } from './logger.js';
import { checkPlaintext } from './security.js';
import type { TlsMaterial } from './tls.js';

export type HttpHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
) => void | Promise<void>;

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
}

/** One HTTP address per process: /metrics, /healthz, and whatever parts mount on it. */
export class HttpHost {
  private readonly server: Server;
  private readonly routes = new Map<string, HttpHandler>();
  private readonly prefixes: Array<[string, HttpHandler]> = [];
  private readonly options: HttpHostOptions;
  private bound: HostPort | undefined;

  constructor(options: HttpHostOptions) {
    this.options = options;
    const handle = (req: IncomingMessage, res: ServerResponse): void => void this.handle(req, res);
    const tls = options.tls;
    if (tls) {
      const server = createHttpsServer(tls.serverOptions(), handle);
      tls.on('change', (context) => server.setSecureContext(context));
      this.server = server;
    } else this.server = createServer(handle);
    this.server.keepAliveTimeout = 5_000;
    this.route('/metrics', async (_req, res) => {
      const body = await (this.options.metrics ?? (() => this.options.registry.metrics()))();
      res.writeHead(200, { 'content-type': this.options.registry.contentType });
      res.end(body);
    });
    this.route('/healthz', (_req, res) => {
      const problems = (this.options.healthChecks ?? [])
        .map((c) => c())
        .filter((p) => p !== undefined);
      res.writeHead(problems.length ? 503 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: problems.length ? 'unhealthy' : 'ok', problems }));
    });
  }

  /** Serves `path` exactly. */
  route(path: string, handler: HttpHandler): void {
    this.routes.set(path, handler);
  }

  /** Serves every path that starts with `prefix`. */
  routePrefix(prefix: string, handler: HttpHandler): void {
    this.prefixes.push([prefix, handler]);
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
    const url = new URL(req.url ?? '/', 'http://localhost');
    const handler =
      this.routes.get(url.pathname) ?? this.prefixes.find(([p]) => url.pathname.startsWith(p))?.[1];
    try {
      if (!handler) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end(`no route for ${url.pathname}\n`);
        return;
      }
      await handler(req, res, url);
    } catch (err) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`internal error: ${(err as Error).message}\n`);
    }
  }
}

/** A metrics registry for one process (or one test), with Node's default metrics. */
export function createRegistry(defaults = true): Registry {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry });
  return registry;
}
