import * as grpc from '@grpc/grpc-js';
import { Counter, type Registry } from 'prom-client';

/*
 * Fixes for grpc-js server calls that fuzzing left without a status (issue 12: 49 hangs in
 * 10,100 cases), as a server interceptor (public API) that patches methods of grpc-js's own base
 * server call (which are not), as shared-response.ts does:
 *
 * - A message with the compressed flag set on a call without `grpc-encoding` is read by grpc-js
 *   as if it were not compressed (the flag is ignored for the "identity" encoding); a Watch whose
 *   request came that way stayed open as a valid subscription instead of ending with an error.
 *   augur never asks for compression and its clients never send it, so every compressed message
 *   is refused with UNIMPLEMENTED, whatever `grpc-encoding` says: compressed requests are refused
 *   on the whole gRPC address.
 * - A Report stream where an undecodable message arrived in the same chunk as a good one: grpc-js
 *   sent the status (INTERNAL) but still handed the good message to the handler afterwards, whose
 *   reply was written after the end of the stream; Node then dropped the trailers, and the client
 *   waited for ever. Once a call's status is out, nothing more is handed to the handler and
 *   nothing the handler writes is sent.
 *
 * If grpc-js changes so that a patched method is not there, that patch is skipped (the counters
 * then stay at 0 where a test expects them to move, so an upgrade that loses them is noticed).
 */

type StatusArg = Parameters<grpc.ServerInterceptingCallInterface['sendStatus']>[0];

type Counted = 'compressed_refused' | 'late_message_dropped' | 'late_write_dropped';

const counts: Record<Counted, number> = {
  compressed_refused: 0,
  late_message_dropped: 0,
  late_write_dropped: 0,
};

/** What this module did so far (process-wide), for tests and /metrics. */
export function hardeningCounts(): Readonly<Record<Counted, number>> {
  return { ...counts };
}

/** The parts of grpc-js's BaseServerInterceptingCall that are patched; see the top of the file. */
interface BaseCall {
  decompressMessage?: (message: Buffer, encoding: string) => Buffer | Promise<Buffer>;
  sendStatus?: (status: StatusArg) => void;
  sendMessage?: (message: unknown, callback: () => void) => void;
  maybePushNextMessage?: () => void;
  readQueue?: unknown[];
}

export const COMPRESSED_REFUSED =
  'compressed messages are not accepted on this address (send grpc-encoding identity)';

/** A server interceptor (`new grpc.Server({ interceptors: [endEveryCall] })`); see the top. */
export const endEveryCall: grpc.ServerInterceptor = (_method, call) => {
  const base = call as unknown as BaseCall;
  let ended = false;

  const decompress = base.decompressMessage;
  if (typeof decompress === 'function') {
    base.decompressMessage = (message: Buffer, encoding: string) => {
      if (message.length > 0 && message[0] !== 0) {
        counts.compressed_refused++;
        return Promise.reject({ code: grpc.status.UNIMPLEMENTED, details: COMPRESSED_REFUSED });
      }
      return decompress.call(base, message, encoding);
    };
  }

  const sendStatus = base.sendStatus;
  if (typeof sendStatus === 'function') {
    base.sendStatus = (status: StatusArg) => {
      ended = true;
      sendStatus.call(base, status);
    };
  }

  const sendMessage = base.sendMessage;
  if (typeof sendMessage === 'function') {
    base.sendMessage = (message: unknown, callback: () => void) => {
      if (ended) {
        counts.late_write_dropped++;
        // The write "happened" as far as the handler's stream is concerned; the call is over.
        process.nextTick(callback);
        return;
      }
      sendMessage.call(base, message, callback);
    };
  }

  const push = base.maybePushNextMessage;
  if (typeof push === 'function') {
    base.maybePushNextMessage = () => {
      if (ended) {
        const queue = base.readQueue;
        if (Array.isArray(queue) && queue.length > 0) {
          counts.late_message_dropped += queue.length;
          queue.length = 0;
        }
        return;
      }
      push.call(base);
    };
  }
  return call as grpc.ServerInterceptingCall;
};

/** `augur_grpc_hardening_total{event}` on `registry`, read at scrape time. */
export function registerHardeningMetrics(registry: Registry): void {
  new Counter({
    name: 'augur_grpc_hardening_total',
    help: 'gRPC calls fixed up by the server hardening (src/common/grpc-hardening.ts), by event: compressed_refused (a compressed message, answered UNIMPLEMENTED), late_message_dropped (a request message that came after the call ended), late_write_dropped (a reply written after the call ended)',
    labelNames: ['event'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [event, n] of Object.entries(counts)) this.labels(event).inc(n);
    },
  });
}
