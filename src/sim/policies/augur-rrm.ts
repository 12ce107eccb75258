import { EndpointState } from '../../gen/augur/v1/common.js';
import { ListStore } from '../../lps/list-store.js';
import { rrmConfigSchema } from '../../rrm/config.js';
import { EndpointLoads, type EndpointLoad } from '../../rrm/endpoint-load.js';
import { EndpointTables } from '../../rrm/endpoint-table.js';
import { Router } from '../../rrm/router.js';
import { AugurScorerWeights } from '../augur-scorer.js';
import type { Rng } from '../rng.js';
import type { FleetView, IntervalReport, RoutingPolicy } from '../types.js';
import type { WeightSource } from './weights.js';

/** The service name the simulated endpoints are published under. */
const SERVICE = 'sim';

/**
 * Where the RRMs sit: `shared`, one RRM for every proxy (the ext_proc cluster of every Envoy
 * points at one `augur serve`, as envoy/bootstrap.yaml and docker-compose.yml do), so it counts
 * every request in flight; `per-proxy`, one `augur rrm` beside each Envoy, each counting only
 * the requests of its own proxy.
 */
export type RrmTopology = 'shared' | 'per-proxy';

/**
 * How the RRM hears of responses: `ext-proc`, the response headers of each request on its own
 * ext_proc stream, at once (what the shipped bootstraps do); or Envoy's gRPC access log service
 * (`envoy.access_loggers.http_grpc`), which buffers each proxy's entries and sends them when
 * `entries` have accumulated (its 16 KiB `buffer_size_bytes`) or `flushSeconds` after the first
 * (`buffer_flush_interval`, 1 s by default), whichever comes first.
 */
export type ResponseReports = 'ext-proc' | { accessLog: { entries: number; flushSeconds: number } };

export interface AugurEnvoyRrmOptions {
  topology: RrmTopology;
  /** Default `ext-proc`. */
  reports?: ResponseReports;
  /** `rrm.pickSampleSize`; default the shipped default. */
  pickSampleSize?: number;
  /** Where the list's weights come from; default the LPS's ForecastScorer. */
  weights?: () => WeightSource;
}

/** One RRM: its in-band signals and its router (the shipped classes). */
interface SimRrm {
  loads: EndpointLoads;
  router: Router;
  /** Each endpoint's EndpointLoad in this RRM, by endpoint index. */
  loadOf: EndpointLoad[];
}

/**
 * `augur-envoy-rrm`: Envoy routing each request by augur's RRM over ext_proc, with the response
 * headers of each routed request sent back (envoy/bootstrap.yaml). It runs the RRM's own code:
 * the prioritized list is published each interval into the RRM's EndpointTables, with the
 * weights of the LPS's ForecastScorer (fed the agents' reports, as the LPS feeds it); each
 * request is decided by the RRM's Router (filters, Load Score order, the configured picker with
 * the defaults of `rrm.*`), counted in flight in its EndpointLoads, and its response (latency,
 * or a refusal at the queue limit as a failure) recorded there as the ext_proc response phase
 * does. What differs from a deployment: the list carries the weight as its score too (the score
 * only orders the fallbacks, which the simulator never uses: it does not retry), and the
 * response headers reach the RRM the moment the request completes (on loopback they take a
 * fraction of a millisecond, against a 20 ms service time).
 */
export class AugurEnvoyRrmPolicy implements RoutingPolicy {
  readonly name: string;
  private readonly options: AugurEnvoyRrmOptions;
  private readonly source: WeightSource;
  private readonly lists = new ListStore();
  private tables: EndpointTables | undefined;
  private rrms: SimRrm[] = [];
  private indexOf = new Map<string, number>();
  private weights: Float64Array = new Float64Array(0);
  private version = 0;
  private view: FleetView | undefined;
  /** Per proxy, the responses its access logger holds (access-log reports only). */
  private buffers: Array<{ firstAt: number; held: Array<[number, number, boolean]> }> = [];

  constructor(name: string, options: AugurEnvoyRrmOptions) {
    this.name = name;
    this.options = options;
    this.source = options.weights?.() ?? new AugurScorerWeights();
  }

