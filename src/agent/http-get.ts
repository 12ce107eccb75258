import net from 'node:net';
import tls from 'node:tls';
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
  /** CA certificates (PEM) an https:// server's certificate is checked against instead of Node's. */
  ca?: string | Buffer;
}

const DEFAULT_MAX_BODY = 4 * 1024 * 1024;
/** Largest status line plus headers accepted, bytes. */
const MAX_HEAD = 64 * 1024;

const CR = 13;
const LF = 10;
/** The blank line that ends the status line and headers. */
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
/**
 * Bytes one read of a plain-TCP connection takes at most: the socket reads into
 * one buffer of this size, kept by the getter (`net.connect`'s `onread`), instead
 * of a new one per read pushed through a Readable stream.
 */
const READ_BUFFER = 64 * 1024;

/** How the body of the answer being read ends. */
const enum BodyMode {
  /** Still reading the status line and headers. */
  Head,
  /** `content-length` bytes. */
  Length,
  /** `transfer-encoding: chunked`: a hex size line, that many bytes, CRLF; a 0 size ends it. */
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  /** After the 0-size chunk: trailer lines up to an empty one. */
  Trailers,
  /** Neither: the body ends when the server closes the connection. */
  UntilClose,
}

/** One GET in flight. */
interface Pending {
  resolve: (res: GetResponse) => void;
  reject: (err: AugurError) => void;
  timer: NodeJS.Timeout;
  /** Sent on a connection that served earlier answers: a reset before any byte of the answer is retried once. */
  reused: boolean;
  retried: boolean;
}

/**
 * GETs one URL again and again over one kept-alive HTTP/1.1 connection. This is
 * what the agent uses each tick for the metrics URL, the load URL and the HTTP
 * probe: the request's bytes are built once and written in one call, and the
 * answer is parsed from the socket's buffers here (status line, `content-length`
 * or chunked body, `connection: close`), without node:http's per-request
 * machinery (ClientRequest, IncomingMessage, the agent's socket pool, the
 * parser's callbacks, two streams), which cost three to four times the CPU of
 * the GET itself (measured: src/agent/README.md, "Cost"); `fetch` cost more
 * still.
 *
 * `get()` rejects with an `AugurError` naming the URL: HTTP_UNREACHABLE (the
 * connection failed or closed before a whole answer), HTTP_TIMEOUT (no whole
 * answer within the timeout), HTTP_BODY_TOO_LARGE (more than `maxBodyBytes`),
 * HTTP_BAD_ANSWER (not an HTTP/1.x answer). Any status resolves; `getOk()` also
 * rejects a status other than 2xx with HTTP_STATUS. One GET runs at a time; a
 * second waits for the first. The server closing the idle connection is
 * noticed, and a GET that meets a connection closed under it before any byte of
 * the answer is sent once more on a new one.
 */
