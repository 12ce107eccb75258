/**
 * The two bounds, delivered exactly as augur's own weights are: an xDS server built from
 * `src/xds` (same builders, publisher, hysteresis and protocol as `augur serve`'s) fed by a
 * privileged list source that knows each backend's true capacity, so that between these arms and
 * augur's xDS arm only the estimate differs.
 * - perfect-reactive: at each trace step, weights ∝ the true capacity of the step just ended
 *   (no measurement error, no foresight: the best any reactive balancer could do);
 * - oracle: weights ∝ the true capacity of the step that is starting.
 * Both as the routing simulator defines them (src/sim/policies/weights.ts, TrueCapacityWeights).
 */
import { GrpcHost } from '../../src/common/grpc-host.js';
import { formatHostPort } from '../../src/common/address.js';
import type { Logger } from '../../src/common/logger.js';
import { EndpointState } from '../../src/gen/augur/v1/common.js';
import { PrioritizedEndpointList } from '../../src/gen/augur/v1/load_prediction.js';
import type { PrioritizedListSource } from '../../src/lps/types.js';
import { defaultXdsConfig } from '../../src/xds/config.js';
import { Xds } from '../../src/xds/xds.js';
import { nowMs } from './clock.js';
import type { Segment } from './workload.js';

export type BoundKind = 'perfect-reactive' | 'oracle';

export interface BoundEndpoint {
  id: string;
  host: string;
  port: number;
}

/** Lists whose weights are set from outside: the harness's privileged knowledge. */
export class TrueCapacitySource implements PrioritizedListSource {
  private readonly lists = new Map<string, PrioritizedEndpointList>();
  private readonly listeners = new Set<(list: PrioritizedEndpointList) => void>();

  constructor(private readonly endpoints: readonly BoundEndpoint[]) {}

  /** Publishes a new version of `service` with these weights (one per endpoint, any scale). */
  set(service: string, weights: ArrayLike<number>): void {
    const version = (this.lists.get(service)?.version ?? 0) + 1;
    let total = 0;
    for (let i = 0; i < weights.length; i++) total += weights[i]!;
    const list = PrioritizedEndpointList.fromPartial({
      service,
      version,
      computedAt: new Date(),
      endpoints: this.endpoints
        .map((e, i) => ({
          endpointId: e.id,
          score: total > 0 ? weights[i]! / total : 0,
          weight: weights[i]!,
          address: e.host,
          port: e.port,
          state: EndpointState.ENDPOINT_STATE_ACTIVE,
        }))
        .sort((a, b) => b.score - a.score),
    });
    this.lists.set(service, list);
    for (const listener of this.listeners) listener(list);
  }

  get(service: string): PrioritizedEndpointList | undefined {
    return this.lists.get(service);
  }

  services(): string[] {
    return [...this.lists.keys()];
  }

  subscribe(listener: (list: PrioritizedEndpointList) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** The xDS service name of each bound. */
export function boundService(service: string, kind: BoundKind): string {
  return `${service}-${kind}`;
}

/** The bounds' control plane: an ADS server of its own on a free loopback port. */
export class BoundsPlane {
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    readonly address: string,
    private readonly service: string,
    private readonly source: TrueCapacitySource,
    private readonly host: GrpcHost,
    private readonly xds: Xds,
  ) {}

  static async start(
    service: string,
    endpoints: readonly BoundEndpoint[],
    logger: Logger,
  ): Promise<BoundsPlane> {
    const source = new TrueCapacitySource(endpoints);
    const equal = endpoints.map(() => 1);
    for (const kind of ['perfect-reactive', 'oracle'] as const) {
      source.set(boundService(service, kind), equal);
    }
    const host = new GrpcHost({ listen: '127.0.0.1:0' });
    const xds = new Xds({
      config: defaultXdsConfig(),
      source,
      logger,
    });
    xds.register((name, definition, impl) => host.addService(name, definition, impl));
    const bound = await host.start();
    xds.start();
    return new BoundsPlane(formatHostPort(bound), service, source, host, xds);
  }

  /**
   * From now until the segment ends, publishes both bounds at every step boundary after `t0`
   * (epoch ms); before `t0`, both hold the first step's capacity.
   */
  follow(segment: Segment, t0: number): void {
    this.stopFollowing();
    const stepMs = segment.stepSeconds * 1000;
    const publish = (k: number): void => {
      const at = (step: number) => segment.capacity.map((c) => c[Math.max(0, step)]!);
      this.source.set(boundService(this.service, 'perfect-reactive'), at(k - 1));
      this.source.set(boundService(this.service, 'oracle'), at(k));
    };
    publish(0);
    let k = 1;
    const next = (): void => {
      if (k >= segment.steps) return;
      const due = t0 + k * stepMs;
      const wait = due - nowMs();
      if (wait > 0) {
        this.timer = setTimeout(next, wait);
        return;
      }
      publish(k++);
      next();
    };
    next();
  }

  stopFollowing(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  async stop(): Promise<void> {
    this.stopFollowing();
    this.xds.stop();
    await this.host.stop();
  }
}
