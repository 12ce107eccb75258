import type { EngineOptions, FitResult, SavedLstm } from './engine.js';
import type { LstmSpec } from './model.js';

/** Messages from the main thread to the LSTM worker; each `id` gets one reply. */
export type WorkerRequest =
  | {
      id: number;
      op: 'init';
      spec: LstmSpec;
      engine: Omit<EngineOptions, 'yieldEvery'>;
      /** Nice value for the worker thread (Linux), 0..19. */
      niceness: number;
    }
  /**
   * Rows for many series in one buffer: series `ids[i]` gets `rows` from `ends[i - 1]` (0 for
   * the first) to `ends[i]`, in floats (anything past the last end is unused). One transfer, not
   * one per series.
   */
  | { id: number; op: 'append'; ids: string[]; ends: Uint32Array; rows: Float32Array }
  | { id: number; op: 'forget'; ids: string[] }
  /** Forecasts of series `ids`, each from its row `ends[i]` (NaN, or no `ends`: its newest). */
  | { id: number; op: 'predict'; ids: string[]; ends?: Float64Array; into?: Float32Array }
  | { id: number; op: 'fit'; epochs: number; reset: boolean }
  | { id: number; op: 'export' }
  | { id: number; op: 'import'; state: unknown };

export interface ResultOf {
  /** `tid`: the worker's thread id in the OS (Linux), for per-thread CPU accounting. */
  init: { backend: string; tid?: number };
  append: null;
  forget: null;
  predict: Float32Array;
  fit: FitResult;
  export: SavedLstm;
  import: null;
}

export type WorkerReply =
  | { id: number; ok: true; result: ResultOf[keyof ResultOf] }
  | { id: number; ok: false; error: string };
