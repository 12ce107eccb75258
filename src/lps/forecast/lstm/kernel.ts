import { LSTM_KERNEL_WASM } from './kernel-wasm.js';
import { TANH_RANGE, TANH_STEPS, type LstmSpec, type LstmWeights } from './model.js';

/*
 * The LSTM's forward pass over batches of windows in WebAssembly with 128-bit SIMD (kernel.wat):
 * what LstmInference computes, four gates per instruction and in float32 (as TensorFlow.js does),
 * without a call per window. Used by the engine for inference where WebAssembly SIMD is available
 * (Node 16.4 and later); LstmInference, in plain JavaScript, is the fallback and the reference.
 */

interface KernelExports {
  memory: WebAssembly.Memory;
  layout(...offsets: number[]): void;
  run(n: number, x: number, out: number): void;
}

let compiled: WebAssembly.Module | null | undefined;

/** The compiled kernel, or null where this runtime cannot compile it (no SIMD). */
function kernelModule(): WebAssembly.Module | null {
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(Buffer.from(LSTM_KERNEL_WASM, 'base64'));
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

/** Whether the WebAssembly kernel can run here. */
export function kernelAvailable(): boolean {
  return kernelModule() !== null;
}

/** Windows per `run`: the input and output buffers hold this many. */
export const KERNEL_BATCH = 256;

export class LstmKernel {
  /** Write up to KERNEL_BATCH windows here (window × features each, row-major), then `run`. */
  readonly input: Float32Array;
  /** The outputs of window i at `i * stride` (the first targets × horizon × 2 of each are used). */
  readonly output: Float32Array;
  /** Floats per window in `output`: the outputs, padded to a multiple of 4. */
  readonly stride: number;
  private readonly exports: KernelExports;
  private readonly x: number;
  private readonly out: number;

  private constructor(module: WebAssembly.Module, spec: LstmSpec, weights: LstmWeights) {
    const { window: W, features: F, units: U } = spec;
    const G = 4 * U;
    const O = spec.targets * spec.horizon * 2;
    const P = Math.ceil(O / 4) * 4;
    const table = 2 * TANH_RANGE * TANH_STEPS + 2;
    let end = 0;
    const take = (bytes: number): number => {
      const at = end;
      end += Math.ceil(bytes / 16) * 16;
      return at;
    };
    const k = take(F * G * 4);
    const r = take(U * G * 4);
    const b = take(G * 4);
    const d = take(U * P * 4);
    const db = take(P * 4);
    const h = take(U * 4);
    const c = take(U * 4);
    const z = take(G * 4);
    const tab = take(table * 16);
    const x = take(KERNEL_BATCH * W * F * 4);
    const out = take(KERNEL_BATCH * P * 4);
    const instance = new WebAssembly.Instance(module, {});
    const exports = instance.exports as unknown as KernelExports;
    const pages = Math.ceil(end / 65536) - exports.memory.buffer.byteLength / 65536;
    if (pages > 0) exports.memory.grow(pages);
    const memory = exports.memory.buffer;
    new Float32Array(memory, k, F * G).set(weights.kernel);
    new Float32Array(memory, r, U * G).set(weights.recurrent);
    new Float32Array(memory, b, G).set(weights.bias);
    const dense = new Float32Array(memory, d, U * P);
    for (let u = 0; u < U; u++) dense.set(weights.dense.subarray(u * O, (u + 1) * O), u * P);
    new Float32Array(memory, db, P).set(weights.denseBias);
    const tanh = new Float64Array(memory, tab, 2 * table);
    for (let i = 0; i < table; i++) {
      const y = Math.tanh(-TANH_RANGE + i / TANH_STEPS);
      tanh[2 * i] = y;
      tanh[2 * i + 1] = (1 - y * y) / TANH_STEPS;
    }
    exports.layout(W, F, U, P, k, r, b, d, db, h, c, z, tab);
    this.exports = exports;
    this.x = x;
    this.out = out;
    this.stride = P;
    this.input = new Float32Array(memory, x, KERNEL_BATCH * W * F);
    this.output = new Float32Array(memory, out, KERNEL_BATCH * P);
  }

  /**
   * A kernel with `weights`, or undefined where it cannot run: no WebAssembly SIMD here, or a
   * model whose units are not a multiple of 4 (the kernel takes sixteen gates per pass).
   */
  static create(spec: LstmSpec, weights: LstmWeights): LstmKernel | undefined {
    const module = kernelModule();
    return module && spec.units % 4 === 0 ? new LstmKernel(module, spec, weights) : undefined;
  }

  /** Runs the first `n` windows of `input` (n ≤ KERNEL_BATCH) into `output`. */
  run(n: number): void {
    if (n > KERNEL_BATCH) throw new RangeError(`${n} windows: a run takes ${KERNEL_BATCH} at most`);
    this.exports.run(n, this.x, this.out);
  }
}
