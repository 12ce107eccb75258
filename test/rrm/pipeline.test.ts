import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EndpointState } from '../../src/gen/augur/v1/common.js';
import type { PrioritizedEndpointList } from '../../src/gen/augur/v1/load_prediction.js';
import { ServiceTable, type EndpointEntry } from '../../src/rrm/endpoint-table.js';
import { CandidateListFilter, FreshFilter, HealthyFilter } from '../../src/rrm/pipeline/filters.js';
import { EndpointLoads } from '../../src/rrm/endpoint-load.js';
import { byScore, FirstCandidatePicker } from '../../src/rrm/pipeline/pickers.js';
import {
  answer,
  candidateSet,
  defaultPipeline,
  standardOrderPipeline,
} from '../../src/rrm/pipeline/pipeline.js';
import { LoadScoreScorer } from '../../src/rrm/pipeline/scorers.js';
import type { PickRequest } from '../../src/rrm/pipeline/types.js';

const {
  ENDPOINT_STATE_ACTIVE: ACTIVE,
  ENDPOINT_STATE_FAILING: FAILING,
  ENDPOINT_STATE_STALE: STALE,
} = EndpointState;

function entry(id: string, score: number, extra: Partial<EndpointEntry> = {}): EndpointEntry {
  return {
    id,
    destination: `10.0.0.${id.length}:80`,
    hostPort: `10.0.0.${id.length}:80`,
    score,
    weight: 0,
    state: ACTIVE,
    stalenessSeconds: 0,
    registrationRank: 0,
    ...extra,
  };
}

const req = (r: Partial<PickRequest> = {}): PickRequest => ({
  candidates: undefined,
  dynamic: true,
  limit: 3,
  ...r,
});

function table(
  endpoints: Array<{ id: string; score: number; state?: EndpointState; staleness?: number }>,
  ranks = new Map<string, number>(),
) {
  const list: PrioritizedEndpointList = {
    service: 'svc',
    version: 1,
    computedAt: new Date(),
    endpoints: endpoints.map((e, i) => ({
      endpointId: e.id,
      score: e.score,
      weight: 0,
      address: `10.0.0.${i + 1}`,
      port: 80,
      state: e.state ?? ACTIVE,
      parts: {
        predictedUtilization: 0,
        predictedResponseTime: 0,
        stalenessSeconds: e.staleness ?? 0,
        forecaster: 'ewma',
        utilizationFactor: 0,
        latencyFactor: 0,
        predictedMemory: 0,
        predictedNetwork: 0,
        estimatedCapacity: 0,
      },
    })),
  };
  return new ServiceTable(list, ranks);
}

describe('filters', () => {
  const entries = [
    entry('a', 0.9),
    entry('b', 0.5, { state: FAILING }),
    entry('c', 0.4, { state: STALE }),
    entry('d', 0.3, { stalenessSeconds: 30 }),
  ];

  it('candidate list keeps only listed endpoints, in the order given, and everything without a list', () => {
    const f = new CandidateListFilter();
    expect(f.filter(entries, req()).map((e) => e.id)).toEqual(['a', 'b', 'c', 'd']);
    expect(f.filter(entries, req({ candidates: ['d', 'a', 'zz'] })).map((e) => e.id)).toEqual([
      'a',
      'd',
    ]);
    const many = Array.from({ length: 20 }, (_, i) => `x${i}`).concat('c');
    expect(f.filter(entries, req({ candidates: many })).map((e) => e.id)).toEqual(['c']);
  });

  it('healthy drops failing and draining endpoints only', () => {
    const f = new HealthyFilter();
    expect(f.filter(entries).map((e) => e.id)).toEqual(['a', 'c', 'd']);
    const draining = [entry('x', 1, { state: EndpointState.ENDPOINT_STATE_DRAINING })];
    expect(f.filter(draining)).toEqual([]);
  });

  it('fresh drops stale-marked endpoints and those silent past the bound', () => {
    const f = new FreshFilter(10);
    expect(f.filter(entries).map((e) => e.id)).toEqual(['a', 'b']);
  });

  it('fresh keeps the stale ones when none is fresh (panic: none is known to be down)', () => {
    const f = new FreshFilter(10);
    const silent = [entry('c', 0.4, { state: STALE }), entry('d', 0.3, { stalenessSeconds: 30 })];
    expect(f.filter(silent).map((e) => e.id)).toEqual(['c', 'd']);
    // Health still counts: a failing endpoint is not brought back by the panic.
    const mixed = [entry('x', 1, { state: FAILING }), ...silent];
    expect(f.filter(new HealthyFilter().filter(mixed)).map((e) => e.id)).toEqual(['c', 'd']);
  });

  it('returns the same array when it keeps everything (no allocation on the common path)', () => {
    const healthy = [entry('a', 1), entry('b', 1)];
    expect(new HealthyFilter().filter(healthy)).toBe(healthy);
    expect(new FreshFilter(10).filter(healthy)).toBe(healthy);
  });
});

