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
 * Bytes of partly received messages that many MessageReaders may hold together (the ext_proc
 * fast path shares one across all its streams): a client that sends the first half of many
 * large messages and then nothing gets a refusal instead of pinning the memory.
 */
export class PartialBudget {
  private usedBytes = 0;

  constructor(
    /** Most bytes held at once; Infinity for no limit. */
    readonly limitBytes: number,
  ) {}

  /** Bytes held now. */
  get used(): number {
    return this.usedBytes;
  }

  /** Takes `bytes` if they fit under the limit; says whether they did. */
  take(bytes: number): boolean {
    if (this.usedBytes + bytes > this.limitBytes) return false;
    this.usedBytes += bytes;
    return true;
  }

  give(bytes: number): void {
    this.usedBytes = Math.max(0, this.usedBytes - bytes);
  }
}

/** What one chunk gave: the messages it completed, and the refusal that stopped reading, if any. */
export interface ReadResult {
  messages: Buffer[];
  /** Set once the stream is refused; the reader then holds nothing and reads nothing more. */
  error?: FramingError;
}

/**
 * Splits a stream of gRPC frames into messages. Chunks are kept as they arrive and copied once,
 * when a message is whole; a message that fits in one chunk is a view of it, not a copy.
 *
 * Every frame header is checked as soon as it arrives: a compressed flag is refused at once
 * (UNIMPLEMENTED), and so is a declared length over the limit (RESOURCE_EXHAUSTED), before any
 * of the message is kept. With a PartialBudget, the bytes of a message not yet whole count
 * against it, and a chunk that would pass it is refused (RESOURCE_EXHAUSTED).
 */
export class MessageReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private need = -1;
  private charged = 0;
  private failed: FramingError | undefined;
  private readonly maxMessageBytes: number;
  private readonly budget: PartialBudget | undefined;
  private readonly budgetName: string;

  constructor(
    maxMessageBytes: number,
    options: { budget?: PartialBudget; budgetName?: string } = {},
  ) {
    this.maxMessageBytes = maxMessageBytes;
    this.budget = options.budget;
    this.budgetName = options.budgetName ?? 'the partial-message budget';
  }

  /** Bytes received that are not a whole message yet. */
  get pending(): number {
    return this.have;
  }

  /** The messages `chunk` completes (without their prefix); throws FramingError on bad input. */
  push(chunk: Buffer): Buffer[] {
    const r = this.read(chunk);
    if (r.error) throw r.error;
    return r.messages;
  }

  /**
   * The messages `chunk` completes (without their prefix), and the refusal that stopped reading
   * if a frame was bad: the messages before a bad frame are still given.
   */
  read(chunk: Buffer): ReadResult {
    if (this.failed) return { messages: [], error: this.failed };
    this.chunks.push(chunk);
    this.have += chunk.length;
    const messages: Buffer[] = [];
    for (;;) {
      if (this.need < 0) {
        if (this.have < GRPC_PREFIX_BYTES) break;
        const head = this.chunks[0]!.length >= GRPC_PREFIX_BYTES ? this.chunks[0]! : this.flatten();
        if (head[0] !== 0)
          return this.fail(
            messages,
            status.UNIMPLEMENTED,
            'compressed messages are not accepted (send grpc-encoding identity)',
          );
        const length = head.readUInt32BE(1);
        if (length > this.maxMessageBytes)
          return this.fail(
            messages,
            status.RESOURCE_EXHAUSTED,
            `message of ${length} bytes is larger than the limit of ${this.maxMessageBytes}`,
          );
        this.need = GRPC_PREFIX_BYTES + length;
      }
      if (this.have < this.need) break;
      const all = this.flatten();
      messages.push(all.subarray(GRPC_PREFIX_BYTES, this.need));
      const rest = all.subarray(this.need);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.have = rest.length;
      this.need = -1;
    }
    if (this.budget) {
      const delta = this.have - this.charged;
      if (delta > 0 && !this.budget.take(delta)) {
        const held = this.budget.used;
        return this.fail(
          messages,
          status.RESOURCE_EXHAUSTED,
          `partly received messages already hold ${held} bytes; ${delta} more would pass ` +
            `${this.budget.limitBytes} (${this.budgetName})`,
        );
      }
      if (delta < 0) this.budget.give(-delta);
      this.charged = this.have;
    }
    return { messages };
  }

  /** Drops whatever is held (a stream that ended or was refused) and gives it back to the budget. */
  release(): void {
    this.chunks = [];
    this.have = 0;
    this.need = -1;
    this.budget?.give(this.charged);
    this.charged = 0;
  }

  private fail(messages: Buffer[], code: number, message: string): ReadResult {
    this.failed = new FramingError(code, message);
    this.release();
    return { messages, error: this.failed };
  }

  private flatten(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.have)];
    return this.chunks[0]!;
  }
}
