import type { ExpectedDelayChooser } from '../../common/expected-delay.js';
import {
  augurChooser,
  EndpointBook,
  WeightedCandidates,
  xdsWeights,
  type EndpointStats,
} from '../../grpc-lb/state.js';
import { weightOf } from '../../xds/resources.js';
import type { Rng } from '../rng.js';
import type { FleetView, IntervalReport, RoutingPolicy } from '../types.js';
import type { WeightSource } from './weights.js';

/** `xds.weightScale`'s default: a share w is published as the weight max(1, round(w × scale)). */
const WEIGHT_SCALE = 10_000;

/** One gRPC client's `augur_expected_delay` policy: its own book and its current candidates. */
interface Client {
  book: EndpointBook;
  stats: EndpointStats[];
  candidates: WeightedCandidates<number>;
  chooser: ExpectedDelayChooser;
}

/**
 * `augur-grpc`: proxyless gRPC clients (each proxy of the simulator is one client channel) with
 * `registerAugurBalancer()` called, reading augur's xDS. It runs the shipped policy's code
 * (src/grpc-lb/state.ts, the rule in src/common/expected-delay.ts): each interval the weights are
 * published as xDS integer locality weights (one locality per endpoint) and read back as the
 * client reads them (xdsWeights, then floored as the rule uses them); each call is picked by the
 * shared chooser with the client's own calls in flight and latencies (its EndpointBook), counted
 * in flight at the pick and ended with its latency (a refusal as a failure), as the policy's
 * call tracking does. What differs from grpc-js: a call always starts once picked (the settling
 * of unstarted picks has nothing to do), and every endpoint is READY.
 */
export class AugurGrpcPolicy implements RoutingPolicy {
  readonly name: string;
  private readonly source: WeightSource;
  private weights: Float64Array = new Float64Array(0);
  private clients: Client[] = [];

  constructor(name: string, source: WeightSource) {
    this.name = name;
    this.source = source;
  }

  init(view: FleetView, rng: Rng): void {
    this.source.init(view);
    this.weights = new Float64Array(view.endpoints).fill(1);
    const random = () => rng.next();
    this.clients = Array.from({ length: view.proxies }, () => {
      const book = new EndpointBook();
      const stats = Array.from({ length: view.endpoints }, (_, e) => book.of(String(e)));
      return {
        book,
        stats,
        candidates: this.candidatesOf(stats),
        chooser: augurChooser({ random }),
      };
    });
  }

  async onInterval(step: number, report: IntervalReport | undefined): Promise<void> {
    const w = await this.source.update(step, report);
    this.weights = w.map((x) => (Number.isFinite(x) && x > 0 ? x : 0));
    for (const c of this.clients) c.candidates = this.candidatesOf(c.stats);
  }

  pick(proxy: number): number {
    const c = this.clients[proxy]!;
    const i = c.chooser.pick(c.candidates);
    c.book.started(c.stats[i]!);
    return i;
  }

  onResponse(proxy: number, endpoint: number, latency: number, refused: boolean): void {
    const c = this.clients[proxy]!;
    c.book.ended(c.stats[endpoint]!, latency, refused);
  }

  shares(): Float64Array {
    const total = this.weights.reduce((a, x) => a + x, 0);
    return total > 0
      ? this.weights.map((x) => x / total)
      : this.weights.map(() => 1 / this.weights.length);
  }

  capacities(): Float64Array | undefined {
    return this.source.capacities?.();
  }

  /** The candidates as a client holds them after this interval's EDS push. */
  private candidatesOf(stats: EndpointStats[]): WeightedCandidates<number> {
    const shares = this.shares();
    const published = Array.from(shares, (s, e) => {
      const w = weightOf(s, WEIGHT_SCALE);
      return { localityKey: String(e), localityWeight: w, endpointWeight: w * w };
    });
    return new WeightedCandidates(
      stats.map((_, e) => e),
      stats,
      xdsWeights(published),
    );
  }
}
