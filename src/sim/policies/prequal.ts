import type { Rng } from '../rng.js';
import type { FleetView, IntervalReport, RoutingPolicy } from '../types.js';
import { drawWeighted } from './pickers.js';
import type { WeightSource } from './weights.js';

/** Parameters of the Prequal-style policy; defaults in PREQUAL_DEFAULTS. */
export interface PrequalOptions {
  /** Probes sent per request. */
  probesPerRequest: number;
  /** Most probes a proxy keeps. */
  poolSize: number;
  /** A probe is used for at most this many picks. */
  maxReuse: number;
  /** A probe older than this many service times is dropped. */
  maxAgeServiceTimes: number;
  /** Quantile of recent probes' requests-in-flight above which a probe is hot. */
  hotQuantile: number;
  /** Probe answers each proxy remembers to estimate that quantile. */
  rifHistory: number;
}

export const PREQUAL_DEFAULTS: PrequalOptions = {
  probesPerRequest: 2,
  poolSize: 16,
  maxReuse: 2,
  maxAgeServiceTimes: 20,
  hotQuantile: 0.8,
  rifHistory: 64,
};

interface Probe {
  endpoint: number;
  rif: number;
  latency: number;
  time: number;
  uses: number;
}

/**
 * Prequal-style routing (Wydrowski et al., NSDI'24), built on instant signals:
 * each request triggers probes of random endpoints that answer with their
 * requests in flight (RIF, from every proxy) and their recent latency; each
 * proxy keeps a small pool of recent probes and picks by the hot-cold
 * lexicographic rule: a probe is hot if its RIF is above the `hotQuantile` of
 * the RIFs recent probes answered; if every probe is hot take the lowest RIF, else the cold one
 * with the lowest latency. A used probe counts the request it just sent.
 *
 * Simplification, in Prequal's favour: probes answer instantly (no probe
 * round trip), so the pool is fresher than in a real deployment.
 *
 * With a WeightSource, the endpoints to probe are drawn in proportion to its
 * weights instead of uniformly: the blend of a forecast (where capacity will
 * be) with the instant signals (where the queues are now).
 */
export class PrequalPolicy implements RoutingPolicy {
  readonly name: string;
  private readonly opts: PrequalOptions;
  private view: FleetView | undefined;
  private rng: Rng | undefined;
  private pools: Probe[][] = [];
  private history: Float64Array[] = [];
  private historyCount = new Int32Array(0);
  private thresholds = new Float64Array(0);

  private weights: Float64Array | undefined;

  constructor(
    name = 'prequal',
    opts: Partial<PrequalOptions> = {},
    private readonly source?: WeightSource,
  ) {
    this.name = name;
    this.opts = { ...PREQUAL_DEFAULTS, ...opts };
  }

  init(view: FleetView, rng: Rng): void {
    this.view = view;
    this.rng = rng;
    this.pools = Array.from({ length: view.proxies }, () => []);
    this.history = Array.from(
      { length: view.proxies },
      () => new Float64Array(this.opts.rifHistory),
    );
    this.historyCount = new Int32Array(view.proxies);
    this.thresholds = new Float64Array(view.proxies);
    this.source?.init(view);
  }

  async onInterval(step: number, report: IntervalReport | undefined): Promise<void> {
    if (!this.source) return;
    const w = await this.source.update(step, report);
    const ok = w.map((x) => (Number.isFinite(x) && x > 0 ? x : 0));
    this.weights = ok.some((x) => x > 0) ? ok : undefined;
  }

  shares(): Float64Array | undefined {
    if (!this.weights) return undefined;
    const total = this.weights.reduce((a, x) => a + x, 0);
    return this.weights.map((x) => x / total);
  }

  pick(proxy: number): number {
    const view = this.view!;
    const rng = this.rng!;
    const now = view.now();
    const pool = this.pools[proxy];
    const maxAge = this.opts.maxAgeServiceTimes * view.serviceTime;
    for (let i = pool.length - 1; i >= 0; i--) if (now - pool[i].time > maxAge) pool.splice(i, 1);
    for (let i = 0; i < this.opts.probesPerRequest; i++) {
      const e = this.weights ? drawWeighted(rng, this.weights) : rng.int(view.endpoints);
      if (pool.length >= this.opts.poolSize) pool.shift(); // oldest first out
      const rif = view.serverInflight(e);
      pool.push({ endpoint: e, rif, latency: view.latencyEstimate(e), time: now, uses: 0 });
      this.history[proxy][this.historyCount[proxy]++ % this.opts.rifHistory] = rif;
    }
    const count = this.historyCount[proxy];
    // the quantile moves slowly: recompute it every few picks, not every pick
    if (count <= this.opts.rifHistory || count % 8 < this.opts.probesPerRequest) {
      const n = Math.min(count, this.opts.rifHistory);
      const recent = this.history[proxy].slice(0, n).sort();
      this.thresholds[proxy] =
        recent[Math.min(n - 1, Math.max(0, Math.ceil(this.opts.hotQuantile * n) - 1))];
    }
    const chosen = pool[hotColdIndex(pool, this.thresholds[proxy])];
    chosen.rif++;
    chosen.uses++;
    if (chosen.uses >= this.opts.maxReuse) pool.splice(pool.indexOf(chosen), 1);
    return chosen.endpoint;
  }
}

/**
 * The hot-cold lexicographic rule over a non-empty pool: a probe whose RIF is
 * above `hotThreshold` is hot; the index of the cold probe with the lowest
 * latency, or of the lowest-RIF probe if all are hot.
 */
export function hotColdIndex(
  pool: readonly { rif: number; latency: number }[],
  hotThreshold: number,
): number {
  let bestCold = -1;
  let bestRif = 0;
  for (let i = 0; i < pool.length; i++) {
    const p = pool[i];
    if (p.rif <= hotThreshold && (bestCold < 0 || p.latency < pool[bestCold].latency)) bestCold = i;
    if (p.rif < pool[bestRif].rif) bestRif = i;
  }
  return bestCold >= 0 ? bestCold : bestRif;
}
