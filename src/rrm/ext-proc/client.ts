import http2 from 'node:http2';
import net from 'node:net';
import tls, { type ConnectionOptions } from 'node:tls';
import { parseHostPort } from '../../common/address.js';
import { AugurError } from '../../common/errors.js';
import { frameMessage, MessageReader } from '../../common/grpc-framing.js';
import {
  CLUSTER_NAME_ATTRIBUTE,
  EXT_PROC_ATTRIBUTE_NAMESPACE,
  ROUTE_NAME_ATTRIBUTE,
} from '../service-resolver.js';
import { DESTINATION_ENDPOINT } from '../request-api.js';
import { extProcCodec, LB_METADATA_NAMESPACE, warmExtProcCodec } from './messages.js';
import { EXT_PROC_SERVICE_NAME, UPSTREAM_ADDRESS_ATTRIBUTE } from './server.js';

/** A ProcessingResponse as the client reads it (field names as in the proto, enums as strings). */
export interface ProcessingAnswer {
  response?: 'request_headers' | 'response_headers' | 'immediate_response' | string;
  request_headers?: {
    response?: {
      header_mutation?: {
        set_headers?: Array<{ header: { key: string; value?: string; raw_value?: Buffer } }>;
        remove_headers?: string[];
      };
    };
  };
  immediate_response?: {
    status: { code: string | number };
    body?: Buffer;
    headers?: {
      set_headers?: Array<{ header: { key: string; value?: string; raw_value?: Buffer } }>;
    };
  };
  /** google.protobuf.Struct (camelCase: protobufjs bundles the well-known types). */
  dynamic_metadata?: {
    fields: Record<string, { structValue?: { fields: Record<string, { stringValue?: string }> } }>;
  };
}

export interface ExtProcRequest {
  /** Header name (lower case, pseudo-headers included) and value pairs. */
  headers: Array<[string, string]>;
  endOfStream: boolean;
  routeName?: string;
  clusterName?: string;
}

/** What Envoy reports of the upstream's response in the response phase. */
export interface ExtProcResponse {
  status: number;
  /** The endpoint that answered, `ip:port` (the `upstream.address` attribute). */
  upstreamAddress?: string;
}

/** How the response phase ended: answered, or Envoy went on without an answer. */
export type ResponsePhaseOutcome = 'answered' | 'closed' | 'timeout' | 'error';

/** Envoy's ext_proc `deferred_close_timeout` default. */
const DEFERRED_CLOSE_MS = 5_000;

const PROCESS_PATH = `/${EXT_PROC_SERVICE_NAME}/Process`;

/**
 * Envoy's side of ext_proc, for the demo data plane: on one HTTP/2 connection, one Process
 * stream per HTTP request, the request headers with the route and cluster attributes, their
 * answer; then, once the upstream has answered, its response headers with the `upstream.address`
 * attribute (`response_header_mode: SEND`, `response_attributes: [upstream.address]`, as in
 * envoy/bootstrap.yaml) and their answer; then the stream half-closed. It speaks gRPC on
 * node:http2 directly, as Envoy's own gRPC client is a small part of Envoy's cost per request:
 * grpc-js's client costs a large multiple of the RRM's own work per stream.
 */
export class ExtProcClient {
  private readonly address: string;
  private readonly tls: ConnectionOptions | undefined;
  private session: http2.ClientHttp2Session | undefined;

  /** `tlsOptions`: speak TLS (ca, and cert/key for mutual TLS), as Envoy's TLS transport socket. */
  constructor(address: string, tlsOptions?: ConnectionOptions) {
    parseHostPort(address, 'ext_proc server address');
    this.address = address;
    this.tls = tlsOptions;
    // Now, not in the first request, whose answer would then be late (see warmExtProcCodec).
    warmExtProcCodec();
  }

  /**
   * Opens the stream of one request and asks about its headers; rejects on a stream error or
   * after `timeoutMs` (Envoy's message_timeout), having reset the stream.
   */
  start(req: ExtProcRequest, timeoutMs: number): Promise<ExtProcStream> {
    const stream = new ExtProcStream(this.connect());
    return stream.start(requestHeadersMessage(req), timeoutMs).then(() => stream);
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }

  private connect(): http2.ClientHttp2Session {
    const s = this.session;
    if (s && !s.closed && !s.destroyed) return s;
    const { host, port } = parseHostPort(this.address, 'ext_proc server address');
    // Envoy sets TCP_NODELAY on its upstream connections; so does this client.
    const secure = this.tls;
    const session = secure
      ? http2.connect(`https://${this.address}`, {
          createConnection: () => {
            const socket = tls.connect({ ...secure, host, port, ALPNProtocols: ['h2'] });
            socket.setNoDelay(true);
            return socket;
          },
        })
      : http2.connect(`http://${this.address}`, {
          createConnection: () => net.connect({ host, port, noDelay: true }),
        });
    session.on('error', () => undefined);
    session.unref();
    this.session = session;
    return session;
  }
}

/** One request's ext_proc stream, as Envoy holds it. */
export class ExtProcStream {
  /** The answer to the request headers (set once `start` resolved). */
  answer: ProcessingAnswer = {};
  private readonly stream: http2.ClientHttp2Stream;
  private readonly reader = new MessageReader(4 << 20);
  private waiting: ((answer: ProcessingAnswer | Error) => void) | undefined;
  private serverClosed = false;
  private ended = false;

