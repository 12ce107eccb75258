import { readFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import { AugurError } from '../common/errors.js';
import { readToken, type ClientSecurity } from '../common/tls.js';

/*
 * A gRPC streaming call on node:http2, for the agent's one long-lived Telemetry stream.
 *
 * grpc-js does much more than this stream needs (name resolution, load-balancing policies,
 * subchannel state machines, interceptors, per-message objects and promises), and at 1 Hz its
 * cost is most of the agent's. Here: one HTTP/2 session per target, one POST per call, each
 * message a 5-byte prefix (compressed flag 0, big-endian length) and its protobuf bytes, the
 * call's end read from the trailers' grpc-status and grpc-message (or from a trailers-only
 * answer, the HTTP status, or the reset/connection error, mapped as the gRPC spec says).
 *
 * Limits: no compression (none is asked for), no name resolution beyond what net.connect does
 * (the first address of a name), no retries or deadlines (the caller reconnects), received
 * messages of at most 4 MiB.
 */

/** gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

const STATUS_NAMES = Object.keys(GrpcStatus);

/** The name of a status code (`UNAVAILABLE`), or the number for one outside the table. */
export function statusName(code: number): string {
  return STATUS_NAMES[code] ?? String(code);
}

/** How a call ended. */
export interface CallStatus {
  code: number;
  details: string;
}

/** Most bytes one received message may have. */
export const MAX_RECEIVE_BYTES = 4 * 1024 * 1024;

/** The gRPC spec's mapping of an HTTP status without grpc-status to a gRPC code. */
export function statusFromHttp(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/** A reset stream's HTTP/2 error code as a gRPC status (as grpc-js maps it). */
function statusFromReset(rstCode: number): CallStatus {
  const c = http2.constants;
  switch (rstCode) {
    case c.NGHTTP2_REFUSED_STREAM:
      return { code: GrpcStatus.UNAVAILABLE, details: 'stream refused by the server' };
    case c.NGHTTP2_CANCEL:
      return { code: GrpcStatus.CANCELLED, details: 'call cancelled' };
    case c.NGHTTP2_ENHANCE_YOUR_CALM:
      return { code: GrpcStatus.RESOURCE_EXHAUSTED, details: 'bandwidth exhausted or memory limit exceeded' };
    case c.NGHTTP2_INADEQUATE_SECURITY:
      return { code: GrpcStatus.PERMISSION_DENIED, details: 'protocol not secure enough' };
    default:
      return {
        code: GrpcStatus.INTERNAL,
        details: `stream reset with HTTP/2 error code ${rstCode}`,
      };
  }
}

/** A `grpc-message` value: percent-encoded UTF-8. */
function decodeGrpcMessage(value: string | string[] | undefined): string {
  const v = Array.isArray(value) ? value.join(',') : (value ?? '');
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

/** grpc-status / grpc-message of a header block; undefined when it has no grpc-status. */
function statusOf(headers: http2.IncomingHttpHeaders): CallStatus | undefined {
  const raw = headers['grpc-status'];
  if (raw === undefined) return undefined;
  const code = Number(raw);
  if (!Number.isInteger(code) || code < 0) {
    return { code: GrpcStatus.UNKNOWN, details: `malformed grpc-status "${String(raw)}"` };
  }
  return { code, details: decodeGrpcMessage(headers['grpc-message']) };
}

export interface H2ChannelOptions {
  /** HOST:PORT (IPv6 in brackets). */
  target: string;
  /** TLS (a CA, a client certificate for mutual TLS, a server name) and the bearer token. */
  security?: ClientSecurity | undefined;
  /** A PING is sent after this long without a frame from the server. Default 30 s. */
  keepaliveMs?: number;
  /** A PING unanswered this long closes the connection. Default 10 s. */
  keepaliveTimeoutMs?: number;
  /** A connection not up after this long is given up. Default 20 s. */
  connectTimeoutMs?: number;
  /** Sent as user-agent. */
  userAgent?: string;
}

/** What a streaming call reports. */
export interface CallHandlers<Res> {
  onMessage(message: Res): void;
  /** Exactly once, last: how the call ended. */
  onStatus(status: CallStatus): void;
}

/**
 * One target's HTTP/2 connection, opened on demand and opened again after it was lost, with
 * keepalive PINGs. TLS material and the token are read once, when the channel is made.
 */
export class H2Channel {
  private readonly authority: string;
  private readonly url: string;
  private readonly connectOptions: http2.SecureClientSessionOptions;
  private readonly baseHeaders: http2.OutgoingHttpHeaders;
  private readonly keepaliveMs: number;
  private readonly keepaliveTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private session: http2.ClientHttp2Session | undefined;
  private closed = false;

  constructor(opts: H2ChannelOptions) {
    const s = opts.security;
    const tls = Boolean(s?.ca || s?.cert);
    this.keepaliveMs = opts.keepaliveMs ?? 30_000;
    this.keepaliveTimeoutMs = opts.keepaliveTimeoutMs ?? 10_000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 20_000;
    this.url = `${tls ? 'https' : 'http'}://${opts.target}`;
    this.authority = s?.serverName && tls ? s.serverName : opts.target;
    this.connectOptions = { settings: { enablePush: false } };
    if (tls && s) {
      if ((s.cert ? 1 : 0) !== (s.key ? 1 : 0))
        throw new AugurError(
          'TLS_INVALID',
          'a client certificate and its key must be given together',
        );
      if (s.ca) this.connectOptions.ca = readFile(s.ca, 'CA bundle');
      if (s.cert) this.connectOptions.cert = readFile(s.cert, 'certificate');
      if (s.key) this.connectOptions.key = readFile(s.key, 'private key');
      if (s.serverName) this.connectOptions.servername = s.serverName;
    }
    const token = s?.token ?? (s?.tokenFile ? readToken(s.tokenFile) : undefined);
    this.baseHeaders = {
      [http2.constants.HTTP2_HEADER_METHOD]: 'POST',
      [http2.constants.HTTP2_HEADER_AUTHORITY]: this.authority,
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-accept-encoding': 'identity',
      'user-agent': opts.userAgent ?? 'augur-agent',
    };
    if (token) this.baseHeaders['authorization'] = `Bearer ${token}`;
  }

  /**
   * Opens a bidirectional streaming call to `path`; messages are written with `write`, and
   * `end` half-closes. Handlers run for each message received and once for the end.
   */
  call<Req, Res>(
    path: string,
    encode: (message: Req) => Uint8Array,
    decode: (bytes: Uint8Array) => Res,
    handlers: CallHandlers<Res>,
  ): H2Call<Req, Res> {
    if (this.closed) throw new AugurError('CHANNEL_CLOSED', 'the gRPC channel is closed');
    const session = this.connection();
    const stream = session.request(
      { ...this.baseHeaders, [http2.constants.HTTP2_HEADER_PATH]: path },
      { endStream: false },
    );
    return new H2Call(stream, encode, decode, handlers);
  }

  /** Closes the connection; open calls end with UNAVAILABLE (or their own status). */
  close(): void {
    this.closed = true;
    this.session?.destroy();
    this.session = undefined;
  }

  private connection(): http2.ClientHttp2Session {
    const current = this.session;
    if (current && !current.closed && !current.destroyed) return current;
    const session = http2.connect(this.url, this.connectOptions);
    this.session = session;
    let pingTimer: NodeJS.Timeout | undefined;
    let pingTimeout: NodeJS.Timeout | undefined;
    const connectTimer = setTimeout(() => {
      session.destroy(
        new AugurError(
          'CONNECT_TIMEOUT',
          `no connection to ${this.authority} within ${this.connectTimeoutMs / 1000} s`,
        ),
      );
    }, this.connectTimeoutMs);
    connectTimer.unref();
    const forget = (): void => {
      if (this.session === session) this.session = undefined;
    };
    // Errors reach the calls through their streams; the session's own must not go unhandled.
    session.on('error', forget);
    // A GOAWAY: the calls in flight end by themselves; new ones need a new connection.
    session.on('goaway', forget);
    session.on('close', () => {
      forget();
      clearTimeout(connectTimer);
      clearInterval(pingTimer);
      clearTimeout(pingTimeout);
    });
    session.once('connect', () => {
      clearTimeout(connectTimer);
      // One timer for the connection's life: a PING every keepaliveMs, which must come back
      // within keepaliveTimeoutMs (a host that vanished without closing the connection).
      pingTimer = setInterval(() => {
        if (session.closed || session.destroyed || pingTimeout) return;
        pingTimeout = setTimeout(() => {
          session.destroy(
            new AugurError(
              'KEEPALIVE_TIMEOUT',
              `no answer to a keepalive PING within ${this.keepaliveTimeoutMs / 1000} s`,
            ),
          );
        }, this.keepaliveTimeoutMs);
        pingTimeout.unref();
        session.ping((err) => {
          clearTimeout(pingTimeout);
          pingTimeout = undefined;
          if (err && !session.destroyed) session.destroy(err);
        });
      }, this.keepaliveMs);
      pingTimer.unref();
    });
    // The connection alone does not keep the process alive; the calls' owner decides.
    session.unref();
    return session;
  }
}

function readFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new AugurError(
      'TLS_UNREADABLE',
      `cannot read the TLS ${what} ${path}: ${(err as Error).message}`,
    );
  }
}

/** One streaming call on an HTTP/2 stream. */
export class H2Call<Req, Res> {
  private readonly stream: http2.ClientHttp2Stream;
  private readonly encode: (message: Req) => Uint8Array;
  private readonly decode: (bytes: Uint8Array) => Res;
  private readonly handlers: CallHandlers<Res>;
  /** Received bytes not yet a whole message. */
  private pending: Buffer | undefined;
  /** How the call ends, once known (trailers, a bad answer, a cancel). */
  private status: CallStatus | undefined;
  private ended = false;

  constructor(
    stream: http2.ClientHttp2Stream,
    encode: (message: Req) => Uint8Array,
    decode: (bytes: Uint8Array) => Res,
    handlers: CallHandlers<Res>,
  ) {
    this.stream = stream;
    this.encode = encode;
    this.decode = decode;
    this.handlers = handlers;
    stream.on('response', (headers) => this.onHeaders(headers));
    stream.on('trailers', (trailers) => {
      this.status ??= statusOf(trailers) ?? {
        code: GrpcStatus.UNKNOWN,
        details: 'the server ended the call without a grpc-status',
      };
    });
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', (err: NodeJS.ErrnoException) => {
      this.status ??= {
        code: GrpcStatus.UNAVAILABLE,
        details: err.code ? `${err.code}: ${err.message}` : err.message,
      };
    });
    // The server's side ended (trailers or a trailers-only answer): the call is over, even
    // though this side has not half-closed; end the stream so HTTP/2 forgets it.
    stream.on('end', () => {
      if (!this.status) return; // the close that follows tells why
      this.onClose();
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
    });
    stream.on('close', () => this.onClose());
  }

  /** The call has ended (its status was reported). */
  get done(): boolean {
    return this.ended;
  }

  /** Sends one message (a single DATA write: prefix and body in one buffer). */
  write(message: Req): void {
    if (this.ended || this.stream.writableEnded) return;
    const body = this.encode(message);
    const frame = Buffer.allocUnsafe(5 + body.length);
    frame[0] = 0;
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, 5);
    this.stream.write(frame);
  }

  /** Half-closes: no more messages from this side; the server ends the call. */
  end(): void {
    if (!this.ended && !this.stream.writableEnded) this.stream.end();
  }

  /** Ends the call now, with CANCELLED. */
  cancel(details = 'cancelled by the client'): void {
    this.fail({ code: GrpcStatus.CANCELLED, details });
  }

  private fail(status: CallStatus): void {
    this.status ??= status;
    if (!this.stream.destroyed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  private onHeaders(headers: http2.IncomingHttpHeaders): void {
    const http = Number(headers[http2.constants.HTTP2_HEADER_STATUS]);
    const grpcStatus = statusOf(headers);
    if (http !== 200) {
      this.fail(
        grpcStatus ?? {
          code: statusFromHttp(http),
          details: `the server answered HTTP ${http} instead of a gRPC response`,
        },
      );
      return;
    }
    const type = String(headers['content-type'] ?? '');
    if (!type.startsWith('application/grpc')) {
      this.fail({
        code: GrpcStatus.UNKNOWN,
        details: `the server answered content-type "${type}" instead of application/grpc`,
      });
      return;
    }
    // A trailers-only answer: the status is in the headers.
    if (grpcStatus) this.status ??= grpcStatus;
  }

  private onData(chunk: Buffer): void {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    while (buf.length >= 5) {
      const compressed = buf[0]!;
      const length = buf.readUInt32BE(1);
      if (compressed !== 0) {
        this.fail({
          code: GrpcStatus.INTERNAL,
          details: 'the server sent a compressed message, which was not asked for',
        });
        return;
      }
      if (length > MAX_RECEIVE_BYTES) {
        this.fail({
          code: GrpcStatus.RESOURCE_EXHAUSTED,
          details: `received message larger than max (${length} vs ${MAX_RECEIVE_BYTES})`,
        });
        return;
      }
      if (buf.length < 5 + length) break;
      let message: Res;
      try {
        message = this.decode(buf.subarray(5, 5 + length));
      } catch (err) {
        this.fail({
          code: GrpcStatus.INTERNAL,
          details: `cannot parse a message from the server: ${(err as Error).message}`,
        });
        return;
      }
      buf = buf.subarray(5 + length);
      if (this.status) return; // ended while handling; drop the rest
      this.handlers.onMessage(message);
    }
    if (buf.length > 0) this.pending = Buffer.from(buf);
  }

  private onClose(): void {
    if (this.ended) return;
    this.ended = true;
    const rst = this.stream.rstCode;
    let status = this.status;
    if (!status) {
      status =
        rst !== undefined && rst !== http2.constants.NGHTTP2_NO_ERROR
          ? statusFromReset(rst)
          : {
              code: GrpcStatus.UNAVAILABLE,
              details: 'the connection closed before the call ended',
            };
    } else if (status.code === GrpcStatus.OK && this.pending) {
      status = { code: GrpcStatus.INTERNAL, details: 'the call ended inside a message' };
    }
    this.handlers.onStatus(status);
  }
}
