import http from 'node:http';
import https from 'node:https';
import { AugurError } from '../common/errors.js';

/** One answer of a `KeptAliveGetter`. */
export interface GetResponse {
  status: number;
  /** The body as text (latin1-safe UTF-8 decoding); empty when the body was discarded. */
  body: string;
}

export interface KeptAliveGetterOptions {
  /** What the URL is, for error messages: `metrics URL`, `health URL`, `load URL`. */
  what: string;
  /** Milliseconds before a request counts as failed (connect and answer together). */
  timeoutMs: number;
  /** Largest body accepted, bytes; a longer one fails the request. Default 4 MiB. */
  maxBodyBytes?: number;
  /** Read and drop the body instead of keeping it (a health probe needs only the status). */
  discardBody?: boolean;
  /** The error code for a bad URL. Default BAD_URL. */
  badUrlCode?: string;
}

const DEFAULT_MAX_BODY = 4 * 1024 * 1024;

/**
 * GETs one URL again and again over one kept-alive connection: an `http.Agent`
 * with keepAlive and a single socket, request options built once. This is what
 * the agent uses each tick for the metrics URL, the load URL and the HTTP probe
 * in place of `fetch`, whose per-request machinery (undici's dispatcher,
 * WHATWG streams, an AbortSignal and its timer) cost more CPU than the rest of
 * the tick together (profiled: see src/agent/README.md, "Cost").
 *
 * `get()` rejects with an `AugurError` naming the URL: HTTP_UNREACHABLE (the
 * connection failed), HTTP_TIMEOUT (no whole answer within the timeout),
 * HTTP_BODY_TOO_LARGE (more than `maxBodyBytes`). Any status resolves; `getOk()`
 * also rejects a status other than 2xx with HTTP_STATUS.
 */
export class KeptAliveGetter {
  readonly url: string;
  private readonly agent: http.Agent;
  private readonly request: typeof http.request;
  private readonly options: http.RequestOptions;
  private readonly timeoutMs: number;
  private readonly maxBody: number;
  private readonly discard: boolean;
  private readonly what: string;

  constructor(url: string, opts: KeptAliveGetterOptions) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new AugurError(opts.badUrlCode ?? 'BAD_URL', `${opts.what} "${url}" is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw new AugurError(
        opts.badUrlCode ?? 'BAD_URL',
        `${opts.what} "${url}" must be http:// or https://, got ${parsed.protocol}`,
      );
    if (!(opts.timeoutMs > 0))
      throw new AugurError(
        'BAD_TIMEOUT',
        `${opts.what}: the timeout must be > 0, got ${opts.timeoutMs}`,
      );
    this.url = parsed.toString();
    this.what = opts.what;
    this.timeoutMs = opts.timeoutMs;
    this.maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
    this.discard = opts.discardBody ?? false;
    const tls = parsed.protocol === 'https:';
    this.agent = new (tls ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: 1 });
    this.request = tls ? https.request : http.request;
    this.options = {
      protocol: parsed.protocol,
      hostname: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: parsed.port || (tls ? 443 : 80),
      path: `${parsed.pathname}${parsed.search}`,
      method: 'GET',
      agent: this.agent,
      headers: { 'user-agent': 'augur-agent', accept: '*/*' },
    };
    if (parsed.username || parsed.password)
      this.options.auth = `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`;
  }

  /** One GET; resolves with any status, rejects when there is no whole answer. */
  get(): Promise<GetResponse> {
    return new Promise<GetResponse>((resolve, reject) => {
      let done = false;
      let req: http.ClientRequest;
      const finish = (err: AugurError | undefined, res?: GetResponse) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(res!);
      };
      const send = (retry: boolean) => {
        req = this.request(this.options, (res) => this.receive(req, res, finish));
        req.on('error', (err: NodeJS.ErrnoException) => {
          // The server closed the idle kept-alive connection as we reused it: once more, afresh.
          if (retry && req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE'))
            send(false);
          else finish(this.unreachable(err));
        });
        req.end();
      };
      const timer = setTimeout(() => {
        finish(
          new AugurError(
            'HTTP_TIMEOUT',
            `${this.what} ${this.url}: no answer within ${this.timeoutMs / 1000} s`,
          ),
        );
        req.destroy();
      }, this.timeoutMs);
      send(true);
    });
  }

  private receive(
    req: http.ClientRequest,
    res: http.IncomingMessage,
    finish: (err: AugurError | undefined, res?: GetResponse) => void,
  ): void {
    const status = res.statusCode ?? 0;
    const declared = Number(res.headers['content-length']);
    if (declared > this.maxBody) {
      req.destroy();
      finish(this.tooLarge(`${declared} bytes declared`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > this.maxBody) {
        req.destroy();
        finish(this.tooLarge(`more than ${this.maxBody} bytes sent`));
        return;
      }
      if (!this.discard) chunks.push(chunk);
    });
    res.on('end', () => {
      const body =
        chunks.length === 0
          ? ''
          : (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)).toString('utf8');
      finish(undefined, { status, body });
    });
    res.on('error', (err) => finish(this.unreachable(err)));
  }

  /** One GET that must answer 2xx; another status rejects with HTTP_STATUS and the body's start. */
  async getOk(): Promise<string> {
    const res = await this.get();
    if (res.status < 200 || res.status > 299) {
      const head = res.body.slice(0, 200).trim();
      throw new AugurError(
        'HTTP_STATUS',
        `${this.what} ${this.url} answered HTTP ${res.status}${head ? `: ${head}` : ''}`,
      );
    }
    return res.body;
  }

  /** Closes the kept-alive connection; a later `get()` opens another. */
  close(): void {
    this.agent.destroy();
  }

  private tooLarge(detail: string): AugurError {
    return new AugurError(
      'HTTP_BODY_TOO_LARGE',
      `${this.what} ${this.url}: the answer is larger than ${this.maxBody} bytes (${detail})`,
    );
  }

  private unreachable(err: Error): AugurError {
    const code = (err as NodeJS.ErrnoException).code;
    return new AugurError(
      'HTTP_UNREACHABLE',
      `cannot GET ${this.what} ${this.url}: ${err.message}${code && !err.message.includes(code) ? ` (${code})` : ''}`,
      { cause: err },
    );
  }
}
