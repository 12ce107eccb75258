/**
 * What a benchmark request and its answer carry, on gRPC and on HTTP. A request names its work
 * (seconds at full speed, drawn by the load generator so that every arm replays the same work);
 * the answer names the backend and how long the request queued and was served there, so the
 * harness can tell the time spent in backends from the time spent getting there.
 */
import * as grpc from '@grpc/grpc-js';

export const WORK_METHOD = '/augur.bench.e2e.Backend/Work';
export const WORK_PATH = '/work';
export const WORK_HEADER = 'x-work-seconds';
export const BACKEND_HEADER = 'x-backend';
export const QUEUE_HEADER = 'x-queue-ms';
export const SERVICE_HEADER = 'x-service-ms';
/** On a gateway's failed answer: why (the gRPC status name). */
export const ERROR_HEADER = 'x-error';

export interface WorkDone {
  backend: number;
  queueMs: number;
  serviceMs: number;
}

const passThrough = (b: Buffer): Buffer => b;

/** The backend's one method, with raw bytes both ways. */
export const workService: grpc.ServiceDefinition = {
  Work: {
    path: WORK_METHOD,
    requestStream: false,
    responseStream: false,
    requestSerialize: passThrough,
    requestDeserialize: passThrough,
    responseSerialize: passThrough,
    responseDeserialize: passThrough,
  },
};

export function encodeWork(seconds: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeDoubleLE(seconds, 0);
  return b;
}

export function decodeWork(b: Buffer): number {
  if (b.length !== 8) throw new Error(`a work request is 8 bytes, got ${b.length}`);
  return checkWork(b.readDoubleLE(0));
}

/** A request's work, seconds at full speed: a number in [0, 3600). */
export function checkWork(seconds: number): number {
  if (!(seconds >= 0 && seconds < 3600)) {
    throw new Error(`work must be seconds in [0, 3600), got ${seconds}`);
  }
  return seconds;
}

export function encodeDone(done: WorkDone): Buffer {
  const b = Buffer.allocUnsafe(9);
  b.writeUInt8(done.backend, 0);
  b.writeFloatLE(done.queueMs, 1);
  b.writeFloatLE(done.serviceMs, 5);
  return b;
}

export function decodeDone(b: Buffer): WorkDone {
  if (b.length !== 9) throw new Error(`a work answer is 9 bytes, got ${b.length}`);
  return { backend: b.readUInt8(0), queueMs: b.readFloatLE(1), serviceMs: b.readFloatLE(5) };
}

/** An answer's headers on HTTP (the backend's and the gateway's): where it was served, and how long. */
export function doneHeaders(done: WorkDone): Record<string, string> {
  return {
    [BACKEND_HEADER]: String(done.backend),
    [QUEUE_HEADER]: done.queueMs.toFixed(3),
    [SERVICE_HEADER]: done.serviceMs.toFixed(3),
  };
}

/**
 * One `Work` call on `client` with a deadline: `done` gets the answer, or the gRPC status name
 * (`EMPTY` for an answer without a body) when it failed.
 */
export function callWork(
  client: grpc.Client,
  work: number,
  deadlineMs: number,
  done: (result: WorkDone | string) => void,
): void {
  client.makeUnaryRequest(
    WORK_METHOD,
    passThrough,
    passThrough,
    encodeWork(work),
    { deadline: Date.now() + deadlineMs },
    (err, value) => {
      if (err || !value) done(err ? (grpc.status[err.code] ?? String(err.code)) : 'EMPTY');
      else done(decodeDone(value));
    },
  );
}
