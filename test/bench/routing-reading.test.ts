/**
 * The routing benchmark's written Reading follows the figures it is printed with: which targets
 * are met, why a miss is a miss (the oracle bound misses too, or the estimate, or foresight), and
 * where augur is behind its bounds. Hand-made summaries, so each claim can be turned over.
 */
import { describe, expect, it } from 'vitest';
import { referenceReading, routingReading } from '../../bench/routing-reading.js';
import type { PolicySummary, ScenarioSummary, Spread, TargetCheck } from '../../src/sim/bench.js';

const at = (v: number): Spread => ({ median: v, min: v, max: v, n: 1 });
const nan = at(NaN);

function policy(name: string, p99: number): PolicySummary {
  return {
    policy: name,
    group: '',
    p50: at(p99 / 4),
    p99: at(p99),
    p999: at(p99 * 2),
    dropped: at(0),
    overSlo: at(0),
    churn: at(0),
    leadTime: nan,
    caught: nan,
    falseRate: nan,
    cuts: at(0),
    biasRatio: nan,
    within25: nan,
  };
}

/** One scenario from p99s (seconds) by policy; the targets computed as summarise() does. */
function scenario(name: string, tuning: boolean, p99s: Record<string, number>): ScenarioSummary {
  const policies = Object.entries(p99s).map(([p, v]) => policy(p, v));
  const target = (p: string, versus: string, limit: number): TargetCheck => {
    const value = at(p99s[p]! / p99s[versus]!);
    return { policy: p, versus, figure: 'p99', limit, value, met: value.median <= limit };
  };
  return {
    scenario: name,
    interval: 1,
    tuning,
    seeds: [1],
    windows: [{ seed: 1, start: 0, rows: 90 }],
    slo: 0.08,
    policies,
    references: [],
    targets: [
      target('augur-envoy-eds', 'p2c', 0.85),
      target('augur-grpc', 'a58-wrr', 0.6),
      target('augur-envoy-rrm', 'prequal', 1),
      target('augur-envoy-rrm', 'p2c', 0.8),
    ],
  };
}

const base = {
  p2c: 0.2,
  'a58-wrr': 0.5,
  prequal: 0.15,
  'augur-envoy-rrm': 0.12,
  'perfect-reactive-envoy-rrm': 0.12,
  'oracle-envoy-rrm': 0.12,
  'augur-envoy-eds': 0.16,
  'perfect-reactive-envoy-eds': 0.16,
  'oracle-envoy-eds': 0.15,
  'augur-grpc': 0.2,
  'augur-grpc-locality': 0.4,
  'perfect-reactive-grpc': 0.2,
  'oracle-grpc': 0.2,
};

describe('routingReading', () => {
  it('counts met and missed targets from the figures, and marks scenarios not tuned on', () => {
    const text = routingReading(
      [
        scenario('nab', true, base),
        scenario('azure2017', false, { ...base, 'augur-envoy-eds': 0.19 }),
      ],
      { envoyActiveRequestBias: 1 },
    );
    expect(text).toMatch(/met in\s+1 of 2 scenarios\*\* \(nab 0\.80×; \* = not tuned on\)/);
    expect(text).toMatch(/missed in azure2017\* 0\.95×/);
    expect(text).toMatch(/Targets missed: augur-envoy-eds in azure2017\*/);
    expect(text).toContain('`active_request_bias` 1');
  });

  it('says no forecast can meet a target only where the oracle bound misses it too', () => {
    const oracleMisses = routingReading(
      [scenario('constant', true, { ...base, 'augur-envoy-eds': 0.18, 'oracle-envoy-eds': 0.18 })],
      { envoyActiveRequestBias: 1 },
    );
    expect(oracleMisses).toMatch(/constant: the same picker over the true capacity .* 0\.90×/);
    expect(oracleMisses).toContain('no forecast can meet the target');
    expect(oracleMisses).toContain('capacities never change');

    const oracleMeets = routingReading(
      [
        scenario('bitbrains', false, {
          ...base,
          'augur-envoy-eds': 0.19,
          'perfect-reactive-envoy-eds': 0.16,
          'oracle-envoy-eds': 0.14,
        }),
      ],
      { envoyActiveRequestBias: 1 },
    );
    expect(oracleMeets).not.toContain('no forecast can meet the target');
    expect(oracleMeets).toMatch(/bitbrains\*: the oracle would meet it \(0\.70×\)/);
    expect(oracleMeets).toMatch(
      /1\.19× perfect-reactive's p99 its estimate of capacity costs 19 %/,
    );
    expect(oracleMeets).toMatch(/for Envoy EDS in bitbrains\*/);
  });

  it('reads the forecast as worth nothing only when augur matches both bounds', () => {
    const rrmParagraph = (text: string) => text.split("**Envoy with augur's EDS")[0]!;
    const same = routingReading([scenario('nab', true, base)], { envoyActiveRequestBias: 1 });
    expect(rrmParagraph(same)).toContain('the forecast buys nothing measurable');
    const oracleAhead = routingReading(
      [scenario('nab', true, { ...base, 'oracle-envoy-rrm': 0.08 })],
      { envoyActiveRequestBias: 1 },
    );
    expect(rrmParagraph(oracleAhead)).not.toContain('the forecast buys nothing measurable');
    expect(rrmParagraph(oracleAhead)).toMatch(
      /the oracle \(the coming interval's truth\) is at 0\.67× of its p99/,
    );
  });

  it('prints the published active_request_bias in the EDF rule', () => {
    const text = routingReading([scenario('nab', true, base)], { envoyActiveRequestBias: 2 });
    expect(text).toContain('(active requests + 1)^2');
  });
});

describe('referenceReading', () => {
  const withRefs = (name: string, rrmToBound: number, boundToGrpc: number): ScenarioSummary => ({
    ...scenario(name, true, base),
    references: [
      { policy: 'augur-envoy-rrm', versus: 'omniscient-sed', value: at(rrmToBound) },
      { policy: 'augur-envoy-rrm', versus: 'augur-grpc', value: at(rrmToBound * boundToGrpc) },
      { policy: 'omniscient-sed', versus: 'augur-grpc', value: at(boundToGrpc) },
    ],
  });

  it('quotes the range against perfect information and names the scenarios far from it', () => {
    const text = referenceReading([withRefs('nab', 1.04, 0.85), withRefs('diurnal', 1.2, 0.75)]);
    expect(text).toContain('1.04–1.20×');
    expect(text).toContain('within 10 % of it on 1 of 2 scenarios (further on diurnal, 1.20×)');
    expect(text).toMatch(
      /perfect information 0\.75–0\.85×: 0\.8× or below on 1 of 2 scenarios \(diurnal\)/,
    );
  });

  it('says nothing when the reference did not run', () => {
    expect(referenceReading([scenario('nab', true, base)])).toBe('');
  });
});
