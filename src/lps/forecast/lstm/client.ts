import { Worker } from 'node:worker_threads';
import { AugurError } from '../../../common/errors.js';
import type { EngineOptions, FitResult, SavedLstm } from './engine.js';
import type { LstmSpec } from './model.js';
import type { ResultOf, WorkerReply, WorkerRequest } from './protocol.js';

type Op = WorkerRequest['op'];
type Body<O extends Op> = Omit<Extract<WorkerRequest, { op: O }>, 'id' | 'op'>;

/**
 * The main thread's handle on the LSTM worker. Every call is a message; the
 * worker answers in order, so an `append` followed by a `predict` sees the
 * appended rows. Nothing here computes: the serving thread only posts and awaits.
 */
export class LstmWorker {
  readonly backend: string;
  /** The worker's thread id in the OS, where it can tell (Linux): its CPU is /proc/self/task/<tid>. */
  readonly tid: number | undefined;
  private readonly worker: Worker;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  private nextId = 1;
  private closed = false;

  private constructor(worker: Worker, backend: string) {
    this.worker = worker;
    this.backend = backend;
    this.tid = undefined;
  }

  /** Spawns the worker (the .ts source through tsx in development, the .js file when built). */
  static async start(
    spec: LstmSpec,
    engine: Omit<EngineOptions, 'yieldEvery'>,
    { niceness = 10 }: { niceness?: number } = {},
  ): Promise<LstmWorker> {
    const self = import.meta.url;
    // A young generation of 8 MB rather than V8's default (up to 48 MB on 64 bits): a fit's
    // short-lived tensors filled the default one, and the thread kept those pages. Measured here
    // at 20,000 endpoints, medians of 5 runs each: RSS 338 against 366 MB after a fit, inference
    // 4.55 against 4.72 µs of CPU per endpoint, a first fit 7.4 against 7.2 s.
    const options = { resourceLimits: { maxYoungGenerationSizeMb: 8 } };
    const worker = self.endsWith('.ts')
      ? // Development (tsx, vitest): load the .ts worker through tsx's loader inside the thread;
        // `execArgv: ['--import', 'tsx']` does not reach worker threads on Node 20.
        new Worker(
          `import('tsx/esm/api').then((m) => m.tsImport(${JSON.stringify(new URL('./worker.ts', self).href)}, ${JSON.stringify(self)}))`,
          { eval: true, ...options },
        )
      : new Worker(new URL('./worker.js', self), options);
    const client = new LstmWorker(worker, '');
    worker.on('message', (reply: WorkerReply) => client.settle(reply));
    worker.on('error', (err) => client.failAll(err));
    worker.on('exit', (code) => client.failAll(new Error(`lstm worker exited with code ${code}`)));
    try {
      const { backend, tid } = await client.call('init', { spec, engine, niceness });
      (client as { backend: string }).backend = backend;
      (client as { tid: number | undefined }).tid = tid;
    } catch (err) {
      await worker.terminate();
      throw new AugurError(
        'LSTM_UNAVAILABLE',
        `cannot start the LSTM worker: ${(err as Error).message}`,
      );
    }
    return client;
  }

  private settle(reply: WorkerReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if (reply.ok) p.resolve(reply.result);
    else p.reject(new Error(reply.error));
  }

  private failAll(err: Error): void {
    this.closed = true;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private call<O extends Op>(
    op: O,
    body: Body<O>,
    transfer: ArrayBuffer[] = [],
  ): Promise<ResultOf[O]> {
    if (this.closed) return Promise.reject(new Error('lstm worker is closed'));
    const id = this.nextId++;
    return new Promise<ResultOf[O]>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, op, ...body }, transfer);
    });
  }

  /**
   * Appends rows to series' histories. They travel packed in one transferred buffer: posting a
   * typed array per series cost about 4 µs per series, most of a tick's LSTM work on this thread.
   */
  append(series: ReadonlyArray<{ id: string; rows: Float32Array }>): Promise<null> {
    return this.appendPacked(packRows(series));
  }

  /**
   * `append` of rows already packed (see PackedRows); its buffers are transferred to the worker,
   * so the caller must not use them after.
   */
  appendPacked({ ids, ends, rows }: PackedRows): Promise<null> {
    return this.call('append', { ids, ends, rows }, [
      rows.buffer as ArrayBuffer,
      ends.buffer as ArrayBuffer,
    ]);
  }

  forget(ids: string[]): Promise<null> {
    return this.call('forget', { ids });
  }

  /** See LstmEngine.predict for the layout of the result. */
  predict(items: ReadonlyArray<{ id: string; end?: number }>): Promise<Float32Array> {
    if (!items.some((it) => it.end !== undefined)) return this.predictIds(items.map((it) => it.id));
    const ends = Float64Array.from(items, (it) => it.end ?? NaN);
    return this.call('predict', { ids: items.map((it) => it.id), ends }, [
      ends.buffer as ArrayBuffer,
    ]);
  }

  /**
   * `predict` of each series' newest window: the message carries the ids alone. The result is
   * written into `into` where it has room (a view of its start; `into` is transferred to the
   * worker and comes back as the result's buffer).
   */
  predictIds(ids: string[], into?: Float32Array): Promise<Float32Array> {
    return into
      ? this.call('predict', { ids, into }, [into.buffer as ArrayBuffer])
      : this.call('predict', { ids });
  }

  fit(epochs: number, reset = false): Promise<FitResult> {
    return this.call('fit', { epochs, reset });
  }

  export(): Promise<SavedLstm> {
    return this.call('export', {});
  }

  import(state: unknown): Promise<null> {
    return this.call('import', { state });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.worker.terminate();
    this.failAll(new Error('lstm worker closed'));
  }
}

/**
 * Rows for many series in one buffer: series `ids[i]` gets `rows` from `ends[i - 1]` (0 for the
 * first) to `ends[i]`, in floats; anything past the last end is unused (the worker's `append`
 * message).
 */
export interface PackedRows {
  ids: string[];
  ends: Uint32Array;
  rows: Float32Array;
}

/** Packs each series' rows into one PackedRows (copies them). */
export function packRows(series: ReadonlyArray<{ id: string; rows: Float32Array }>): PackedRows {
  const ids = new Array<string>(series.length);
  const ends = new Uint32Array(series.length);
  let total = 0;
  series.forEach((s, i) => {
    ids[i] = s.id;
    ends[i] = total += s.rows.length;
  });
  const rows = new Float32Array(total);
  series.forEach((s, i) => rows.set(s.rows, i > 0 ? ends[i - 1]! : 0));
  return { ids, ends, rows };
}
