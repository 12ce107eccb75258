import {
  connectivityState as ConnectivityState,
  experimental,
  status as Status,
  type ChannelOptions,
} from '@grpc/grpc-js';
import type { ExpectedDelayChooser } from '../common/expected-delay.js';
import {
  augurChooser,
  DEFAULT_SAMPLE_SIZE,
  EndpointBook,
  xdsWeights,
  WeightedCandidates,
  type EndpointStats,
} from './state.js';

type Endpoint = experimental.Endpoint;
type Picker = experimental.Picker;
type PickArgs = experimental.PickArgs;
type PickResult = experimental.PickResult;
type LeafLoadBalancer = experimental.LeafLoadBalancer;

/** The policy's name in a gRPC service config, and the last part of its xDS type URL. */
export const AUGUR_LB_POLICY_NAME = 'augur_expected_delay';
/** The type URL of the TypedStruct augur's xDS server publishes for the policy (gRFC A52). */
export const AUGUR_LB_TYPE_URL = `type.googleapis.com/${AUGUR_LB_POLICY_NAME}`;

/** Upper bound of `sampleSize` (as `rrm.pickSampleSize`). */
const MAX_SAMPLE_SIZE = 1000;

/**
 * The policy's configuration: `{ "augur_expected_delay": { "sampleSize": 16 } }` in a service
 * config, or the TypedStruct's fields from xDS. Every field is optional.
 */
export class AugurBalancerConfig implements experimental.TypedLoadBalancingConfig {
  readonly sampleSize: number;

  constructor(sampleSize: number = DEFAULT_SAMPLE_SIZE) {
    this.sampleSize = sampleSize;
  }

  getLoadBalancerName(): string {
    return AUGUR_LB_POLICY_NAME;
  }

  toJsonObject(): object {
    return { [AUGUR_LB_POLICY_NAME]: { sampleSize: this.sampleSize } };
  }

  static createFromJson(obj: unknown): AugurBalancerConfig {
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj))
      throw new Error(
        `${AUGUR_LB_POLICY_NAME} config must be an object, got ${JSON.stringify(obj)}`,
      );
    const known = new Set(['sampleSize']);
    for (const key of Object.keys(obj))
      if (!known.has(key))
        throw new Error(`${AUGUR_LB_POLICY_NAME} config: unknown field ${JSON.stringify(key)}`);
    const size = (obj as { sampleSize?: unknown }).sampleSize;
    if (size === undefined) return new AugurBalancerConfig();
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > MAX_SAMPLE_SIZE)
      throw new Error(
        `${AUGUR_LB_POLICY_NAME} config: sampleSize must be an integer in [1, ${MAX_SAMPLE_SIZE}], got ${JSON.stringify(size)}`,
      );
    return new AugurBalancerConfig(size);
  }
}

/** What @grpc/grpc-js-xds attaches to each endpoint it hands the cluster's policy. */
interface XdsEndpointFields {
  locality?: { region?: string; zone?: string; sub_zone?: string };
  localityWeight?: number;
  endpointWeight?: number;
}

interface Child {
  leaf: LeafLoadBalancer;
  stats: EndpointStats;
  weight: number;
}

/**
 * Calls that end with these did not get an answer from the endpoint (or were abandoned by the
 * caller): counted, but their time says nothing of the endpoint's speed. Any other status is an
 * answer (an application error included), and a deadline exceeded is at least that slow.
 */
const UNANSWERED = new Set<number>([
  Status.CANCELLED,
  Status.UNKNOWN,
  Status.RESOURCE_EXHAUSTED,
  Status.INTERNAL,
  Status.UNAVAILABLE,
]);

/**
 * `augur_expected_delay`: a grpc-js load-balancing policy that picks per call by augur's
 * expected-delay rule (src/common/expected-delay.ts, the rule the RRM runs for Envoy): the
 * endpoint with the smallest (calls in flight + 1) / weight × √(recent latency), where the weights
 * are the ones augur publishes over xDS (its forecast of each endpoint's capacity, as locality
 * weights) and the calls in flight and latencies are this channel's own (each call is tracked
 * from its pick to its end). One pick_first child per endpoint keeps one connection each, as
 * round_robin does; a weight update reconnects nothing.
 */
