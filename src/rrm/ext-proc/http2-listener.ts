import { status } from '@grpc/grpc-js';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { isRefusal, type Authorizer } from '../../common/auth.js';
import { checkPlaintext } from '../../common/security.js';
import {
  refuseRenegotiation,
  verifiedPeerCertificate,
  type TlsMaterial,
} from '../../common/tls.js';
import { AugurError } from '../../common/errors.js';
import { formatHostPort, parseHostPort, type HostPort } from '../../common/address.js';
import { clientOfSocket } from '../../common/peer.js';
import type { Logger } from '../../common/logger.js';
import {
  FramingError,
  frameMessage,
  MessageReader,
  PartialBudget,
} from '../../common/grpc-framing.js';
import { decodeProcessingRequest } from './messages.js';
import { EXT_PROC_SERVICE_NAME, type ExtProcHandler } from './server.js';

/*
 * Envoy's ext_proc service on node:http2 directly: the RRM's fast path.
 *
 * An ext_proc exchange is one gRPC stream per HTTP request, so the transport's cost per stream
 * is the RRM's cost per request. Through grpc-js a stream costs this process about 150-190 µs of
 * CPU (its call objects, Node streams, metadata and status handling), ten times the RRM's own
 * work, and at 5,000 requests/s on one core that is the whole core. Here a stream costs what
 * Node's HTTP/2 costs (bench:rrm's floor) plus the RRM's decision.
 *
 * A routed request's stream stays open until its response headers come back (the in-band
 * signals of the picker), so there is one open stream per request in flight at Envoy.
 *
 * It speaks the part of gRPC over HTTP/2 an ext_proc client uses
 * (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md): POST with content-type
 * application/grpc, length-prefixed messages, response headers, then trailers with grpc-status.
 * It answers `ExternalProcessor/Process` and `grpc.health.v1.Health/Check` (Envoy's gRPC health
 * check of the ext_proc cluster); any other method gets UNIMPLEMENTED. Compressed messages are
 * refused (Envoy does not compress ext_proc messages).
 *
 * Limits against a client that is not Envoy: each frame header is checked as it arrives (a
 * compressed flag gets UNIMPLEMENTED, a declared length over `rrm.extProcMaxMessageBytes`
 * RESOURCE_EXHAUSTED, before anything is kept); the bytes of messages not yet whole, across
 * every stream, share one budget (`rrm.extProcPartialBudgetBytes`; a stream whose next chunk
 * would pass it gets RESOURCE_EXHAUSTED), and a message still partial after
 * `rrm.extProcPartialTimeout` gets DEADLINE_EXCEEDED; either way its bytes are dropped at once. A
 * bad message in a chunk with good ones: the good ones before it are answered, then the status
 * goes out in the trailers. At most `rrm.maxStreams` ext_proc streams are open at once in this
 * process, this listener's and the gRPC address's together (the count is the ExtProcHandler's),
 * `rrm.maxStreamsPerClient` of them from one client; a further one gets RESOURCE_EXHAUSTED as it
 * starts. The same ExtProcHandler serves the
 * ext_proc service on augur's one gRPC address; this listener is an additional address, for the
 * Envoy cluster that carries ext_proc (`augur_rrm` in envoy/bootstrap.yaml).
 */

export const PROCESS_PATH = `/${EXT_PROC_SERVICE_NAME}/Process`;
export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';

/** grpc.health.v1.HealthCheckResponse { status: SERVING (1) }, framed. */
const HEALTH_SERVING = Buffer.from([0, 0, 0, 0, 2, 0x08, 0x01]);

export interface ExtProcListenerOptions {
  /** HOST:PORT; port 0 picks a free one. */
  listen: string;
  handler: ExtProcHandler;
  logger: Logger;
  /** Largest request message accepted, bytes (as grpc-js's max receive length). */
  maxMessageBytes?: number;
  /** Bytes of partly received messages all streams may hold together (default 16 MiB). */
  partialBudgetBytes?: number;
  /** A message still partly received this long after its first byte is refused, ms (default 10 s). */
  partialTimeoutMs?: number;
  /** Told of each stream refused by a limit, with the gRPC status code. */
  onRefused?: (code: number) => void;
  /** Streams one connection may have open at once (Envoy opens one per HTTP request). */
  maxConcurrentStreams?: number;
  /** TLS (and mutual TLS) from files kept current; absent: plaintext (h2c). */
  tls?: TlsMaterial | undefined;
  /** Plaintext off loopback allowed (`--insecure`); otherwise start() refuses it. */
  insecure?: boolean;
  /** Who may open ext_proc streams (dataPlane, admin); absent or without principals: everyone. */
  authorizer?: Authorizer | undefined;
}

