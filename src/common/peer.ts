/** What a gRPC server call tells of the other end (grpc-js's ServerSurfaceCall has it). */
export interface PeerSource {
  getPeer(): string;
}

/**
 * The connection a call came on: grpc-js's peer string, the client's `ip:port`, which names
 * one TCP connection (every stream on it shares it).
 */
export function connectionOf(call: PeerSource): string {
  return call.getPeer();
}

/**
 * Who the client of a call is, for per-client limits: for now the IP address of its
 * connection, so every connection from one host counts together. This is the seam where an
 * authenticated identity (a certificate's SAN, a token's subject) takes over once the
 * connection proves one.
 */
export function clientOf(call: PeerSource): string {
  const peer = call.getPeer();
  // `ip:port`, `[v6]:port` or `v6:port` (grpc-js writes IPv6 both ways across versions); a
  // Unix socket or an unexpected form is its own name.
  const m = /^\[?(.*?)\]?:\d+$/.exec(peer);
  return m?.[1] || peer;
}

/**
 * Who the client of a stream on a `node:http2` server is, named as clientOf names it for a
 * grpc-js call (its IP address), so both transports of one service count a client together.
 */
export function clientOfSocket(socket: { remoteAddress?: string | undefined } | undefined): string {
  return socket?.remoteAddress ?? 'unknown';
}

/**
 * Streams open now per key (a client, a connection), for per-client and per-connection limits.
 * A key's entry lives only while it has a stream open: a client with none holds no memory.
 */
export class OpenCounts {
  private readonly counts = new Map<string, number>();

  /** Streams open now for `key` (0 when none). */
  of(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /** Keys with a stream open now. */
  get size(): number {
    return this.counts.size;
  }

  /** A stream for `key` opened. */
  add(key: string): void {
    this.counts.set(key, this.of(key) + 1);
  }

  /** A stream for `key` ended; the entry goes at 0. */
  remove(key: string): void {
    const n = this.of(key) - 1;
    if (n > 0) this.counts.set(key, n);
    else this.counts.delete(key);
  }
}
