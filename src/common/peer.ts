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