export class KeptAliveGetter {
  readonly url: string;
  private readonly what: string;
  private readonly timeoutMs: number;
  private readonly maxBody: number;
  private readonly discard: boolean;
  private readonly host: string;
  private readonly port: number;
  private readonly tls: boolean;
  private readonly servername: string | undefined;
  private readonly ca: string | Buffer | undefined;
  private readonly request: Buffer;
  private socket: net.Socket | undefined;
  /** What a plain-TCP connection reads into (allocated at the first connect, then reused). */
  private readBuffer: Buffer | undefined;
  /** The connection answered at least once (so a reset on it may be a server's idle close). */
  private socketUsed = false;
  private pending: Pending | undefined;
  /** GETs waiting for the one in flight. */
  private readonly queue: Array<() => void> = [];
  private closed = false;
  // The answer being read.
  private mode = BodyMode.Head;
  private head: Buffer | undefined;
  private status = 0;
  private keepAlive = true;
  private remaining = 0;
  private bodyBytes = 0;
  private chunks: Buffer[] = [];
  private line: Buffer | undefined;
  private gotBytes = false;

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
    this.tls = parsed.protocol === 'https:';
    this.host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = Number(parsed.port || (this.tls ? 443 : 80));
    this.servername = this.tls && net.isIP(this.host) === 0 ? this.host : undefined;
    this.ca = opts.ca;
    const lines = [
      `GET ${parsed.pathname}${parsed.search} HTTP/1.1`,
      `Host: ${parsed.host}`,
      'User-Agent: augur-agent',
      'Accept: */*',
    ];
    if (parsed.username || parsed.password) {
      const auth = `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`;
      lines.push(`Authorization: Basic ${Buffer.from(auth).toString('base64')}`);
    }
    this.request = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  }

  /** One GET; resolves with any status, rejects when there is no whole answer. */
  get(): Promise<GetResponse> {
    return new Promise<GetResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        const p = this.pending;
        if (p && p.timer === timer) {
          this.drop();
          this.finish(p, this.timedOut());
        } else {
          // Still queued behind another GET.
          const at = this.queue.indexOf(start);
          if (at >= 0) this.queue.splice(at, 1);
          reject(this.timedOut());
        }
      }, this.timeoutMs);
      const start = () => {
        if (this.closed) {
          clearTimeout(timer);
          reject(this.unreachable(new Error('the getter is closed')));
          return;
        }
        this.pending = { resolve, reject, timer, reused: false, retried: false };
        this.send();
      };
      if (this.pending) this.queue.push(start);
      else start();
    });
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

  /** Closes the kept-alive connection; a GET in flight or waiting fails, a later one opens another. */
  close(): void {
    this.closed = true;
    const p = this.pending;
    this.drop();
    if (p) this.finish(p, this.unreachable(new Error('the getter was closed')));
    for (const start of this.queue.splice(0)) start();
    this.closed = false;
  }

  /** Writes the request on the kept-alive connection, opening one if there is none. */
  private send(): void {
    const p = this.pending!;
    this.resetAnswer();
    if (!this.socket) this.connect();
    p.reused = this.socketUsed;
    this.socket!.write(this.request);
  }

  private connect(): void {
    let socket: net.Socket;
    if (this.tls) {
      socket = tls.connect({
        host: this.host,
        port: this.port,
        servername: this.servername,
        ALPNProtocols: ['http/1.1'],
        ...(this.ca ? { ca: this.ca } : {}),
      });
      socket.on('data', (chunk: Buffer) => {
        if (socket === this.socket) this.onData(chunk);
      });
    } else {
      // Reads land in the getter's own buffer and come straight here: no Readable stream
      // (push, 'data', read-more ticks) and no new buffer per read. The buffer is reused by
      // the next read, so whatever is kept of a chunk is copied (head, line and body do).
      const buffer = (this.readBuffer ??= Buffer.allocUnsafe(READ_BUFFER));
      socket = net.connect({
        host: this.host,
        port: this.port,
        onread: {
          buffer,
          callback: (n: number, buf: Uint8Array) => {
            if (socket === this.socket) this.onData((buf as Buffer).subarray(0, n));
            return true; // keep reading
          },
        },
      });
    }
    socket.setNoDelay(true);
    this.socket = socket;
    this.socketUsed = false;
    socket.on('error', (err) => {
      if (socket === this.socket) this.onLost(err);
    });
    socket.on('end', () => {
      if (socket !== this.socket) return;
      // The body of an answer without a length ends with the connection.
      if (this.pending && this.mode === BodyMode.UntilClose) this.complete(false);
      else this.onLost(new Error('the server closed the connection'));
    });
    socket.on('close', () => {
      if (socket === this.socket) this.onLost(new Error('the connection closed'));
    });
  }

  /** The connection failed or closed: fail (or once retry) the GET in flight. */
  private onLost(err: Error): void {
    const p = this.pending;
    this.drop();
    if (!p) return;
    if (p.reused && !p.retried && !this.gotBytes) {
      // The server closed the idle kept-alive connection as we reused it: once more, afresh.
      p.retried = true;
      this.send();
      return;
    }
    this.finish(p, this.unreachable(err));
  }

  /** Forgets the connection (destroying it). */
  private drop(): void {
    const s = this.socket;
    this.socket = undefined;
    this.socketUsed = false;
    s?.destroy();
  }

  private resetAnswer(): void {
    this.mode = BodyMode.Head;
    this.head = undefined;
    this.status = 0;
    this.keepAlive = true;
    this.remaining = 0;
    this.bodyBytes = 0;
    this.chunks = [];
    this.line = undefined;
    this.gotBytes = false;
  }

  private onData(chunk: Buffer): void {
    if (!this.pending) {
      // Bytes no request asked for: the connection cannot be trusted for the next answer.
      this.drop();
      return;
    }
    this.gotBytes = true;
    let at = 0;
    try {
      while (at < chunk.length && this.pending) at = this.step(chunk, at);
    } catch (err) {
      const p = this.pending;
      this.drop();
      if (p) this.finish(p, err as AugurError);
    }
  }

  /** Consumes bytes of `chunk` from `at` in the current state; returns where it stopped. */
  private step(chunk: Buffer, at: number): number {
    switch (this.mode) {
      case BodyMode.Head: {
        const buf = this.head
          ? Buffer.concat([this.head, chunk.subarray(at)])
          : at === 0
            ? chunk
            : chunk.subarray(at);
        const end = buf.indexOf(HEAD_END);
        if (end < 0) {
          if (buf.length > MAX_HEAD) throw this.badAnswer(`headers longer than ${MAX_HEAD} bytes`);
          this.head = Buffer.from(buf);
          return chunk.length;
        }
        const consumedBefore = this.head?.length ?? 0;
        this.head = undefined;
        this.parseHead(buf.toString('latin1', 0, end));
        const next = at + end + 4 - consumedBefore;
        if ((this.mode as BodyMode) === BodyMode.Length && this.remaining === 0)
          this.complete(this.keepAlive);
        return next;
      }
      case BodyMode.Length: {
        const take = Math.min(this.remaining, chunk.length - at);
        this.body(chunk.subarray(at, at + take));
        this.remaining -= take;
        if (this.remaining === 0) this.complete(this.keepAlive);
        return at + take;
      }
      case BodyMode.UntilClose:
        this.body(chunk.subarray(at));
        return chunk.length;
      case BodyMode.ChunkData: {
        const take = Math.min(this.remaining, chunk.length - at);
        this.body(chunk.subarray(at, at + take));
        this.remaining -= take;
        if (this.remaining === 0) {
          this.mode = BodyMode.ChunkDataEnd;
          this.remaining = 2; // CRLF after the data
        }
        return at + take;
      }
      case BodyMode.ChunkDataEnd: {
        const take = Math.min(this.remaining, chunk.length - at);
        this.remaining -= take;
        if (this.remaining === 0) this.mode = BodyMode.ChunkSize;
        return at + take;
      }
      case BodyMode.ChunkSize:
      case BodyMode.Trailers: {
        const lf = chunk.indexOf(LF, at);
        const part = chunk.subarray(at, lf < 0 ? chunk.length : lf);
        const line = this.line ? Buffer.concat([this.line, part]) : part;
        if (lf < 0) {
          if (line.length > MAX_HEAD) throw this.badAnswer('a chunk size or trailer line too long');
          this.line = Buffer.from(line);
          return chunk.length;
        }
        this.line = undefined;
        const text = line.toString('latin1', 0, line.at(-1) === CR ? line.length - 1 : line.length);
        if (this.mode === BodyMode.Trailers) {
          if (text === '') this.complete(this.keepAlive);
          return lf + 1;
        }
        const hex = text.split(';', 1)[0]!.trim();
        const size = /^[0-9a-fA-F]{1,8}$/.test(hex) ? parseInt(hex, 16) : NaN;
        if (Number.isNaN(size)) throw this.badAnswer(`a bad chunk size "${text.slice(0, 40)}"`);
        if (size === 0) this.mode = BodyMode.Trailers;
        else {
          this.mode = BodyMode.ChunkData;
          this.remaining = size;
        }
        return lf + 1;
      }
    }
  }

  /** The status line and headers; sets how the body is read. */
  private parseHead(head: string): void {
    const eol = head.indexOf('\r\n');
    const statusLine = eol < 0 ? head : head.slice(0, eol);
    const m = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(statusLine);
    if (!m) throw this.badAnswer(`not an HTTP/1.x status line: "${statusLine.slice(0, 60)}"`);
    const status = Number(m[2]);
    if (status >= 100 && status < 200) {
      // An interim answer (100 Continue, 103 Early Hints): the real one follows.
      this.mode = BodyMode.Head;
      return;
    }
    this.status = status;
    this.keepAlive = m[1] === '1';
    let length = -1;
    let chunked = false;
    let pos = eol < 0 ? head.length : eol + 2;
    while (pos < head.length) {
      let end = head.indexOf('\r\n', pos);
      if (end < 0) end = head.length;
      while (pos < end && (head.charCodeAt(pos) === 32 || head.charCodeAt(pos) === 9)) pos++;
      // Only content-length, transfer-encoding and connection matter: the others (they start
      // with neither c nor t) are skipped without taking them apart.
      const first = head.charCodeAt(pos) | 0x20;
      const colon = first === 0x63 || first === 0x74 ? head.indexOf(':', pos) : -1;
      if (colon > pos && colon < end) {
        const name = head.slice(pos, colon).trim().toLowerCase();
        const value = head.slice(colon + 1, end).trim();
        if (name === 'content-length') {
          if (!/^\d{1,15}$/.test(value)) throw this.badAnswer(`content-length "${value}"`);
          length = Number(value);
        } else if (name === 'transfer-encoding') {
          chunked = value.toLowerCase().split(',').at(-1)!.trim() === 'chunked';
        } else if (name === 'connection') {
          const v = value.toLowerCase();
          if (v.includes('close')) this.keepAlive = false;
          else if (v.includes('keep-alive')) this.keepAlive = true;
        }
      }
      pos = end + 2;
    }
    if (status === 204 || status === 304) {
      this.mode = BodyMode.Length;
      this.remaining = 0;
    } else if (chunked) this.mode = BodyMode.ChunkSize;
    else if (length >= 0) {
      if (length > this.maxBody) throw this.tooLarge(`${length} bytes declared`);
      this.mode = BodyMode.Length;
      this.remaining = length;
    } else {
      this.mode = BodyMode.UntilClose;
      this.keepAlive = false;
    }
  }

  private body(part: Buffer): void {
    this.bodyBytes += part.length;
    if (this.bodyBytes > this.maxBody) throw this.tooLarge(`more than ${this.maxBody} bytes sent`);
    // The socket's buffer is reused by the next read: keep a copy unless discarding.
    if (!this.discard && part.length > 0) this.chunks.push(Buffer.from(part));
  }

  /** A whole answer: resolve, keep or drop the connection, start the next GET waiting. */
  private complete(keep: boolean): void {
    const p = this.pending!;
    const chunks = this.chunks;
    const body =
      chunks.length === 0
        ? ''
        : (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.bodyBytes)).toString(
            'utf8',
          );
    const status = this.status;
    this.resetAnswer();
    if (keep && this.socket) this.socketUsed = true;
    else this.drop();
    this.finish(p, undefined, { status, body });
  }

  private finish(p: Pending, err: AugurError | undefined, res?: GetResponse): void {
    if (this.pending === p) this.pending = undefined;
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(res!);
    const next = this.queue.shift();
    if (next) next();
  }

  private timedOut(): AugurError {
    return new AugurError(
      'HTTP_TIMEOUT',
      `${this.what} ${this.url}: no answer within ${this.timeoutMs / 1000} s`,
    );
  }

  private badAnswer(detail: string): AugurError {
    return new AugurError('HTTP_BAD_ANSWER', `${this.what} ${this.url}: ${detail}`);
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
