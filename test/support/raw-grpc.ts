import http2 from 'node:http2';
import net from 'node:net';

/*
 * gRPC calls made byte by byte over node:http2, for tests that send what a well-behaved client
 * never would (compressed flags, bad lengths, half messages, several messages in one chunk).
 */

/** One length-prefixed gRPC message; `compressed` sets the flag byte. */
export function framed(body: Uint8Array, compressed = 0): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = compressed;
  out.writeUInt32BE(body.length, 1);
  out.set(body, 5);
  return out;
}

export interface RawCallResult {
  /** grpc-status from the trailers or a trailers-only response; undefined when none came. */
  code: number | undefined;
  message: string;
  /** HTTP status of the response headers (0 when none came). */
  httpStatus: number;
  /** Bytes of response messages received. */
  bodyBytes: number;
  /** The stream was reset or failed before a status came. */
  reset: boolean;
  /** Nothing ended the call within the deadline. */
  hung: boolean;
}

export interface RawCallOptions {
  /** Half-close after the chunks (default true). */
  end?: boolean;
  /** How long to wait for a status, ms. */
  deadlineMs?: number;
  /** Resolve once response bytes arrive (a subscription such as Watch answers and stays open). */
  settleOnData?: boolean;
  /** More request headers (grpc-timeout, ...). */
  headers?: http2.OutgoingHttpHeaders;
}

/**
 * One call on `session`: writes each chunk as one write, half-closes unless told not to, and
 * resolves when a status comes (or the stream is reset, or the deadline passes: `hung`). The
 * stream is closed before resolving.
 */
export function rawCall(
  session: http2.ClientHttp2Session,
  path: string,
  chunks: readonly Buffer[],
  options: RawCallOptions = {},
): Promise<RawCallResult> {
  const { end = true, deadlineMs = 5000, settleOnData = false } = options;
  return new Promise((resolve) => {
    const result: RawCallResult = {
      code: undefined,
      message: '',
      httpStatus: 0,
      bodyBytes: 0,
      reset: false,
      hung: false,
    };
    let stream: http2.ClientHttp2Stream;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      resolve(result);
    };
    const timer = setTimeout(() => {
      result.hung = true;
      finish();
    }, deadlineMs);
    const readStatus = (h: http2.IncomingHttpHeaders): void => {
      if (h['grpc-status'] === undefined) return;
      result.code = Number(h['grpc-status']);
      result.message = safeDecode(String(h['grpc-message'] ?? ''));
      finish();
    };
    try {
      stream = session.request({
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc',
        te: 'trailers',
        ...options.headers,
      });
    } catch {
      result.reset = true;
      clearTimeout(timer);
      resolve(result);
      return;
    }
    stream.on('response', (h) => {
      result.httpStatus = Number(h[':status']);
      if (result.httpStatus !== 200) finish();
      else readStatus(h);
    });
    stream.on('trailers', readStatus);
    stream.on('data', (c: Buffer) => {
      result.bodyBytes += c.length;
      if (settleOnData) finish();
    });
    stream.on('error', () => {
      result.reset = true;
      finish();
    });
    stream.on('close', () => {
      if (result.code === undefined) result.reset = true;
      finish();
    });
    for (const c of chunks) stream.write(c);
    if (end) stream.end();
  });
}

/**
 * Opens a session to `address` (host:port) and waits until it is connected; from `localAddress`
 * where given (another loopback address, 127.0.0.2, is another client to the server).
 */
export function connect(address: string, localAddress?: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const url = `http://${address}`;
    const session =
      localAddress === undefined
        ? http2.connect(url)
        : http2.connect(url, {
            createConnection: () => {
              const { hostname, port } = new URL(url);
              return net.connect({ host: hostname, port: Number(port), localAddress });
            },
          });
    session.once('connect', () => {
      session.off('error', reject);
      session.on('error', () => undefined);
      resolve(session);
    });
    session.once('error', reject);
  });
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
