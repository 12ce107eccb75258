import { describe, expect, it } from 'vitest';
import { AugurScorerWeights } from '../../src/sim/augur-scorer.js';
import { figures, overloadOnsets, type MetricsOptions } from '../../src/sim/metrics.js';
import { EnvoyLeastRequestPicker } from '../../src/sim/policies/pickers.js';
import { WeightedPolicy } from '../../src/sim/policies/weighted.js';
import { TrueCapacityWeights } from '../../src/sim/policies/weights.js';
import { simulate, type SimSetup } from '../../src/sim/simulator.js';

const metrics: MetricsOptions = { slo: 0.08, cutRatio: 0.2, overloadThreshold: 0.9, window: 2 };

/** Four endpoints; endpoint 0 loses 70 % of its CPU for steps [40, 60) and [100, 120). */
function dropWorld(constant = false): SimSetup {
  const steps = 160;
  const speed = Array.from({ length: 4 }, () => new Float64Array(steps).fill(1));
  if (!constant)
    for (let k = 0; k < steps; k++)
      if ((k >= 40 && k < 60) || (k >= 100 && k < 120)) speed[0]![k] = 0.3;
  return {
    interval: 1,
    serviceTime: 0.02,
    proxies: 4,
    workers: 4,
    queueLimit: 100,
    speed,
    // 0.75 of the full fleet: endpoint 0 at its full share overloads once its CPU is taken
    rate: new Float64Array(steps).fill((0.75 * (4 * 4)) / 0.02),
    warmupSteps: 20,
    seed: 3,
  };
}

const envoy = (name: string, source: ConstructorParameters<typeof WeightedPolicy>[1]) =>
  new WeightedPolicy(name, source, (v, r) => new EnvoyLeastRequestPicker(v, r));

describe('swap figures', () => {
  it('finds the overload onsets of a capacity drop, whatever the policy', () => {
    const onsets = overloadOnsets(dropWorld(), 0.9, 0.2);
    expect(onsets[0]).toEqual([40, 100]);
    expect(onsets.slice(1).flat()).toEqual([]);
  });

  it('the oracle cuts at the onset (lead 0); the perfect reactive policy one interval late', async () => {
    const setup = dropWorld();
    const oracle = figures(
      'oracle',
      await simulate(setup, envoy('oracle', new TrueCapacityWeights(setup.speed, 1))),
      setup,
      metrics,
    );
    const perfect = figures(
      'perfect',
      await simulate(setup, envoy('perfect', new TrueCapacityWeights(setup.speed, 0))),
      setup,
      metrics,
    );
    expect(oracle.swaps).toMatchObject({
      onsets: 2,
      caught: 1,
      leadTime: 0,
      cuts: 2,
      falseRate: 0,
    });
    expect(perfect.swaps).toMatchObject({ onsets: 2, caught: 1, leadTime: -1, cuts: 2 });
    // foresight pays: the oracle's tail is shorter
    expect(oracle.p99).toBeLessThan(perfect.p99);
  });

  it("augur's weights settle at constant capacity instead of oscillating", async () => {
    const setup = dropWorld(true);
    const augur = figures(
      'augur',
      await simulate(setup, envoy('augur', new AugurScorerWeights())),
      setup,
      metrics,
    );
    expect(augur.churn).toBeLessThan(0.01);
    expect(augur.swaps?.cuts).toBe(0);
  });

  it("augur's weights cut endpoint 0 at the first report of its capacity drop (measured, not inferred)", async () => {
    const setup = dropWorld();
    const augur = figures(
      'augur',
      await simulate(setup, envoy('augur', new AugurScorerWeights())),
      setup,
      metrics,
    );
    // As the perfect reactive bound: one interval after each onset, both caught.
    expect(augur.swaps).toMatchObject({ onsets: 2, caught: 1, leadTime: -1 });
    // Its capacity estimates (requests/s) against the truth of the interval they are used in:
    // unbiased; off only in the interval after each change (4 of 140 counted intervals of endpoint 0).
    expect(augur.bias!.medianRatio).toBeGreaterThan(0.97);
    expect(augur.bias!.medianRatio).toBeLessThan(1.03);
    expect(augur.bias!.within25).toBeGreaterThan(0.95);
    const oracle = figures(
      'oracle',
      await simulate(setup, envoy('oracle', new TrueCapacityWeights(setup.speed, 1))),
      setup,
      metrics,
    );
    expect(oracle.bias).toBeUndefined(); // a bound publishes weights, not estimates
  });
});
