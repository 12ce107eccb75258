import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export type Tf = typeof import('@tensorflow/tfjs');

export interface LoadedTf {
  tf: Tf;
  /** "tensorflow" (tfjs-node, native), "wasm", or "cpu" (plain JS, slowest). */
  backend: string;
}

let loaded: Promise<LoadedTf> | undefined;

/**
 * TensorFlow.js for this thread: the native binding (@tensorflow/tfjs-node) when
 * it is installed, otherwise the pure tfjs API on the WebAssembly backend (single
 * threaded, SIMD where Node has it), otherwise the JS CPU backend. Called inside
 * the LSTM worker, so whichever it is, it never runs on the serving thread.
 */
export function loadTf(): Promise<LoadedTf> {
  loaded ??= (async () => {
    try {
      // A variable, so TypeScript does not require the optional package at build time.
      const nodeName = '@tensorflow/tfjs-node';
      const tf = (await import(nodeName)) as Tf;
      await tf.ready();
      return { tf, backend: tf.getBackend() };
    } catch {
      // Not installed here (it needs a native build): fall through to wasm.
    }
    const tf = await import('@tensorflow/tfjs');
    try {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      // The .wasm files sit beside the package's main file; a plain path works in Node.
      const require = createRequire(import.meta.url);
      const dist = dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
      wasm.setWasmPaths(join(dist, '/'));
      wasm.setThreadsCount(1);
      if (await tf.setBackend('wasm')) {
        await tf.ready();
        return { tf, backend: 'wasm' };
      }
    } catch {
      // The wasm backend failed to load; the CPU backend still works, slowly.
    }
    await tf.setBackend('cpu');
    await tf.ready();
    return { tf, backend: 'cpu' };
  })();
  return loaded;
}
