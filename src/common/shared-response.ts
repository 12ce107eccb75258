import type * as grpc from '@grpc/grpc-js';
import { frameMessage, GRPC_PREFIX_BYTES } from './grpc-framing.js';

/*
 * One gRPC response message written to many streams (an xDS snapshot to every connected client),
 * framed once.
 *
 * grpc-js frames each message it sends into a new buffer (a 0 byte for "not compressed", the
 * length, then the bytes) before writing it to the HTTP/2 stream. For a 51 KiB endpoint
 * assignment pushed to 100 clients that is 5 MB of fresh buffers per push; V8 counts them against
 * its heap limits and ran a full mark-compact about every second push, whose helper threads took
 * the CPU the clients needed: in bench:xds (1,000 endpoints, 100 clients) the p99 was 47-83 ms
 * over five runs. Framing once and writing the same buffer to every stream: 35-44 ms.
 *
 * grpc-js has no public way to hand it a framed message, so `sharedResponses` (a server
 * interceptor, which is public API) replaces the framing step (`serializeMessage`, a method of
 * grpc-js's own base call object, which is not) on the calls of methods whose response
 * serializer is `serializeSharedResponse`, and only for `SharedResponse` values. If grpc-js
 * changes so that the method is not there, nothing is replaced and grpc-js frames the bytes
 * itself through `serializeSharedResponse`: the same bytes on the wire, only slower.
 * `framedWrites()` counts the writes that took the shared path, so a test notices when an upgrade
 * loses it.
 */

/** An immutable message, kept with its gRPC framing. Do not mutate its buffers. */
export class SharedResponse {
  /** The whole frame: prefix and message. */
  readonly framed: Buffer;

  private constructor(framed: Buffer) {
    this.framed = framed;
  }

  /** The concatenation of `parts` (each a valid run of protobuf fields) as one message. */
  static concat(parts: readonly Uint8Array[]): SharedResponse {
    return new SharedResponse(frameMessage(...parts));
  }

  /** The message without its prefix. */
  get bytes(): Buffer {
    return this.framed.subarray(GRPC_PREFIX_BYTES);
  }
}

/** The response serializer of a method that sends SharedResponses (grpc-js frames a copy). */
export function serializeSharedResponse(m: SharedResponse): Buffer {
  return m.bytes;
}

let sharedWrites = 0;

/** How many SharedResponses were written without grpc-js framing a copy (process-wide). */
export function framedWrites(): number {
  return sharedWrites;
}

/** The part of grpc-js's base server call this relies on; see the note at the top of the file. */
interface FramingCall {
  serializeMessage?: (value: unknown) => Buffer;
}

/** A server interceptor (`new grpc.Server({ interceptors: [sharedResponses] })`); see the top. */
export const sharedResponses: grpc.ServerInterceptor = (method, call) => {
  // Returned as is: interceptors chain by what they return, and wrapping every call of the server
  // (the RRM's ext_proc streams among them) in a pass-through layer would only cost time.
  const unchanged = call as grpc.ServerInterceptingCall;
  if (method.responseSerialize !== serializeSharedResponse) return unchanged;
  const base = call as grpc.ServerInterceptingCallInterface & FramingCall;
  const frame = base.serializeMessage;
  if (typeof frame !== 'function') return unchanged;
  base.serializeMessage = (value: unknown): Buffer => {
    if (!(value instanceof SharedResponse)) return frame.call(base, value);
    sharedWrites++;
    return value.framed;
  };
  return unchanged;
};