  init(view: FleetView, rng: Rng): void {
    this.view = view;
    this.buffers = Array.from({ length: view.proxies }, () => ({ firstAt: 0, held: [] }));
    this.source.init(view);
    const addresses = Array.from({ length: view.endpoints }, (_, e) => endpointAddress(e));
    this.indexOf = new Map(addresses.map((a, e) => [`${a}:8080`, e]));
    this.weights = new Float64Array(view.endpoints).fill(1);
    this.publish();
    this.tables = new EndpointTables(this.lists);
    const config = rrmConfigSchema.parse({});
    const random = () => rng.next();
    const count = this.options.topology === 'shared' ? 1 : view.proxies;
    this.rrms = Array.from({ length: count }, () => {
      const loads = new EndpointLoads();
      const router = new Router(this.tables!, {
        fallbacks: config.fallbacks,
        maxEndpointStaleness: config.maxEndpointStaleness,
        dynamicPicker: config.dynamicPicker,
        pickSampleSize: this.options.pickSampleSize ?? config.pickSampleSize,
        loads,
        random,
      });
      return { loads, router, loadOf: [...this.indexOf.keys()].map((d) => loads.of(d)) };
    });
  }

  async onInterval(step: number, report: IntervalReport | undefined): Promise<void> {
    const w = await this.source.update(step, report);
    this.weights = w.map((x) => (Number.isFinite(x) && x > 0 ? x : 0));
    this.publish();
  }

  shares(): Float64Array {
    const total = this.weights.reduce((a, x) => a + x, 0);
    return total > 0
      ? this.weights.map((x) => x / total)
      : this.weights.map(() => 1 / this.weights.length);
  }

  pick(proxy: number): number {
    this.flushDue();
    const rrm = this.rrmOf(proxy);
    const decision = rrm.router.decide(SERVICE, true, undefined);
    const pick = decision.pick;
    if (!pick) throw new Error(`the RRM routed nothing: ${decision.reason ?? 'no reason'}`);
    rrm.loads.started(pick);
    return this.indexOf.get(pick.destination)!;
  }

  onResponse(proxy: number, endpoint: number, latency: number, refused: boolean): void {
    const reports = this.options.reports ?? 'ext-proc';
    if (reports === 'ext-proc') return this.report(proxy, endpoint, latency, refused);
    const buffer = this.buffers[proxy]!;
    if (buffer.held.length === 0) buffer.firstAt = this.view!.now();
    buffer.held.push([endpoint, latency, refused]);
    if (buffer.held.length >= reports.accessLog.entries) this.flush(proxy);
  }

  /** The access loggers whose flush interval has run out send what they hold. */
  private flushDue(): void {
    const reports = this.options.reports ?? 'ext-proc';
    if (reports === 'ext-proc') return;
    const now = this.view!.now();
    for (let p = 0; p < this.buffers.length; p++) {
      const b = this.buffers[p]!;
      if (b.held.length > 0 && now - b.firstAt >= reports.accessLog.flushSeconds) this.flush(p);
    }
  }

  private flush(proxy: number): void {
    const held = this.buffers[proxy]!.held;
    this.buffers[proxy]!.held = [];
    for (const [endpoint, latency, refused] of held) this.report(proxy, endpoint, latency, refused);
  }

  /** What the RRM does with one response (RoutedRequests.respond's bookkeeping). */
  private report(proxy: number, endpoint: number, latency: number, refused: boolean): void {
    const rrm = this.rrmOf(proxy);
    const load = rrm.loadOf[endpoint]!;
    rrm.loads.finished(load);
    rrm.loads.responded(load, latency, refused);
  }

  private rrmOf(proxy: number): SimRrm {
    return this.rrms[this.options.topology === 'shared' ? 0 : proxy]!;
  }

  /** The list as the LPS publishes it each scoring tick. */
  private publish(): void {
    this.lists.publish({
      service: SERVICE,
      version: ++this.version,
      computedAt: new Date(0),
      endpoints: Array.from(this.weights, (w, e) => ({
        endpointId: `ep-${e}`,
        score: w,
        weight: w,
        address: endpointAddress(e),
        port: 8080,
        state: EndpointState.ENDPOINT_STATE_ACTIVE,
      })),
    });
  }
}

function endpointAddress(e: number): string {
  return `10.0.${e >> 8}.${e & 255}`;
}
