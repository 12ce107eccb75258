import type { io } from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { SeriesHistory } from './history.js';
import {
  buildModel,
  compile,
  computeNormaliser,
  LstmInference,
  outIndex,
  readWeights,
  specKey,
  writeWindow,
  type LstmSpec,
  type Normaliser,
} from './model.js';
import { KERNEL_BATCH, LstmKernel } from './kernel.js';
import type { Tf } from './tf.js';
import { mulberry32 } from '../random.js';

/** The forward pass of one model's weights: the WebAssembly kernel where it runs, and JS. */
interface Forward {
  kernel: LstmKernel | undefined;
  js: LstmInference;
}

function forward(
  weights: ReturnType<typeof readWeights>,
  spec: LstmSpec,
  useKernel: boolean,
): Forward {
  return {
    kernel: useKernel ? LstmKernel.create(spec, weights) : undefined,
    js: new LstmInference(weights, spec),
  };
}

export interface EngineOptions {
  /** Rows of history kept per series at most; older rows are dropped. */
  maxRows: number;
  /**
   * Rows kept for all series together (the training set's memory): each series keeps an even
   * share, at most maxRows and at least 2 × (window + horizon). Unbounded when undefined.
   */
  maxTotalRows?: number;
  /** Most windows one fit trains on (the newest half, plus a random half of the older ones). */
  maxTrainWindows: number;
  batchSize: number;
  /** Called between training batches so the thread can answer other requests. */
  yieldEvery?: () => Promise<void>;
  /**
   * Whether inference uses the WebAssembly SIMD kernel where it can run (default true); false:
   * the plain-JS forward pass, about 5 times slower (tests compare the two).
   */
  kernel?: boolean;
}

export interface FitResult {
  loss: number;
  windows: number;
  epochs: number;
  ms: number;
}

/** What `export()` returns and `import()` accepts: JSON-serialisable. */
export interface SavedLstm {
  format: 'augur-lstm';
  version: 2;
  specKey: string;
  spec: LstmSpec;
  fits: number;
  modelTopology: unknown;
  weightSpecs: io.WeightsManifestEntry[];
  /** base64 of the concatenated float32 weights. */
  weights: string;
  series: Record<string, { norm: Normaliser; rows: number; data: string }>;
}

