import type { RoutingPolicy } from '../types.js';
import { AugurScorerWeights, type AugurScorerOptions } from '../augur-scorer.js';
import {
  EnvoyLeastRequestPicker,
  RoundRobinPicker,
  SmoothWrrPicker,
  WeightedRandomPicker,
} from './pickers.js';
import { AugurGrpcPolicy } from './augur-grpc.js';
import { AugurEnvoyRrmPolicy } from './augur-rrm.js';
import { OmniscientSedPolicy } from './omniscient.js';
import { PrequalPolicy } from './prequal.js';
import { UnweightedPolicy, WeightedPolicy } from './weighted.js';
import { A58Weights, TrueCapacityWeights } from './weights.js';

/** Which policies are reactive, augur's, or privileged bounds; the report groups by it. */
export type PolicyGroup = 'reactive' | 'augur' | 'bound';

/**
 * The data plane a shipped augur policy and its bounds stand for: Envoy with
 * augur's EDS weights under least request, proxyless gRPC with augur's
 * locality weights, or Envoy asking augur's RRM per request.
 */
export type DataPlane = 'envoy-eds' | 'grpc' | 'envoy-rrm';

/** What a run may change in augur's policies (the bounds and the reactive peers ignore it). */
export type PolicyOptions = AugurScorerOptions;

export interface PolicyEntry {
  name: string;
  group: PolicyGroup;
  description: string;
  /** For augur's policies and the bounds: the data plane whose picker they use. */
  dataPlane?: DataPlane;
  make(speed: readonly Float64Array[], options?: PolicyOptions): RoutingPolicy;
}

const envoyLeastRequest = (name: string, source: ConstructorParameters<typeof WeightedPolicy>[1]) =>
  new WeightedPolicy(name, source, (v, r) => new EnvoyLeastRequestPicker(v, r));
const grpcLocalities = (name: string, source: ConstructorParameters<typeof WeightedPolicy>[1]) =>
  new WeightedPolicy(name, source, (_v, r) => new WeightedRandomPicker(r));

