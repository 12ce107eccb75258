import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { fullCollector } from './collect.js';
import { LstmEngine } from './engine.js';
import type { WorkerReply, WorkerRequest } from './protocol.js';
import { loadTf } from './tf.js';

/**
 * The LSTM worker thread: owns the engine, answers requests in order. A fit
 * yields between batches, so `predict` requests that arrive during training are
 * answered between two batches rather than after the whole fit.
 */
const port = parentPort;
if (!port) throw new Error('lstm worker must run in a worker thread');

let engine: LstmEngine | undefined;

/** This thread's id in the OS (Linux: /proc/thread-self names it); undefined elsewhere. */
function threadId(): number | undefined {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(tid) ? tid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Lowers this thread's CPU priority (Linux: a thread has its own nice value), so on a busy
 * host the serving thread wins the CPU over training. Elsewhere it is a no-op and training
 * simply shares the CPU.
 */
function lowerPriority(tid: number | undefined, niceness: number): boolean {
  if (niceness <= 0 || tid === undefined) return false;
  try {
    setPriority(tid, niceness);
    return true;
  } catch {
    return false;
  }
}
/**
 * A fit leaves tens of MB of TensorFlow.js garbage (tensor wrappers, the gradient tape) in this
 * thread's old generation, which V8 leaves until allocation drives the heap past its limit: at 5,000
 * endpoints the worker's heap held 85 MB after the first fit, 21 MB of it live, until the next
 * fit. Collected after each fit and import instead (about 45 ms of this niced thread, after the
 * reply), it stays near what is live.
 */
const collect = fullCollector();

const yieldToMessages = () => new Promise<void>((resolve) => setImmediate(resolve));

async function handle(req: WorkerRequest): Promise<unknown> {
  if (req.op === 'init') {
    const tid = threadId();
    const niced = lowerPriority(tid, req.niceness);
    const { tf, backend } = await loadTf();
    engine = new LstmEngine(tf, req.spec, { ...req.engine, yieldEvery: yieldToMessages });
    return { backend: niced ? `${backend} (nice ${req.niceness})` : backend, tid };
  }
  if (!engine) throw new Error('worker not initialised');
  switch (req.op) {
    case 'append':
      engine.appendMany(req.ids, req.ends, req.rows);
      return null;
    case 'forget':
      engine.forget(req.ids);
      return null;
    case 'predict':
      return engine.predictIds(req.ids, req.ends, req.into);
    case 'fit':
      return engine.fit(req.epochs, req.reset);
    case 'export':
      return engine.export();
    case 'import':
      await engine.import(req.state);
      return null;
  }
}

port.on('message', (req: WorkerRequest) => {
  handle(req).then(
    (result) => {
      const transfer = result instanceof Float32Array ? [result.buffer as ArrayBuffer] : [];
      port.postMessage({ id: req.id, ok: true, result } as WorkerReply, transfer);
      if (req.op === 'fit' || req.op === 'import') collect?.();
    },
    (err: unknown) => {
      port.postMessage({
        id: req.id,
        ok: false,
        error: err instanceof Error ? err.message : String(err),
      } as WorkerReply);
    },
  );
});
