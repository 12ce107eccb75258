import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadEnvoyProtos } from '../common/envoy-protos.js';
import { formatHostPort, parseHostPort, type HostPort } from '../common/address.js';
import { AugurError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import {
  ExtProcClient,
  mutationValue,
  overrideHosts,
  type ExtProcStream,
  type ProcessingAnswer,
} from './ext-proc/client.js';

/**
 * A small HTTP proxy that routes like Envoy configured as in envoy/: it asks the RRM over
 * ext_proc (one stream per request, request headers with the route and cluster attributes),
 * applies the header mutation, and sends the request to the hosts in the `envoy.lb`
 * metadata in order, moving to the next on a connect failure, a reset or a 503, as Envoy's
 * override-host policy with the route's retry policy does. When the upstream's response
 * headers arrive (or the request fails for good), it sends them to the RRM on the same stream
 * with the endpoint that answered (`upstream.address`) and waits for the answer before
 * answering the client, as Envoy does with `response_header_mode: SEND`; then it half-closes
 * the stream. With no usable answer (the RRM down or slow: `failure_mode_allow`), it falls back
 * to round robin over `fallbackHosts`.
 *
 * As a library (the real-socket benchmark drives it so): `new DataPlane({ listen: '127.0.0.1:0',
 * rrm: '<the RRM's ext_proc address>', clusterName: '<service>', logger })`, `await start()`,
 * send HTTP requests to `url`, `await stop()`. Point `rrm` at `rrm.extProcListen` (the fast
 * path Envoy is configured with) or at the gRPC address.
 *
 * For the demo and tests only: not a replacement for Envoy (HTTP/1.1 only, no TLS, bodies
 * buffered, no health checking, no circuit breaking).
 */
export interface DataPlaneOptions {
  /** HTTP listen address, HOST:PORT (port 0: any free port). */
  listen: string;
  /** The RRM's gRPC address. */
  rrm: string;
  /** Sent as `xds.route_name` / `xds.cluster_name`, as Envoy's ext_proc filter would. */
  routeName?: string;
  clusterName?: string;
  /** Envoy's ext_proc `message_timeout`; default 200 ms. */
  messageTimeoutMs?: number;
  /**
   * Send the upstream's response headers to the RRM (`response_header_mode: SEND`, as the shipped
   * bootstraps do); default true. False: request headers only, the stream half-closed once the
   * request is answered.
   */
  responsePhase?: boolean;
  /** The route's `num_retries`; default 2 (one try plus two retries). */
  retries?: number;
  /** Per upstream attempt; default 5 s. */
  upstreamTimeoutMs?: number;
  /** What the fallback policy balances over when the RRM gives no hosts. */
  fallbackHosts?: string[];
  /** Largest request body buffered for retries; default 1 MiB. */
  maxBodyBytes?: number;
  logger: Logger;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'host',
  'content-length',
]);

/** Why an upstream attempt is retried on the next host (Envoy: connect-failure, reset, 503). */
class RetriableUpstreamError extends Error {}