/** Every policy the benchmark compares, in table order. */
export const POLICIES: readonly PolicyEntry[] = [
  {
    name: 'round-robin',
    group: 'reactive',
    description: 'round robin, each proxy from its own offset',
    make: () => new UnweightedPolicy('round-robin', (v, r) => new RoundRobinPicker(v, r)),
  },
  {
    name: 'p2c',
    group: 'reactive',
    description:
      "Envoy's least request with equal weights: the fewer of two random hosts' active requests, on the proxy's own counts (P2C)",
    make: () => new UnweightedPolicy('p2c', (v, r) => new EnvoyLeastRequestPicker(v, r)),
  },
  {
    name: 'a58-wrr',
    group: 'reactive',
    description:
      "gRPC's weighted_round_robin (gRFC A58): weights qps/(util + eps/qps) from the last ORCA report, 10 s blackout, weighted round robin",
    make: () =>
      new WeightedPolicy('a58-wrr', new A58Weights(), (v, r) => new SmoothWrrPicker(v, r)),
  },
  {
    name: 'prequal',
    group: 'reactive',
    description:
      'probes for requests in flight and recent latency, hot-cold rule (Prequal, NSDI 2024); probes answer instantly and for free here',
    make: () => new PrequalPolicy(),
  },
  {
    name: 'augur-envoy-eds',
    group: 'augur',
    dataPlane: 'envoy-eds',
    description:
      "augur's published weights (the LPS's ForecastScorer) as Envoy EDS weights under Envoy's least request (weights / (active + 1), EDF)",
    make: (_speed, options) =>
      envoyLeastRequest('augur-envoy-eds', new AugurScorerWeights(options)),
  },
  {
    name: 'augur-grpc',
    group: 'augur',
    dataPlane: 'grpc',
    description:
      "proxyless grpc-js reading augur's xDS with `registerAugurBalancer()` (the shipped `augur_expected_delay` policy, src/grpc-lb): per call the shortest expected delay from the published locality weights and each client's own calls in flight and latencies",
    make: (_speed, options) => new AugurGrpcPolicy('augur-grpc', new AugurScorerWeights(options)),
  },
  {
    name: 'augur-grpc-locality',
    group: 'augur',
    dataPlane: 'grpc',
    description:
      "augur's published weights as locality weights to a grpc-js client that did not register augur's policy (the fallback augur publishes: wrr_locality, weighted random between localities)",
    make: (_speed, options) =>
      grpcLocalities('augur-grpc-locality', new AugurScorerWeights(options)),
  },
  {
    name: 'augur-envoy-rrm',
    group: 'augur',
    dataPlane: 'envoy-rrm',
    description:
      "Envoy + augur's RRM (the shipped Router and picker): the shortest expected delay from the ForecastScorer's weights, the RRM's own in-flight counts and response latencies; one RRM for every proxy, as the shipped bootstrap",
    make: (_speed, options) =>
      new AugurEnvoyRrmPolicy('augur-envoy-rrm', {
        topology: 'shared',
        weights: () => new AugurScorerWeights(options),
      }),
  },
  {
    name: 'perfect-reactive-envoy-rrm',
    group: 'bound',
    dataPlane: 'envoy-rrm',
    description:
      "the RRM's picker over weights = true capacity of the interval that just ended (no measurement error, no foresight)",
    make: (speed) =>
      new AugurEnvoyRrmPolicy('perfect-reactive-envoy-rrm', {
        topology: 'shared',
        weights: () => new TrueCapacityWeights(speed, 0),
      }),
  },
  {
    name: 'oracle-envoy-rrm',
    group: 'bound',
    dataPlane: 'envoy-rrm',
    description: "the RRM's picker over weights = true capacity of the interval about to start",
    make: (speed) =>
      new AugurEnvoyRrmPolicy('oracle-envoy-rrm', {
        topology: 'shared',
        weights: () => new TrueCapacityWeights(speed, 1),
      }),
  },
  {
    name: 'omniscient-sed',
    group: 'bound',
    dataPlane: 'envoy-rrm',
    description:
      "per request, the shortest expected delay computed from every endpoint's true speed at that instant and true queue (every proxy's requests): what the RRM's kind of rule gives with perfect information (greedy, so a reference rather than a proof of optimality)",
    make: (speed) => new OmniscientSedPolicy('omniscient-sed', speed),
  },
  {
    name: 'perfect-reactive-envoy-eds',
    group: 'bound',
    dataPlane: 'envoy-eds',
    description:
      "weights = true capacity of the interval that just ended, Envoy's least request (no measurement error, no foresight)",
    make: (speed) =>
      envoyLeastRequest('perfect-reactive-envoy-eds', new TrueCapacityWeights(speed, 0)),
  },
  {
    name: 'oracle-envoy-eds',
    group: 'bound',
    dataPlane: 'envoy-eds',
    description: "weights = true capacity of the interval about to start, Envoy's least request",
    make: (speed) => envoyLeastRequest('oracle-envoy-eds', new TrueCapacityWeights(speed, 1)),
  },
  {
    name: 'perfect-reactive-grpc',
    group: 'bound',
    dataPlane: 'grpc',
    description:
      "augur's gRPC policy over weights = true capacity of the interval that just ended (no measurement error, no foresight)",
    make: (speed) =>
      new AugurGrpcPolicy('perfect-reactive-grpc', new TrueCapacityWeights(speed, 0)),
  },
  {
    name: 'oracle-grpc',
    group: 'bound',
    dataPlane: 'grpc',
    description: "augur's gRPC policy over weights = true capacity of the interval about to start",
    make: (speed) => new AugurGrpcPolicy('oracle-grpc', new TrueCapacityWeights(speed, 1)),
  },
];