describe('scorer and pickers', () => {
  it('load score is the LPS score clamped to [0,1]', () => {
    const s = new LoadScoreScorer();
    expect([s.score(entry('a', 0.25)), s.score(entry('b', 7)), s.score(entry('c', -1))]).toEqual([
      0.25, 1, 0,
    ]);
  });

  it('highest-score and caller-order pick the first candidate; the answer cuts to the limit', () => {
    const es = [entry('a', 0.2), entry('b', 0.9), entry('c', 0.5)];
    const set = candidateSet(es, new EndpointLoads());
    for (const name of ['highest-score', 'caller-order'] as const) {
      expect(new FirstCandidatePicker(name).pick()).toBe(0);
    }
    expect(answer(es, 0, 2).map((e) => e.id)).toEqual(['a', 'b']);
    expect(answer(es, 2, 5).map((e) => e.id)).toEqual(['c', 'a', 'b']);
    expect(answer(es, 1, 0)).toEqual([]);
    expect(set.loads.map((l) => l.destination)).toEqual(es.map((e) => e.destination));
  });

  it('weights: the LPS share floored at 1 % of the mean, or equal when none is given', () => {
    const loads = new EndpointLoads();
    const w = candidateSet(
      [entry('a', 1, { weight: 0.9 }), entry('b', 1, { weight: 0.1 }), entry('c', 1)],
      loads,
    );
    expect(Array.from(w.weights)).toEqual([0.9, 0.1, 0.01 / 3]);
    expect(w.cumulativeWeights[2]).toBeCloseTo(1 + 0.01 / 3, 12);
    const none = candidateSet([entry('a', 1), entry('b', 1)], loads);
    expect(Array.from(none.weights)).toEqual([0.5, 0.5]);
  });

  it('byScore sorts best first, ties in the order given (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 40 }),
        (scores) => {
          const es = scores.map((s, i) => entry(`e${i}`, s));
          const out = byScore(es, Float64Array.from(scores));
          expect(out.length).toBe(es.length);
          expect(new Set(out.map((e) => e.id)).size).toBe(out.length);
          for (let i = 1; i < out.length; i++) {
            expect(out[i - 1]!.score).toBeGreaterThanOrEqual(out[i]!.score);
            if (out[i - 1]!.score === out[i]!.score)
              expect(Number(out[i - 1]!.id.slice(1))).toBeLessThan(Number(out[i]!.id.slice(1)));
          }
        },
      ),
    );
  });
});

describe('pipelines', () => {
  const t = table([
    { id: 'a', score: 0.3 },
    { id: 'b', score: 0.95, state: FAILING },
    { id: 'c', score: 0.8 },
    { id: 'd', score: 0.6, staleness: 60 },
    { id: 'e', score: 0.5 },
  ]);

  it('default: filters, then best score first with the retry budget of fallbacks', () => {
    const p = defaultPipeline({
      maxEndpointStaleness: 10,
      dynamicPicker: 'highest-score',
      pickSampleSize: 16,
      loads: new EndpointLoads(),
    });
    expect(p.run(t, req({ limit: 3 })).map((e) => e.id)).toEqual(['c', 'e', 'a']);
    expect(p.run(t, req({ limit: 3, candidates: ['a', 'b', 'e'] })).map((e) => e.id)).toEqual([
      'e',
      'a',
    ]);
    expect(
      p
        .run(t, req({ limit: 3, dynamic: false, candidates: ['a', 'b', 'e', 'c'] }))
        .map((e) => e.id),
    ).toEqual(['a', 'e', 'c']);
    // failing and silent: only the silent one, as none is fresh
    expect(p.run(t, req({ candidates: ['b', 'd'] })).map((e) => e.id)).toEqual(['d']);
    expect(p.run(t, req({ candidates: ['b', 'x'] }))).toEqual([]);
    // a repeated id counts once
    expect(
      p.run(t, req({ limit: 5, dynamic: false, candidates: ['c', 'a', 'c'] })).map((e) => e.id),
    ).toEqual(['c', 'a']);
    expect(p.stages.filters.map((f) => f.name)).toEqual(['candidate-list', 'healthy', 'fresh']);
  });

  it('dynamic off without a list uses the registration order, stable across versions', () => {
    const ranks = new Map<string, number>();
    table(
      [
        { id: 'x', score: 0.1 },
        { id: 'y', score: 0.9 },
      ],
      ranks,
    );
    const v2 = table(
      [
        { id: 'z', score: 1 },
        { id: 'y', score: 0.9 },
        { id: 'x', score: 0.1 },
      ],
      ranks,
    );
    expect(v2.byScore.map((e) => e.id)).toEqual(['z', 'y', 'x']);
    const p = defaultPipeline({
      maxEndpointStaleness: 10,
      dynamicPicker: 'highest-score',
      pickSampleSize: 16,
      loads: new EndpointLoads(),
    });
    expect(p.run(v2, req({ dynamic: false })).map((e) => e.id)).toEqual(['x', 'y', 'z']);
  });

  it('standard order ignores scores and health: the caller list, or registration order', () => {
    const p = standardOrderPipeline(new EndpointLoads());
    expect(p.run(t, req({ limit: 10 })).map((e) => e.id)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(p.run(t, req({ candidates: ['d', 'b'] })).map((e) => e.id)).toEqual(['d', 'b']);
  });

  it('tables skip endpoints without an address and bracket IPv6', () => {
    const list: PrioritizedEndpointList = {
      service: 's',
      version: 1,
      computedAt: new Date(),
      endpoints: [
        { endpointId: 'v6', score: 1, weight: 0, address: '2001:db8::1', port: 443, state: ACTIVE },
        { endpointId: 'none', score: 1, weight: 0, address: '', port: 0, state: ACTIVE },
      ],
    };
    const t2 = new ServiceTable(list, new Map());
    expect(t2.byScore.map((e) => e.hostPort)).toEqual(['[2001:db8::1]:443']);
  });
});
