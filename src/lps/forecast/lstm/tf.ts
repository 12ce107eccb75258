import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * What the LSTM uses of TensorFlow.js: the core API (tensors, ops, optimisers, io, backends)
 * and the layers API's model building and loading. The umbrella `@tensorflow/tfjs` would also
 * load the converter, the data API and the CPU and WebGL backends, for nothing the LSTM runs:
 * measured in a worker with the wasm backend ready, its V8 heap 41.0 MB (29.3 MB used) with
 * the umbrella against 28.6 MB (21.4 MB used) with these two.
 *
 * What the umbrella did besides: it registered every op's gradient and the tensors' chaining
 * methods (`tensor.flatten()`). tfjs-layers registers the gradients itself (the same 101 kernels
 * have one either way, counted with `getGradient` over tfjs-core's kernel names); the chaining
 * methods are not registered here, and the only tfjs-layers code that calls one is the
 * orthogonal initializer, which the model does not use (model.ts names its initializers).
 */
export type Tf = typeof import('@tensorflow/tfjs-core') &
  Pick<
    typeof import('@tensorflow/tfjs-layers'),
    'layers' | 'initializers' | 'sequential' | 'loadLayersModel'
  >;

export interface LoadedTf {
  tf: Tf;
  /** "tensorflow" (tfjs-node, native), "wasm", or "cpu" (plain JS, slowest). */
  backend: string;
}

let loaded: Promise<LoadedTf> | undefined;

/**
 * TensorFlow.js for this thread: the native binding (@tensorflow/tfjs-node) when
 * it is installed, otherwise tfjs-core and tfjs-layers on the WebAssembly backend (single
 * threaded, SIMD where Node has it), otherwise the JS CPU backend, loaded only then. Called
 * inside the LSTM worker, so whichever it is, it never runs on the serving thread.
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
    const core = await import('@tensorflow/tfjs-core');
    const { layers, initializers, sequential, loadLayersModel } =
      await import('@tensorflow/tfjs-layers');
    const tf: Tf = { ...core, layers, initializers, sequential, loadLayersModel };
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
    await import('@tensorflow/tfjs-backend-cpu');
    await tf.setBackend('cpu');
    await tf.ready();
    return { tf, backend: 'cpu' };
  })();
  return loaded;
}