  constructor(session: http2.ClientHttp2Session) {
    this.stream = session.request({
      ':method': 'POST',
      ':path': PROCESS_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    this.stream.on('data', (chunk: Buffer) => {
      let messages: Buffer[];
      try {
        messages = this.reader.push(chunk);
      } catch (err) {
        return this.settle(err as Error);
      }
      for (const m of messages) this.settle(decodeAnswer(m));
    });
    this.stream.on('trailers', (trailers) => {
      this.serverClosed = true;
      const code = Number(trailers['grpc-status'] ?? 0);
      if (code !== 0) {
        const message = decodeURIComponent(String(trailers['grpc-message'] ?? ''));
        this.settle(new AugurError('EXT_PROC_STATUS', `ext_proc status ${code}: ${message}`));
      }
    });
    this.stream.on('response', (headers) => {
      // Trailers-only: the status is in the response headers.
      const code = headers['grpc-status'];
      if (code !== undefined) {
        this.serverClosed = true;
        if (Number(code) !== 0)
          this.settle(new AugurError('EXT_PROC_STATUS', `ext_proc status ${String(code)}`));
      }
    });
    this.stream.on('close', () => {
      this.serverClosed = true;
      this.settle(new AugurError('EXT_PROC_CLOSED', 'ext_proc stream closed before its answer'));
    });
    this.stream.on('error', (err: Error) => this.settle(err));
  }

  /** Sends the request headers; resolves with their answer. */
  start(message: Uint8Array, timeoutMs: number): Promise<void> {
    return this.ask(message, timeoutMs).then((answer) => {
      this.answer = answer;
    });
  }

  /**
   * Sends the upstream's response headers and waits for their answer (Envoy holds the response
   * until then, up to the message timeout, and with `failure_mode_allow` goes on without one).
   * Sends nothing if the RRM already closed the stream (it needs nothing more). Never rejects.
   */
  async respond(res: ExtProcResponse, timeoutMs: number): Promise<ResponsePhaseOutcome> {
    if (this.serverClosed || this.ended) return 'closed';
    try {
      await this.ask(responseHeadersMessage(res), timeoutMs);
      return 'answered';
    } catch (err) {
      return err instanceof AugurError && err.code === 'EXT_PROC_TIMEOUT' ? 'timeout' : 'error';
    }
  }

  /**
   * The request is over: half-close, and reset only if the server has not closed its side
   * within the deferred close timeout (a reset per request would look like a rapid-reset flood).
   */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.stream.closed || this.stream.destroyed) return;
    this.stream.end();
    const deferred = setTimeout(
      () => this.stream.close(http2.constants.NGHTTP2_CANCEL),
      DEFERRED_CLOSE_MS,
    );
    deferred.unref();
    this.stream.once('close', () => clearTimeout(deferred));
  }

  /** Resets the stream (Envoy's reaction to an ext_proc error or timeout). */
  reset(): void {
    this.ended = true;
    if (!this.stream.closed && !this.stream.destroyed)
      this.stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  private ask(message: Uint8Array, timeoutMs: number): Promise<ProcessingAnswer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        this.reset();
        reject(
          new AugurError(
            'EXT_PROC_TIMEOUT',
            `ext_proc server did not answer within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.waiting = (answer) => {
        clearTimeout(timer);
        if (answer instanceof Error) {
          this.reset();
          reject(answer);
        } else resolve(answer);
      };
      this.stream.write(frameMessage(message));
    });
  }

  private settle(answer: ProcessingAnswer | Error): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.(answer);
  }
}

function requestHeadersMessage(req: ExtProcRequest): Uint8Array {
  const attrs: Record<string, { stringValue: string }> = {};
  if (req.routeName) attrs[ROUTE_NAME_ATTRIBUTE] = { stringValue: req.routeName };
  if (req.clusterName) attrs[CLUSTER_NAME_ATTRIBUTE] = { stringValue: req.clusterName };
  return encodeRequest({
    request_headers: {
      headers: {
        headers: req.headers.map(([key, v]) => ({ key, raw_value: Buffer.from(v, 'latin1') })),
      },
      end_of_stream: req.endOfStream,
    },
    attributes: { [EXT_PROC_ATTRIBUTE_NAMESPACE]: { fields: attrs } },
  });
}

function responseHeadersMessage(res: ExtProcResponse): Uint8Array {
  const attrs: Record<string, { stringValue: string }> = {};
  if (res.upstreamAddress) attrs[UPSTREAM_ADDRESS_ATTRIBUTE] = { stringValue: res.upstreamAddress };
  return encodeRequest({
    response_headers: {
      headers: { headers: [{ key: ':status', raw_value: Buffer.from(String(res.status)) }] },
      end_of_stream: false,
    },
    attributes: { [EXT_PROC_ATTRIBUTE_NAMESPACE]: { fields: attrs } },
  });
}

function encodeRequest(message: Record<string, unknown>): Uint8Array {
  const { request } = extProcCodec();
  return request.encode(request.fromObject(message)).finish();
}

function decodeAnswer(bytes: Buffer): ProcessingAnswer {
  const { response } = extProcCodec();
  return response.toObject(response.decode(bytes), {
    enums: String,
    oneofs: true,
    longs: String,
  }) as ProcessingAnswer;
}

/** The override-host list an answer carries in `envoy.lb` metadata (what Envoy's policy reads). */
export function overrideHosts(answer: ProcessingAnswer): string[] {
  const v =
    answer.dynamic_metadata?.fields[LB_METADATA_NAMESPACE]?.structValue?.fields[
      DESTINATION_ENDPOINT
    ]?.stringValue;
  return v
    ? v
        .split(',')
        .map((h) => h.trim())
        .filter((h) => h !== '')
    : [];
}

/** Header value of a HeaderValue from an answer: `raw_value` when set, else `value`. */
export function mutationValue(h: { value?: string; raw_value?: Buffer }): string {
  return h.raw_value && h.raw_value.length > 0 ? h.raw_value.toString('latin1') : (h.value ?? '');
}