export class ExtProcListener {
  private readonly options: ExtProcListenerOptions;
  private readonly server: http2.Http2Server | http2.Http2SecureServer;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private bound: HostPort | undefined;
  private stopping = false;
  /** Bytes of partly received messages held by every stream together. */
  readonly partial: PartialBudget;

  constructor(options: ExtProcListenerOptions) {
    this.options = options;
    this.partial = new PartialBudget(options.partialBudgetBytes ?? 16 << 20);
    const serverOptions: http2.ServerOptions = {
      settings: { maxConcurrentStreams: options.maxConcurrentStreams ?? 10_000 },
      // Node refuses new streams (ENHANCE_YOUR_CALM) past this much buffered per connection;
      // a burst of thousands of small exchanges on one connection must not hit it. Megabytes.
      maxSessionMemory: 64,
    };
    const tls = options.tls;
    if (tls) {
      const server = http2.createSecureServer({ ...serverOptions, ...tls.serverOptions() });
      tls.on('change', (context) => server.setSecureContext(context));
      // A failed handshake (no or a foreign client certificate) is the client's problem.
      server.on('tlsClientError', () => undefined);
      // The identity of a connection is read once (verifiedPeerCertificate): HTTP/2 forbids
      // renegotiation and Node refuses it on h2 connections; this says so for any other.
      refuseRenegotiation(server);
      this.server = server;
    } else this.server = http2.createServer(serverOptions);
    // Answers are small and latency is the point: no Nagle delay behind the response headers.
    this.server.on('connection', (socket: Socket) => socket.setNoDelay(true));
    this.server.on('session', (session) => {
      this.sessions.add(session);
      session.on('close', () => this.sessions.delete(session));
      session.on('error', () => undefined);
      if (this.stopping) session.close();
    });
    this.server.on('stream', (stream, headers) => this.onStream(stream, headers));
  }

  get address(): HostPort {
    if (!this.bound) throw new AugurError('NOT_STARTED', 'ext_proc listener is not listening yet');
    return this.bound;
  }

