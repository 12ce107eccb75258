import type { RoutingPolicy } from '../types.js';
import { AugurScorerWeights } from '../augur-scorer.js';
import { AugurWeights } from '../augur-weights.js';
import { P2cPicker, RoundRobinPicker, SmoothWrrPicker, WeightedP2cPicker } from './pickers.js';
import { AugurEnvoyRrmPolicy } from './augur-rrm.js';
import { PrequalPolicy } from './prequal.js';
import { UnweightedPolicy, WeightedPolicy } from './weighted.js';
import { A58Weights, TrueCapacityWeights } from './weights.js';

/** Which policies are reactive, augur's, or privileged bounds; the report groups by it. */
export type PolicyGroup = 'reactive' | 'augur' | 'bound';

export interface PolicyEntry {
  name: string;
  group: PolicyGroup;
  description: string;
  make(speed: readonly Float64Array[]): RoutingPolicy;
}

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
    description: "least request, two random choices on the proxy's own in-flight counts (Envoy)",
    make: () => new UnweightedPolicy('p2c', (v, r) => new P2cPicker(v, r)),
  },
  {
    name: 'a58-wrr',
    group: 'reactive',
    description:
      'weighted round robin, weights qps/(util + eps/qps) from the last report (gRPC WRR, gRFC A58)',
    make: () =>
      new WeightedPolicy('a58-wrr', new A58Weights(), (v, r) => new SmoothWrrPicker(v, r)),
  },
  {
    name: 'a58-p2c',
    group: 'reactive',
    description: 'A58 weights with weighted two-choice least request',
    make: () =>
      new WeightedPolicy('a58-p2c', new A58Weights(), (v, r) => new WeightedP2cPicker(v, r)),
  },
  {
    name: 'prequal',
    group: 'reactive',
    description:
      'probes for requests in flight and recent latency, hot-cold rule (Prequal, NSDI 2024)',
    make: () => new PrequalPolicy(),
  },
  {
    name: 'augur-wrr',
    group: 'augur',
    description:
      "augur's weights (the LPS ForecastScorer's weight, i.e. the WeightController's share), weighted round robin (Envoy EDS weights with round robin)",
    make: () =>
      new WeightedPolicy(
        'augur-wrr',
        new AugurScorerWeights(),
        (v, r) => new SmoothWrrPicker(v, r),
      ),
  },
  {
    name: 'augur-p2c',
    group: 'augur',
    description:
      "augur's weights (as augur-wrr) with weighted two-choice least request (Envoy least request + EDS weights)",
    make: () =>
      new WeightedPolicy(
        'augur-p2c',
        new AugurScorerWeights(),
        (v, r) => new WeightedP2cPicker(v, r),
      ),
  },
  {
    name: 'augur-score-p2c',
    group: 'augur',
    description:
      'variant: the Load Score (ForecastScorer, upper-quantile forecasts) used as the weight, weighted two-choice',
    make: () =>
      new WeightedPolicy(
        'augur-score-p2c',
        new AugurScorerWeights('score'),
        (v, r) => new WeightedP2cPicker(v, r),
      ),
  },
  {
    name: 'augur-cap-p2c',
    group: 'augur',
    description:
      "variant: the controller's forecast capacity (1 − predicted background)/cost as weights, weighted two-choice",
    make: () =>
      new WeightedPolicy(
        'augur-cap-p2c',
        new AugurWeights({}, undefined, 'capacity'),
        (v, r) => new WeightedP2cPicker(v, r),
      ),
  },
  {
    name: 'augur-prequal',
    group: 'augur',
    description:
      'variant: Prequal whose probes are drawn in proportion to the augur-cap weights (forecast + instant signals)',
    make: () => new PrequalPolicy('augur-prequal', {}, new AugurWeights({}, undefined, 'capacity')),
  },
  {
    name: 'augur-envoy-rrm',
    group: 'augur',
    description:
      "Envoy + augur's RRM (the shipped Router and picker): the shortest expected delay from the ForecastScorer's weights, the RRM's own in-flight counts and response latencies; one RRM for every proxy, as the shipped bootstrap",
    make: () => new AugurEnvoyRrmPolicy('augur-envoy-rrm', { topology: 'shared' }),
  },
  {
    name: 'perfect-reactive',
    group: 'bound',
    description: 'weights = true capacity of the interval that just ended, weighted two-choice',
    make: (speed) =>
      new WeightedPolicy(
        'perfect-reactive',
        new TrueCapacityWeights(speed, 0),
        (v, r) => new WeightedP2cPicker(v, r),
      ),
  },
  {
    name: 'oracle',
    group: 'bound',
    description: 'weights = true capacity of the interval about to start, weighted two-choice',
    make: (speed) =>
      new WeightedPolicy(
        'oracle',
        new TrueCapacityWeights(speed, 1),
        (v, r) => new WeightedP2cPicker(v, r),
      ),
  },
  {
    name: 'perfect-reactive-wrr',
    group: 'bound',
    description: 'perfect reactive weights with weighted round robin (the bound for augur-wrr)',
    make: (speed) =>
      new WeightedPolicy(
        'perfect-reactive-wrr',
        new TrueCapacityWeights(speed, 0),
        (v, r) => new SmoothWrrPicker(v, r),
      ),
  },
  {
    name: 'oracle-wrr',
    group: 'bound',
    description: 'oracle weights with weighted round robin',
    make: (speed) =>
      new WeightedPolicy(
        'oracle-wrr',
        new TrueCapacityWeights(speed, 1),
        (v, r) => new SmoothWrrPicker(v, r),
      ),
  },
  {
    name: 'oracle-prequal',
    group: 'bound',
    description:
      'Prequal probing in proportion to the oracle weights: the most a forecast can add to instant signals',
    make: (speed) => new PrequalPolicy('oracle-prequal', {}, new TrueCapacityWeights(speed, 1)),
  },
];
