import type { Rng } from '../rng.js';
import type { FleetView, IntervalReport, RoutingPolicy } from '../types.js';
import type { Picker } from './pickers.js';
import type { WeightSource } from './weights.js';

/**
 * A control plane's weights (a WeightSource) fed to the proxies' picker, as EDS
 * weights reach Envoy: the weights change once per interval, the picker runs
 * per request.
 */
export class WeightedPolicy implements RoutingPolicy {
  private weights: Float64Array = new Float64Array(0);
  private picker: Picker | undefined;

  constructor(
    readonly name: string,
    private readonly source: WeightSource,
    private readonly makePicker: (view: FleetView, rng: Rng) => Picker,
  ) {}

  init(view: FleetView, rng: Rng): void {
    this.weights = new Float64Array(view.endpoints).fill(1);
    this.source.init(view);
    this.picker = this.makePicker(view, rng);
  }

  async onInterval(step: number, report: IntervalReport | undefined): Promise<void> {
    const w = sanitise(await this.source.update(step, report));
    // An unchanged assignment is not pushed again: the picker keeps its state (Envoy's schedule).
    if (!sameValues(w, this.weights)) this.weights = w;
  }

  pick(proxy: number): number {
    return this.picker!.pick(proxy, this.weights);
  }

  shares(): Float64Array {
    let total = 0;
    for (const w of this.weights) total += w;
    return this.weights.map((w) => w / total);
  }

  capacities(): Float64Array | undefined {
    return this.source.capacities?.();
  }
}

/** Unweighted policies (round robin, P2C): a picker and no control plane. */
export class UnweightedPolicy implements RoutingPolicy {
  private picker: Picker | undefined;
  private ones = new Float64Array(0);
  constructor(
    readonly name: string,
    private readonly makePicker: (view: FleetView, rng: Rng) => Picker,
  ) {}
  init(view: FleetView, rng: Rng): void {
    this.ones = new Float64Array(view.endpoints).fill(1);
    this.picker = this.makePicker(view, rng);
  }
  onInterval(): void {}
  pick(proxy: number): number {
    return this.picker!.pick(proxy, this.ones);
  }
}

function sameValues(a: Float64Array, b: Float64Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Negative, NaN or infinite weights become 0; all-zero weights become equal. */
function sanitise(w: Float64Array): Float64Array {
  const out = w.map((x) => (Number.isFinite(x) && x > 0 ? x : 0));
  return out.some((x) => x > 0) ? out : out.fill(1);
}