export class DataPlane {
  private readonly options: Required<Omit<DataPlaneOptions, 'routeName' | 'clusterName'>> &
    Pick<DataPlaneOptions, 'routeName' | 'clusterName'>;
  private readonly server: Server;
  private readonly extProc: ExtProcClient;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 256 });
  private readonly statusCodes: Record<string, number>;
  private roundRobin = 0;
  private bound: HostPort | undefined;

  constructor(options: DataPlaneOptions) {
    this.options = {
      messageTimeoutMs: 200,
      responsePhase: true,
      retries: 2,
      upstreamTimeoutMs: 5_000,
      fallbackHosts: [],
      maxBodyBytes: 1 << 20,
      ...options,
    };
    this.extProc = new ExtProcClient(options.rrm);
    this.statusCodes = loadEnvoyProtos().root.lookupEnum('envoy.type.v3.StatusCode').values;
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5_000;
  }

  get url(): string {
    if (!this.bound) throw new AugurError('NOT_STARTED', 'data plane is not listening yet');
    return `http://${formatHostPort(this.bound)}`;
  }

  async start(): Promise<HostPort> {
    const wanted = parseHostPort(this.options.listen, 'data plane listen address');
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (err) =>
        reject(
          new AugurError(
            'LISTEN_FAILED',
            `cannot listen on ${this.options.listen}: ${err.message}`,
          ),
        ),
      );
      this.server.listen(wanted.port, wanted.host, () => resolve());
    });
    this.bound = { host: wanted.host, port: (this.server.address() as AddressInfo).port };
    this.options.logger.info(
      { listen: formatHostPort(this.bound), rrm: this.options.rrm },
      'demo data plane listening',
    );
    return this.bound;
  }

  async stop(): Promise<void> {
    if (this.server.listening) {
      await new Promise<void>((resolve) => {
        this.server.close(() => resolve());
        this.server.closeAllConnections();
      });
    }
    this.agent.destroy();
    this.extProc.close();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let exchange: ExtProcStream | undefined;
    try {
      const body = await readBody(req, this.options.maxBodyBytes);
      const headers = requestHeaders(req);
      try {
        exchange = await this.extProc.start(
          {
            headers: [
              [':method', req.method ?? 'GET'],
              [':scheme', 'http'],
              [':authority', req.headers.host ?? ''],
              [':path', req.url ?? '/'],
              ...Object.entries(headers).flatMap(([k, v]) =>
                (Array.isArray(v) ? v : [String(v)]).map((one): [string, string] => [k, one]),
              ),
            ],
            endOfStream: body.length === 0,
            routeName: this.options.routeName,
            clusterName: this.options.clusterName,
          },
          this.options.messageTimeoutMs,
        );
      } catch (err) {
        // failure_mode_allow: the request goes on to the fallback policy.
        this.options.logger.warn(
          { err: (err as Error).message },
          'ext_proc failed; using the fallback policy',
        );
      }
      const answer = exchange?.answer;
      if (answer?.response === 'immediate_response' && answer.immediate_response) {
        return this.sendImmediate(res, answer.immediate_response);
      }
      const mutation = answer?.request_headers?.response?.header_mutation;
      for (const name of mutation?.remove_headers ?? []) delete headers[name.toLowerCase()];
      for (const { header } of mutation?.set_headers ?? [])
        headers[header.key.toLowerCase()] = mutationValue(header);
      const hosts = answer ? overrideHosts(answer) : [];
      await this.forward(req, res, headers, body, hosts, exchange);
    } catch (err) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`data plane error: ${(err as Error).message}\n`);
    } finally {
      exchange?.end();
    }
  }

  /** Tells the RRM how the request was answered (Envoy's ext_proc response phase). */
  private async reportResponse(
    exchange: ExtProcStream | undefined,
    status: number,
    upstreamAddress: string | undefined,
  ): Promise<void> {
    if (!exchange || !this.options.responsePhase) return;
    await exchange.respond({ status, upstreamAddress }, this.options.messageTimeoutMs);
  }

  /** Tries the override hosts in order, then the fallback policy, up to 1 + retries attempts. */
  private async forward(
    req: IncomingMessage,
    res: ServerResponse,
    headers: OutgoingHttpHeaders,
    body: Buffer,
    hosts: string[],
    exchange: ExtProcStream | undefined,
  ): Promise<void> {
    const attempts = 1 + this.options.retries;
    let last = 'no upstream host';
    let lastHost: string | undefined;
    for (let i = 0; i < attempts; i++) {
      const host = hosts[i] ?? this.fallbackHost();
      if (!host) break;
      lastHost = host;
      try {
        const upstream = await this.attempt(host, req, headers, body);
        const another =
          i < attempts - 1 && (i + 1 < hosts.length || this.options.fallbackHosts.length > 0);
        if (upstream.statusCode === 503 && another) {
          upstream.resume();
          last = `${host}: 503`;
          continue;
        }
        const status = upstream.statusCode ?? 502;
        await this.reportResponse(exchange, status, host);
        res.writeHead(status, upstreamHeaders(upstream));
        upstream.pipe(res);
        return;
      } catch (err) {
        if (!(err instanceof RetriableUpstreamError)) throw err;
        last = `${host}: ${err.message}`;
      }
    }
    // Envoy's local reply also passes the response phase, naming the last host it tried.
    await this.reportResponse(exchange, 503, lastHost);
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.end(`no healthy upstream (${last})\n`);
  }

  private fallbackHost(): string | undefined {
    const hosts = this.options.fallbackHosts;
    if (hosts.length === 0) return undefined;
    return hosts[this.roundRobin++ % hosts.length];
  }

  private attempt(
    hostPort: string,
    req: IncomingMessage,
    headers: OutgoingHttpHeaders,
    body: Buffer,
  ): Promise<IncomingMessage> {
    const { host, port } = parseHostPort(hostPort, 'upstream host');
    return new Promise((resolve, reject) => {
      const up = httpRequest(
        {
          agent: this.agent,
          host,
          port,
          method: req.method,
          path: req.url,
          headers: {
            ...headers,
            host: req.headers.host ?? hostPort,
            'content-length': body.length,
          },
          timeout: this.options.upstreamTimeoutMs,
        },
        resolve,
      );
      up.on('timeout', () => up.destroy(new RetriableUpstreamError('upstream timeout')));
      up.on('error', (err: NodeJS.ErrnoException) =>
        reject(
          err instanceof RetriableUpstreamError
            ? err
            : new RetriableUpstreamError(err.code ?? err.message),
        ),
      );
      up.end(body);
    });
  }

  private sendImmediate(
    res: ServerResponse,
    ir: NonNullable<ProcessingAnswer['immediate_response']>,
  ): void {
    const code =
      typeof ir.status.code === 'number'
        ? ir.status.code
        : (this.statusCodes[ir.status.code] ?? 500);
    const headers: OutgoingHttpHeaders = {};
    for (const { header } of ir.headers?.set_headers ?? [])
      headers[header.key] = mutationValue(header);
    res.writeHead(code, headers);
    res.end(ir.body ?? '');
  }
}

function requestHeaders(req: IncomingMessage): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  }
  return out;
}

function upstreamHeaders(res: IncomingMessage): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(res.headers)) {
    if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  }
  return out;
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        reject(new AugurError('BODY_TOO_LARGE', `request body above ${max} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