  async start(): Promise<HostPort> {
    const want = parseHostPort(this.options.listen, 'rrm.extProcListen');
    checkPlaintext({
      what: 'ext_proc',
      host: want.host,
      tls: this.options.tls !== undefined,
      insecure: this.options.insecure ?? false,
      logger: this.options.logger,
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void =>
        reject(
          new AugurError(
            'LISTEN_FAILED',
            `cannot listen for ext_proc on ${formatHostPort(want)}: ${err.message}`,
          ),
        );
      this.server.once('error', onError);
      this.server.listen(want.port, want.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    const a = this.server.address();
    if (!a || typeof a === 'string') throw new AugurError('LISTEN_FAILED', 'no TCP address');
    this.bound = { host: a.address, port: a.port };
    this.options.logger.info(
      { extProcListen: formatHostPort(this.bound) },
      `ext_proc (Envoy endpoint picker, HTTP/2 fast path) listening on ${formatHostPort(this.bound)}`,
    );
    return this.bound;
  }

  /**
   * Stops accepting connections and asks every open one to finish (GOAWAY): streams in flight
   * get their answer; whatever is still open after `graceMs` is closed.
   */
  async stop(graceMs = 2000): Promise<void> {
    this.stopping = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sessions) s.close();
    const timer = setTimeout(() => {
      for (const s of this.sessions) s.destroy();
    }, graceMs);
    timer.unref();
    if (this.bound) await closed;
    clearTimeout(timer);
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', () => undefined);
    const contentType = headers['content-type'];
    if (
      headers[':method'] !== 'POST' ||
      typeof contentType !== 'string' ||
      !contentType.startsWith('application/grpc')
    ) {
      // Not gRPC at all: gRPC's answer to a wrong content type is HTTP 415.
      stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    const path = headers[':path'];
    const authorizer = this.options.authorizer;
    if (authorizer?.enabled && path === PROCESS_PATH) {
      const socket = stream.session?.socket;
      const verdict = authorizer.authorize(
        path,
        {
          certificate: socket instanceof TLSSocket ? verifiedPeerCertificate(socket) : undefined,
          authorization:
            typeof headers.authorization === 'string' ? headers.authorization : undefined,
        },
        'ext_proc',
      );
      if (isRefusal(verdict)) {
        trailersOnly(stream, verdict.code, verdict.message);
        return;
      }
    }
    if (path === PROCESS_PATH) this.process(stream, headers['grpc-timeout']);
    else if (path === HEALTH_CHECK_PATH) this.healthCheck(stream);
    else
      trailersOnly(
        stream,
        status.UNIMPLEMENTED,
        `${String(path)}: this listener serves ${PROCESS_PATH} only`,
      );
  }

  /**
   * One ext_proc stream: each ProcessingRequest is answered as it arrives, the response headers
   * sent with the first answer; once the RRM needs nothing more (a 400 or 503, or the routed
   * request's response headers answered) the stream is closed with status OK at once, without
   * waiting for Envoy's half-close (Envoy's contract: "if the server closes the gRPC stream
   * cleanly, then Envoy proceeds without consulting the server"). Until then a routed request
   * counts in flight; a stream that ends otherwise (reset, cancelled, half-closed) gives it back.
   */
  private process(
    stream: http2.ServerHttp2Stream,
    grpcTimeout: string | string[] | undefined,
  ): void {
    // rrm.maxStreams open in this process (both addresses), or rrm.maxStreamsPerClient of them
    // from this client: refused before anything is read.
    const client = clientOfSocket(stream.session?.socket);
    const refused = this.options.handler.refusal(client);
    if (refused !== undefined) {
      trailersOnly(stream, status.RESOURCE_EXHAUSTED, refused);
      return;
    }
    const exchange = this.options.handler.open(client);
    const reader = new MessageReader(this.options.maxMessageBytes ?? 4 << 20, {
      budget: this.partial,
      budgetName: 'rrm.extProcPartialBudgetBytes',
    });
    const timeoutMs = this.options.partialTimeoutMs ?? 10_000;
    let partialTimer: NodeJS.Timeout | undefined;
    let finished = false;
    const stopTimer = (): void => {
      if (partialTimer) clearTimeout(partialTimer);
      partialTimer = undefined;
    };
    // The client's deadline (grpc-timeout), if it sent one: the stream ends with DEADLINE_EXCEEDED.
    const deadlineMs = typeof grpcTimeout === 'string' ? parseGrpcTimeout(grpcTimeout) : undefined;
    const deadlineTimer =
      deadlineMs === undefined
        ? undefined
        : setTimeout(() => {
            if (finished) return;
            finished = true;
            stopTimer();
            reader.release();
            endWithStatus(stream, status.DEADLINE_EXCEEDED, 'deadline exceeded (grpc-timeout)');
          }, deadlineMs);
    deadlineTimer?.unref();
    stream.on('close', () => {
      stopTimer();
      if (deadlineTimer) clearTimeout(deadlineTimer);
      reader.release();
      exchange.close();
    });
    const refuse = (err: FramingError): void => {
      finished = true;
      stopTimer();
      reader.release();
      this.options.onRefused?.(err.code);
      endWithStatus(stream, err.code, err.message);
    };
    stream.on('data', (chunk: Buffer) => {
      if (finished) return;
      const { messages, error } = reader.read(chunk);
      // The good messages before a bad frame are answered, then the status goes out.
      for (const message of messages) {
        let answer: Uint8Array;
        try {
          answer = exchange.answer(decodeProcessingRequest(message));
        } catch (err) {
          finished = true;
          stopTimer();
          reader.release();
          this.options.logger.warn({ err }, 'ext_proc request could not be read or answered');
          endWithStatus(
            stream,
            status.INVALID_ARGUMENT,
            `cannot read the ProcessingRequest: ${errorText(err)}`,
          );
          return;
        }
        if (!stream.headersSent) stream.respond(GRPC_RESPONSE_HEADERS, { waitForTrailers: true });
        if (exchange.done) {
          finished = true;
          stopTimer();
          reader.release();
          stream.once('wantTrailers', sendOkTrailers);
          stream.end(frameMessage(answer));
          return;
        }
        stream.write(frameMessage(answer));
      }
      if (error) {
        refuse(error);
        return;
      }
      // A message begun and not finished has `partialTimeoutMs` from its first byte to be whole.
      if (reader.pending === 0) stopTimer();
      else if (!partialTimer && timeoutMs > 0) {
        partialTimer = setTimeout(() => {
          partialTimer = undefined;
          if (finished) return;
          const held = reader.pending;
          refuse(
            new FramingError(
              status.DEADLINE_EXCEEDED,
              `a message was still partly received (${held} bytes) after ${timeoutMs} ms ` +
                '(rrm.extProcPartialTimeout)',
            ),
          );
        }, timeoutMs);
        partialTimer.unref();
      }
    });
    stream.on('end', () => {
      if (finished) return;
      finished = true;
      stopTimer();
      // Half-closed by Envoy (the request is over, or nothing more will be sent): done.
      if (reader.pending > 0) {
        reader.release();
        endWithStatus(stream, status.INTERNAL, 'the stream ended inside a message');
      } else if (stream.headersSent) {
        stream.once('wantTrailers', sendOkTrailers);
        stream.end();
      } else trailersOnly(stream, status.OK, '');
    });
  }

  private healthCheck(stream: http2.ServerHttp2Stream): void {
    stream.on('data', () => undefined);
    stream.on('end', () => {
      if (stream.closed || stream.destroyed) return;
      const serving = !this.stopping;
      if (!serving) {
        trailersOnly(stream, status.UNAVAILABLE, 'augur is shutting down');
        return;
      }
      stream.respond(GRPC_RESPONSE_HEADERS, { waitForTrailers: true });
      stream.once('wantTrailers', sendOkTrailers);
      stream.end(HEALTH_SERVING);
    });
  }
}

const GRPC_RESPONSE_HEADERS: http2.OutgoingHttpHeaders = {
  ':status': 200,
  'content-type': 'application/grpc',
};

/** A `wantTrailers` listener (`this` is the stream): status OK. */
function sendOkTrailers(this: http2.ServerHttp2Stream): void {
  this.sendTrailers({ 'grpc-status': '0' });
}

/**
 * Ends a stream with a status: in the trailers after the answers already sent (the response
 * headers went out with `waitForTrailers`), else trailers-only.
 */
function endWithStatus(stream: http2.ServerHttp2Stream, code: number, message: string): void {
  if (stream.closed || stream.destroyed) return;
  if (!stream.headersSent) {
    trailersOnly(stream, code, message);
    return;
  }
  stream.once('wantTrailers', () => {
    const trailers: http2.OutgoingHttpHeaders = { 'grpc-status': String(code) };
    if (message) trailers['grpc-message'] = percentEncoded(message);
    stream.sendTrailers(trailers);
  });
  stream.end();
}

/** A gRPC response with no messages: status in the headers, stream ended. */
function trailersOnly(stream: http2.ServerHttp2Stream, code: number, message: string): void {
  if (stream.closed || stream.destroyed) return;
  if (stream.headersSent) {
    stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    return;
  }
  const headers: http2.OutgoingHttpHeaders = {
    ':status': 200,
    'content-type': 'application/grpc',
    'grpc-status': String(code),
  };
  if (message) headers['grpc-message'] = percentEncoded(message);
  stream.respond(headers, { endStream: true });
}

/**
 * A grpc-message value as gRPC over HTTP/2 percent-encodes it: the UTF-8 bytes, each outside
 * printable ASCII (and `%`) as %XX. Not encodeURIComponent: grpc-js decodes with decodeURI, which
 * leaves `%2C`, `%3B`, `%2F` and the like as they are, so its clients saw them in the details.
 */
function percentEncoded(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const TIMEOUT_UNIT_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 1e-3,
  n: 1e-6,
};

/** A grpc-timeout header value (up to 8 digits and a unit) in ms; undefined if it is not one. */
export function parseGrpcTimeout(value: string): number | undefined {
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  return m ? Math.min(Number(m[1]) * TIMEOUT_UNIT_MS[m[2]!]!, 2 ** 31 - 1) : undefined;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