export class AugurBalancer implements experimental.LoadBalancer {
  private readonly helper: experimental.ChannelControlHelper;
  private readonly children = new Map<string, Child>();
  private readonly book = new EndpointBook();
  private chooser: ExpectedDelayChooser = augurChooser();
  private sampleSize = DEFAULT_SAMPLE_SIZE;
  private state: ConnectivityState = ConnectivityState.IDLE;
  private updatesPaused = false;
  private lastError: string | null = null;
  private settleScheduled = false;

  constructor(helper: experimental.ChannelControlHelper) {
    this.helper = helper;
  }

  updateAddressList(
    endpoints: experimental.StatusOr<Endpoint[]>,
    config: experimental.TypedLoadBalancingConfig,
    options: ChannelOptions,
    resolutionNote: string,
  ): boolean {
    if (!(config instanceof AugurBalancerConfig)) return false;
    if (config.sampleSize !== this.sampleSize) {
      this.sampleSize = config.sampleSize;
      this.chooser = augurChooser({ sampleSize: config.sampleSize });
    }
    if (!endpoints.ok) {
      if (this.children.size === 0)
        this.updateState(
          ConnectivityState.TRANSIENT_FAILURE,
          new experimental.UnavailablePicker(endpoints.error),
          endpoints.error.details,
        );
      return true;
    }
    if (endpoints.value.length === 0) {
      const message = `${AUGUR_LB_POLICY_NAME}: no addresses resolved (${resolutionNote})`;
      this.updateState(
        ConnectivityState.TRANSIENT_FAILURE,
        new experimental.UnavailablePicker({ details: message }),
        message,
      );
      return false;
    }
    const list = endpoints.value;
    const weights = xdsWeights(
      list.map((e) => {
        const x = e as Endpoint & XdsEndpointFields;
        return {
          localityKey: x.locality
            ? `${x.locality.region ?? ''}/${x.locality.zone ?? ''}/${x.locality.sub_zone ?? ''}`
            : undefined,
          localityWeight: x.localityWeight,
          endpointWeight: x.endpointWeight,
        };
      }),
    );
    this.updatesPaused = true;
    const seen = new Set<string>();
    for (const [i, endpoint] of list.entries()) {
      const key = experimental.endpointToString(endpoint);
      seen.add(key);
      const existing = this.children.get(key);
      if (existing) {
        existing.leaf.updateEndpoint(endpoint, options);
        existing.weight = weights[i]!;
        continue;
      }
      const leaf = new experimental.LeafLoadBalancer(
        endpoint,
        experimental.createChildChannelControlHelper(this.helper, {
          updateState: (state, _picker, errorMessage) => {
            if (this.state === ConnectivityState.READY && state !== ConnectivityState.READY)
              this.helper.requestReresolution();
            if (errorMessage) this.lastError = errorMessage;
            this.calculateState();
          },
        }),
        options,
        resolutionNote,
      );
      this.children.set(key, { leaf, stats: this.book.of(key), weight: weights[i]! });
    }
    for (const [key, child] of this.children) {
      if (seen.has(key)) child.leaf.startConnecting();
      else {
        child.leaf.destroy();
        this.children.delete(key);
      }
    }
    this.book.retain((key) => seen.has(key));
    this.updatesPaused = false;
    this.calculateState();
    return true;
  }

  exitIdle(): void {
    for (const { leaf } of this.children.values()) leaf.exitIdle();
  }

  resetBackoff(): void {
    // The pick_first children keep their own backoff.
  }

  destroy(): void {
    for (const { leaf } of this.children.values()) leaf.destroy();
    this.children.clear();
  }

  getTypeName(): string {
    return AUGUR_LB_POLICY_NAME;
  }

  private count(state: ConnectivityState): number {
    let n = 0;
    for (const { leaf } of this.children.values()) if (leaf.getConnectivityState() === state) n++;
    return n;
  }

