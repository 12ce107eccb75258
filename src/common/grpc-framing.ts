import { status } from '@grpc/grpc-js';

/*
 * gRPC's message framing over HTTP/2 (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md):
 * each message is a 1-byte compressed flag, a 4-byte big-endian length, then the bytes. For the
 * places that speak gRPC on node:http2 directly (the ext_proc fast path, shared xDS responses,
 * the benchmarks' load generators).
 */

/** Bytes before each message: the compressed flag and the length. */
export const GRPC_PREFIX_BYTES = 5;

/** The concatenation of `parts` as one uncompressed gRPC message, prefix included. */
export function frameMessage(...parts: readonly Uint8Array[]): Buffer {
  let length = 0;
  for (const p of parts) length += p.byteLength;
  const out = Buffer.allocUnsafe(GRPC_PREFIX_BYTES + length);
  out[0] = 0;
  out.writeUInt32BE(length, 1);
  let at = GRPC_PREFIX_BYTES;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** What a MessageReader refuses, with the gRPC status code that says so. */
export class FramingError extends Error {
  constructor(
    /** grpc-status: UNIMPLEMENTED (compressed) or RESOURCE_EXHAUSTED (too large). */
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Splits a stream of gRPC frames into messages. Chunks are kept as they arrive and copied once,
 * when a message is whole; a message that fits in one chunk is a view of it, not a copy.
 */
export class MessageReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private need = -1;
  private readonly maxMessageBytes: number;

  constructor(maxMessageBytes: number) {
    this.maxMessageBytes = maxMessageBytes;
  }

  /** Bytes received that are not a whole message yet. */
  get pending(): number {
    return this.have;
  }

  /** The messages `chunk` completes (without their prefix); throws FramingError on bad input. */
  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.have += chunk.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.need < 0) {
        if (this.have < GRPC_PREFIX_BYTES) return out;
        const head = this.chunks[0]!.length >= GRPC_PREFIX_BYTES ? this.chunks[0]! : this.flatten();
        if (head[0] !== 0)
          throw new FramingError(
            status.UNIMPLEMENTED,
            'compressed messages are not accepted (send grpc-encoding identity)',
          );
        const length = head.readUInt32BE(1);
        if (length > this.maxMessageBytes)
          throw new FramingError(
            status.RESOURCE_EXHAUSTED,
            `message of ${length} bytes is larger than the limit of ${this.maxMessageBytes}`,
          );
        this.need = GRPC_PREFIX_BYTES + length;
      }
      if (this.have < this.need) return out;
      const all = this.flatten();
      out.push(all.subarray(GRPC_PREFIX_BYTES, this.need));
      const rest = all.subarray(this.need);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.have = rest.length;
      this.need = -1;
    }
  }

  private flatten(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.have)];
    return this.chunks[0]!;
  }
}