const toBase64 = (a: Float32Array): string =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
function fromBase64(s: string): Float32Array {
  const b = Buffer.from(s, 'base64');
  const out = new Float32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

/**
 * Rows each of `series` series keeps: maxRows, or an even share of maxTotalRows where that is
 * less, but at least 2 × (window + horizon) so that every series still offers windows to train on.
 */
export function rowShare(
  options: Pick<EngineOptions, 'maxRows' | 'maxTotalRows'>,
  spec: Pick<LstmSpec, 'window' | 'horizon'>,
  series: number,
): number {
  const { maxRows, maxTotalRows } = options;
  if (maxTotalRows === undefined) return maxRows;
  const floor = 2 * (spec.window + spec.horizon);
  return Math.min(maxRows, Math.max(floor, Math.floor(maxTotalRows / Math.max(1, series))));
}

/**
 * The LSTM's state and work: per-series history and normalisers, one shared
 * model, fitting and batched inference. Runs wherever it is constructed (the
 * worker in production; tests may use it directly). Not thread-safe by design:
 * one owner, requests handled one at a time, except that a fit yields between
 * batches so inference requests are answered during training.
 */
export class LstmEngine {
  readonly spec: LstmSpec;
  private readonly tf: Tf;
  private readonly options: EngineOptions;
  private model: LayersModel;
  /**
   * Inference over a copy of the model's weights, taken when a fit ends (and at start and on
   * restore): forecasts asked during a fit come from the last finished model, not a half-trained
   * one.
   */
  private inference: Forward;
  private history: SeriesHistory;
  private fits = 0;
  private readonly random: () => number;

  constructor(tf: Tf, spec: LstmSpec, options: EngineOptions) {
    this.tf = tf;
    this.spec = spec;
    this.options = options;
    this.model = buildModel(tf, spec);
    this.inference = forward(readWeights(this.model, spec), spec, options.kernel ?? true);
    this.random = mulberry32(spec.seed);
    this.history = this.emptyHistory();
  }

  private emptyHistory(): SeriesHistory {
    const { spec, options } = this;
    return new SeriesHistory(
      spec.features,
      spec.targets,
      (n) => rowShare(options, spec, n),
      options.maxTotalRows,
    );
  }

  get fitted(): boolean {
    return this.fits > 0;
  }

  get fitCount(): number {
    return this.fits;
  }

  seriesCount(): number {
    return this.history.count;
  }

  /**
   * Rows a series keeps now: maxRows, or its even share of maxTotalRows where that is less (at
   * least 2 × (window + horizon), so every series still offers windows to train on).
   */
  rowCap(): number {
    return rowShare(this.options, this.spec, this.history.count);
  }

  /** Appends rows (n × features, row-major) to a series' history: `appendMany` of one series. */
  append(id: string, batch: Float32Array): void {
    this.appendMany([id], [batch.length], batch);
  }

  /**
   * Appends rows to many series: series `ids[i]` gets `rows` from `ends[i - 1]` (0 for the
   * first) to `ends[i]` (floats; n × features, row-major, oldest first), and keeps its newest
   * rowCap() rows. Series not held yet are added first, all together, so the history is laid
   * out again at most once (every series' share shrinks when series arrive, and is cut here).
   */
  appendMany(ids: readonly string[], ends: ArrayLike<number>, rows: Float32Array): void {
    const h = this.history;
    h.add(ids);
    for (let i = 0; i < ids.length; i++)
      h.append(h.slotOf(ids[i]!)!, rows.subarray(i > 0 ? ends[i - 1]! : 0, ends[i]!));
  }

  /** Drops the series of `ids`; the others' share grows at once. */
  forget(ids: readonly string[]): void {
    this.history.remove(ids);
  }

  rowsOf(id: string): number {
    const slot = this.history.slotOf(id);
    return slot === undefined ? 0 : this.history.rows[slot]!;
  }

  /** Bytes the series' history holds: one buffer, its rows and room for more series. */
  historyBytes(): number {
    return this.history.bytes;
  }

  /** Recomputes every series' normaliser from its history (done at each fit). */
  private refreshNormalisers(): void {
    const h = this.history;
    for (const [, slot] of h.entries())
      computeNormaliser(h.data, h.base(slot), h.rows[slot]!, this.spec, h.norms, h.normAt(slot));
  }

  /**
   * Forecasts for each (series, end row): out[(i * targets + j) * H * 2 + (h-1) * 2 + k]
   * in the series' own units; NaN where the series has too little history.
   * A series without a normaliser gets one from its rows up to that end row, so
   * nothing after the window is used.
   */
  async predict(items: ReadonlyArray<{ id: string; end?: number }>): Promise<Float32Array> {
    return this.predictIds(
      items.map((it) => it.id),
      items.some((it) => it.end !== undefined)
        ? Float64Array.from(items, (it) => it.end ?? NaN)
        : undefined,
    );
  }

  /**
   * `predict` of series `ids`, each from its row `ends[i]` (NaN or no `ends`: its newest): what
   * the worker's message carries, strings and numbers rather than an object per series (a
   * structured clone of 20,000 objects cost about 0.5 µs each, of strings 0.08). Written into
   * `into` where it has room (a view of its start), into a new array otherwise.
   */
  async predictIds(
    ids: readonly string[],
    ends?: Float64Array,
    into?: Float32Array,
  ): Promise<Float32Array> {
    const { window: W, features: F, targets: T, horizon: H } = this.spec;
    const per = T * H * 2;
    const size = ids.length * per;
    const out = (
      into && into.length >= size ? into.subarray(0, size) : new Float32Array(size)
    ).fill(NaN);
    const h = this.history;
    // The items that can be forecast: their index in `ids`, slot and end row.
    const items: number[] = [];
    const slots: number[] = [];
    const endRows: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const slot = h.slotOf(ids[i]!);
      if (slot === undefined) continue;
      const held = h.rows[slot]!;
      const e = ends?.[i];
      const end = e === undefined || Number.isNaN(e) ? held - 1 : e;
      if (end < W - 1 || end >= held) continue;
      items.push(i);
      slots.push(slot);
      endRows.push(end);
    }
    if (items.length === 0) return out;
    // The model's forward pass outside TensorFlow.js: batches of windows through the WebAssembly
    // kernel, or one window at a time in plain JS (LstmInference) where it cannot run. Outputs
    // are relative to each window's anchors (centre) and scaled by the series' scale.
    const centre = new Float64Array(KERNEL_BATCH * T);
    const { data, norms } = h;
    const emit = (k: number, c: number, raw: Float32Array, r: number): void => {
      const i = items[k]!;
      const scaleAt = h.normAt(slots[k]!) + T;
      for (let j = 0; j < T; j++) {
        const last = centre[c + j]!;
        const sd = norms[scaleAt + j]!;
        for (let hz = 1; hz <= H; hz++) {
          const med = last + sd * raw[r + outIndex(this.spec, j, hz, 0)]!;
          const up = last + sd * raw[r + outIndex(this.spec, j, hz, 1)]!;
          out[i * per + outIndex(this.spec, j, hz, 0)] = med;
          out[i * per + outIndex(this.spec, j, hz, 1)] = Math.max(med, up);
        }
      }
    };
    /** Writes item k's window; a series without a normaliser gets one from its rows to the end row. */
    const windowOf = (k: number, x: Float32Array, offset: number, c: number): void => {
      const slot = slots[k]!;
      const end = endRows[k]!;
      const at = h.normAt(slot);
      if (!h.hasNorm(slot)) computeNormaliser(data, h.base(slot), end + 1, this.spec, norms, at);
      writeWindow(data, h.base(slot), end, norms, at + T, this.spec, x, offset, centre, c);
    };
    const { kernel, js } = this.inference;
    if (kernel) {
      for (let from = 0; from < items.length; from += KERNEL_BATCH) {
        const n = Math.min(KERNEL_BATCH, items.length - from);
        for (let b = 0; b < n; b++) windowOf(from + b, kernel.input, b * W * F, b * T);
        kernel.run(n);
        for (let b = 0; b < n; b++) emit(from + b, b * T, kernel.output, b * kernel.stride);
      }
      return out;
    }
    const x = new Float32Array(W * F);
    const raw = new Float32Array(per);
    for (let k = 0; k < items.length; k++) {
      windowOf(k, x, 0, 0);
      js.run(x, 0, raw, 0);
      emit(k, 0, raw, 0);
    }
    return out;
  }

  /** Training windows (end rows) per series: every end with a full window and all H targets known. */
  private sampleWindows(): Array<[number, number]> {
    const { window: W, horizon: H } = this.spec;
    const held = this.history.rows;
    const list = Array.from(this.history.entries(), ([, slot]) => slot);
    // Windows of a series: every end row with a full window and all H targets known.
    const counts = list.map((s) => Math.max(0, held[s]! - H - (W - 1)));
    const total = counts.reduce((a, b) => a + b, 0);
    const max = this.options.maxTrainWindows;
    if (total <= max) {
      const all: Array<[number, number]> = [];
      list.forEach((s, i) => {
        for (let k = 0; k < counts[i]!; k++) all.push([s, W - 1 + k]);
      });
      return all;
    }
    // Half the budget for the newest windows of each series (what the model must
    // track now), half drawn at random from everything (what it must not forget);
    // never materialising every window, which at 10,000 endpoints would be millions.
    const half = Math.floor(max / 2);
    const perSeries = Math.max(1, Math.ceil(half / list.length));
    const recent: Array<[number, number]> = [];
    list.forEach((s, i) => {
      for (let k = 0; k < Math.min(perSeries, counts[i]!); k++)
        recent.push([s, held[s]! - H - 1 - k]);
    });
    const chosen = this.pick(recent, half);
    const prefix = new Float64Array(list.length);
    let acc = 0;
    counts.forEach((c, i) => (prefix[i] = acc += c));
    while (chosen.length < max) {
      const r = Math.floor(this.random() * total);
      let lo = 0;
      let hi = list.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (prefix[mid]! > r) hi = mid;
        else lo = mid + 1;
      }
      const before = lo > 0 ? prefix[lo - 1]! : 0;
      chosen.push([list[lo]!, W - 1 + (r - before)]);
    }
    return chosen;
  }

  /** `k` distinct items drawn at random (partial Fisher-Yates); all of them if fewer. */
  private pick<T>(items: T[], k: number): T[] {
    if (items.length <= k) return items;
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(this.random() * (items.length - i));
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items.slice(0, k);
  }

  /**
   * Fits the shared model on windows of every series' history (refreshing the
   * normalisers first); `reset` starts from fresh weights (a retrain on drift).
   */
  async fit(epochs: number, reset = false): Promise<FitResult> {
    const started = Date.now();
    const tf = this.tf;
    if (reset) {
      this.model.dispose();
      this.model = buildModel(tf, this.spec);
    }
    this.refreshNormalisers();
    const windows = this.sampleWindows();
    const { window: W, features: F, targets: T, horizon: H } = this.spec;
    const per = T * H * 2;
    const n = windows.length;
    if (n === 0) return { loss: NaN, windows: 0, epochs: 0, ms: Date.now() - started };
    const x = new Float32Array(n * W * F);
    const y = new Float32Array(n * per);
    const centre = new Float64Array(T);
    const { data, norms } = this.history;
    windows.forEach(([slot, end], k) => {
      const base = this.history.base(slot);
      const scaleAt = this.history.normAt(slot) + T;
      writeWindow(data, base, end, norms, scaleAt, this.spec, x, k * W * F, centre);
      for (let j = 0; j < T; j++) {
        const last = centre[j]!;
        for (let h = 1; h <= H; h++) {
          const v = data[base + (end + h) * F + j]!;
          const d = (v - last) / norms[scaleAt + j]!;
          const target = Number.isFinite(d) ? d : 0;
          y[k * per + outIndex(this.spec, j, h, 0)] = target;
          y[k * per + outIndex(this.spec, j, h, 1)] = target;
        }
      }
    });
    const xs = tf.tensor3d(x, [n, W, F]);
    const ys = tf.tensor2d(y, [n, per]);
    const order = Array.from({ length: n }, (_, i) => i);
    let loss = NaN;
    for (let e = 0; e < epochs; e++) {
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(this.random() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      let sum = 0;
      let batches = 0;
      for (let b = 0; b < n; b += this.options.batchSize) {
        const idx = tf.tensor1d(order.slice(b, b + this.options.batchSize), 'int32');
        const xb = tf.gather(xs, idx);
        const yb = tf.gather(ys, idx);
        const l = await this.model.trainOnBatch(xb, yb);
        sum += Array.isArray(l) ? l[0]! : l;
        batches++;
        tf.dispose([idx, xb, yb]);
        if (this.options.yieldEvery) await this.options.yieldEvery();
      }
      loss = sum / batches;
    }
    tf.dispose([xs, ys]);
    this.inference = forward(
      readWeights(this.model, this.spec),
      this.spec,
      this.options.kernel ?? true,
    );
    this.fits++;
    return { loss, windows: n, epochs, ms: Date.now() - started };
  }

  /** The model and each series' normaliser and last window, for `--data-dir`. */
  async export(): Promise<SavedLstm> {
    const tf = this.tf;
    let artifacts: io.ModelArtifacts | undefined;
    await this.model.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const wd = artifacts!.weightData!;
    const buffers = Array.isArray(wd) ? wd : [wd];
    const total = buffers.reduce((a, b) => a + b.byteLength, 0);
    const bytes = new Uint8Array(total);
    let off = 0;
    for (const b of buffers) {
      bytes.set(new Uint8Array(b), off);
      off += b.byteLength;
    }
    const series: SavedLstm['series'] = {};
    const { features: F, targets: T } = this.spec;
    const h = this.history;
    for (const [id, slot] of h.entries()) {
      if (!h.hasNorm(slot)) continue;
      const held = h.rows[slot]!;
      const keep = Math.min(held, this.spec.window + this.spec.horizon);
      const at = h.normAt(slot);
      const base = h.base(slot);
      series[id] = {
        norm: {
          mean: Array.from(h.norms.subarray(at, at + T)),
          std: Array.from(h.norms.subarray(at + T, at + 2 * T)),
        },
        rows: keep,
        data: toBase64(h.data.slice(base + (held - keep) * F, base + held * F)),
      };
    }
    return {
      format: 'augur-lstm',
      version: 2,
      specKey: specKey(this.spec),
      spec: this.spec,
      fits: this.fits,
      modelTopology: artifacts!.modelTopology,
      weightSpecs: artifacts!.weightSpecs!,
      weights: Buffer.from(bytes).toString('base64'),
      series,
    };
  }

  /**
   * Restores a saved state. Throws (and leaves the engine as it was) when the
   * state is not ours, is for another model shape, or does not load.
   */
  async import(saved: unknown): Promise<void> {
    const s = saved as Partial<SavedLstm> | null;
    if (!s || s.format !== 'augur-lstm' || s.version !== 2)
      throw new Error('not an augur LSTM state (format/version)');
    if (s.specKey !== specKey(this.spec))
      throw new Error(
        `saved model is for ${s.specKey}, this configuration needs ${specKey(this.spec)}`,
      );
    const tf = this.tf;
    const bytes = Buffer.from(s.weights ?? '', 'base64');
    const weightData = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const model = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: s.modelTopology as object,
        weightSpecs: s.weightSpecs,
        weightData,
      }),
    );
    compile(tf, model, this.spec);
    const { features: F, targets: T } = this.spec;
    const entries = Object.entries(s.series ?? {});
    const history = this.emptyHistory();
    history.add(entries.map(([id]) => id));
    for (const [id, v] of entries) {
      const data = fromBase64(v.data);
      if (data.length !== v.rows * F || v.norm.std.length !== T || v.norm.mean.length !== T)
        throw new Error(`saved series ${id} has the wrong shape`);
      const slot = history.slotOf(id)!;
      history.append(slot, data);
      history.norms.set(v.norm.mean, history.normAt(slot));
      history.norms.set(v.norm.std, history.normAt(slot) + T);
    }
    const inference = forward(
      readWeights(model, this.spec),
      this.spec,
      this.options.kernel ?? true,
    );
    this.model.dispose();
    this.model = model;
    this.inference = inference;
    this.history = history;
    this.fits = s.fits ?? 1;
  }
}