  private calculateState(): void {
    if (this.updatesPaused) return;
    const ready: Child[] = [];
    for (const child of this.children.values())
      if (child.leaf.getConnectivityState() === ConnectivityState.READY) ready.push(child);
    if (ready.length > 0) {
      const candidates = new WeightedCandidates(
        ready.map((c) => c.leaf.getPicker()),
        ready.map((c) => c.stats),
        ready.map((c) => c.weight),
      );
      this.updateState(ConnectivityState.READY, new AugurPicker(this, candidates), null);
    } else if (this.count(ConnectivityState.CONNECTING) > 0) {
      this.updateState(ConnectivityState.CONNECTING, new experimental.QueuePicker(this), null);
    } else if (this.count(ConnectivityState.TRANSIENT_FAILURE) > 0) {
      const message = `${AUGUR_LB_POLICY_NAME}: no connection established. Last error: ${this.lastError}`;
      this.updateState(
        ConnectivityState.TRANSIENT_FAILURE,
        new experimental.UnavailablePicker({ details: message }),
        message,
      );
    } else {
      this.updateState(ConnectivityState.IDLE, new experimental.QueuePicker(this), null);
    }
    // Keep every endpoint connected, as round_robin does.
    for (const { leaf } of this.children.values())
      if (leaf.getConnectivityState() === ConnectivityState.IDLE) leaf.exitIdle();
  }

  private updateState(state: ConnectivityState, picker: Picker, error: string | null): void {
    this.state = state;
    this.helper.updateState(state, picker, error);
  }

  /** One call's pick (the picker calls it): which child, and its tracking. */
  pick(candidates: WeightedCandidates<Picker>, args: PickArgs): PickResult {
    const i = this.chooser.pick(candidates);
    const result = candidates.items[i]!.pick(args);
    if (result.pickResultType !== experimental.PickResultType.COMPLETE) return result;
    const book = this.book;
    const ticket = book.picked(candidates.loads[i]!);
    if (!this.settleScheduled) {
      this.settleScheduled = true;
      setImmediate(() => {
        this.settleScheduled = false;
        book.settle();
      });
    }
    const { onCallStarted, onCallEnded } = result;
    return {
      ...result,
      onCallStarted: () => {
        book.callStarted(ticket, performance.now());
        onCallStarted?.();
      },
      onCallEnded: (code, details, metadata) => {
        book.callEnded(ticket, performance.now(), UNANSWERED.has(code));
        onCallEnded?.(code, details, metadata);
      },
    };
  }

  /** Requests in flight and latency per endpoint key, as this channel counts them (for tests). */
  snapshot(): Map<
    string,
    { inFlight: number; latency: number; responses: number; weight: number }
  > {
    const out = new Map<
      string,
      { inFlight: number; latency: number; responses: number; weight: number }
    >();
    for (const [key, c] of this.children)
      out.set(key, {
        inFlight: c.stats.inFlight,
        latency: c.stats.latency,
        responses: c.stats.responses,
        weight: c.weight,
      });
    return out;
  }
}

class AugurPicker implements Picker {
  constructor(
    private readonly balancer: AugurBalancer,
    private readonly candidates: WeightedCandidates<Picker>,
  ) {}

  pick(args: PickArgs): PickResult {
    return this.balancer.pick(this.candidates, args);
  }
}

let registered = false;

/**
 * Registers the `augur_expected_delay` policy with @grpc/grpc-js (once per process; later calls
 * do nothing). Call it before creating channels: then an `xds:///` channel whose cluster augur
 * publishes with the policy uses it (and a client that never calls this falls back to the next
 * policy augur lists, weighted round robin between localities), and a service config may name it
 * directly: `{ "loadBalancingConfig": [{ "augur_expected_delay": {} }] }`.
 */
export function registerAugurBalancer(): void {
  if (registered) return;
  experimental.registerLoadBalancerType(AUGUR_LB_POLICY_NAME, AugurBalancer, AugurBalancerConfig);
  registered = true;
}
