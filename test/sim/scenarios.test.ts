import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BENCH_DEFAULTS,
  runRoutingBench,
  SCENARIOS,
  spread,
  summarise,
} from '../../src/sim/bench.js';
import { resolveRoutingBench } from '../../src/sim/inputs.js';
import { runInParallel } from '../../src/sim/parallel.js';
import { POLICIES } from '../../src/sim/policies/catalog.js';
import {
  buildScenario,
  loadDefaultTraces,
  SCENARIO_DEFAULTS,
  scaleArrivals,
} from '../../src/sim/scenarios.js';
import { readTrace, toBackgroundFraction } from '../../src/sim/traces.js';

const traces = loadDefaultTraces();
const dir = mkdtempSync(join(tmpdir(), 'augur-sim-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('traces', () => {
  it('reads the NAB traces vendored in data/traces/nab', () => {
    expect(traces.cpuTraces).toHaveLength(10);
    expect(traces.arrivalTrace.values.length).toBe(4032);
  });

  it('reads a column by name or 1-based position; time and index columns only by name', () => {
    const file = join(dir, 'a.csv');
    writeFileSync(file, 'step;t_seconds;cpu;mem\n1;0;10;5\n2;300;x;6\n3;600;30;7\n');
    // a missing cell takes the value before it
    expect(Array.from(readTrace(file, 'cpu').values)).toEqual([10, 10, 30]);
    expect(Array.from(readTrace(file, '4').values)).toEqual([5, 6, 7]);
    expect(() => readTrace(file, '2')).toThrow(/column 2 is "t_seconds", an index column/);
    expect(Array.from(readTrace(file, 't_seconds').values)).toEqual([0, 300, 600]);
    expect(() => readTrace(file)).toThrow(/2 value columns \(3: cpu, 4: mem\).*--column/);
    expect(() => readTrace(file, 'disk')).toThrow(/no column "disk"/);
    expect(() => readTrace(join(dir, 'missing.csv'))).toThrow(/does not exist/);
    writeFileSync(join(dir, 'b.csv'), 'a,b\nx,y\n');
    expect(() => readTrace(join(dir, 'b.csv'))).toThrow(/no value column with numbers/);
  });

  it('reads gzipped CSVs with ";\\t" separators and a named CPU column (the Bitbrains shape)', () => {
    const file = join(dir, 'vm.csv.gz');
    const text =
      'Timestamp [ms];\tCPU cores;\tCPU usage [%];\tMemory usage [KB]\n' +
      '1372629804;\t2;\t1.5;\t1034592.8\n1372630104;\t2;\t130.5;\t458575.4\n';
    writeFileSync(file, gzipSync(text));
    const t = readTrace(file, 'CPU usage [%]');
    expect(Array.from(t.values)).toEqual([1.5, 130.5]);
    // percent clipped at 100, never divided by the maximum
    expect(Array.from(toBackgroundFraction(t))).toEqual([0.015, 1]);
    expect(
      Array.from(toBackgroundFraction({ name: 'low', values: Float64Array.from([2, 3]) })),
    ).toEqual([0.02, 0.03]);
    expect(
      Array.from(toBackgroundFraction({ name: 'f', values: Float64Array.from([0.2, 0.3]) })),
    ).toEqual([0.2, 0.3]);
  });
});

describe('scenarios', () => {
  it('scales arrivals to the target mean under the cap', () => {
    const shape = Float64Array.from([1, 2, 10, 1, 1, 1]);
    const cap = new Float64Array(6).fill(5);
    const rate = scaleArrivals(shape, 3, cap);
    expect(rate.reduce((a, x) => a + x, 0) / 6).toBeCloseTo(3, 6);
    expect(Math.max(...rate)).toBeCloseTo(5, 6);
  });

  it('builds each world at the target utilisation; constant, batch-job and diurnal as described', () => {
    const base = { ...SCENARIO_DEFAULTS, ...traces, simulatedSeconds: 300 };
    const s = buildScenario(base);
    const mean = (a: Float64Array) => a.reduce((x, y) => x + y, 0) / a.length;
    expect(mean(s.setup.rate) / mean(s.capacity)).toBeCloseTo(0.7, 3);
    for (let k = 0; k < s.capacity.length; k++)
      expect(s.setup.rate[k]).toBeLessThanOrEqual(0.95 * s.capacity[k]! + 1e-9);
    expect(s.setup.speed).toHaveLength(10);
    const constant = buildScenario({ ...base, kind: 'constant' });
    for (const sp of constant.setup.speed) expect(Math.min(...sp)).toBe(Math.max(...sp));
    // the batch job: endpoint 4 (its trace stays under 26 %) loses 55 % more CPU for 25 of every
    // 90 intervals, from interval 50 (endpoints 1 and 7 at other phases)
    const batch = buildScenario({ ...base, kind: 'batch-job' });
    const drop = Array.from(s.setup.speed[4]!, (x, k) => x - batch.setup.speed[4]![k]!);
    const on = (from: number, to: number) =>
      drop.slice(from, to).every((d) => Math.abs(d - 0.55) < 1e-9);
    const off = (from: number, to: number) => drop.slice(from, to).every((d) => d === 0);
    expect(off(0, 50) && on(50, 75) && off(75, 140) && on(140, 165)).toBe(true);
    expect(Array.from(batch.setup.speed[0]!)).toEqual(Array.from(s.setup.speed[0]!));
    // the diurnal cycle: a period of 240 intervals, each endpoint at its own phase
    const diurnal = buildScenario({ ...base, kind: 'diurnal' });
    const b0 = diurnal.setup.speed[0]!.map((x) => 1 - x);
    expect(mean(b0)).toBeGreaterThan(0.25);
    expect(mean(b0)).toBeLessThan(0.45);
    expect(b0[60]! - b0[180]!).toBeGreaterThan(0.2); // the peak of the sine against its trough
  });

  it('seeds read different parts of the traces unless --start fixes one', () => {
    const inputs = resolveRoutingBench({ scenario: ['nab'], seeds: '3', seconds: '100' });
    expect(inputs.options.seeds).toEqual([1, 2, 3]);
    const fixed = resolveRoutingBench({ scenario: ['nab'], start: '500', steps: '40' });
    expect(fixed.options.start).toBe(500);
    expect(fixed.options.steps).toBe(40);
    expect(() => resolveRoutingBench({ seeds: '0' })).toThrow(/--seeds must be a whole number/);
    expect(() => resolveRoutingBench({ scenario: ['nope'] })).toThrow(/unknown scenario "nope"/);
    expect(() => resolveRoutingBench({ column: 'cpu' })).toThrow(/--column applies to --trace/);
    expect(() => resolveRoutingBench({ signals: 'some' })).toThrow(/--signals must be one of/);
  });

  it('--trace makes the scenario "custom" from the files and the column asked for', () => {
    const file = join(dir, 'custom.csv');
    writeFileSync(
      file,
      'step,cpu\n' + Array.from({ length: 50 }, (_, i) => `${i},${20 + (i % 7)}`).join('\n'),
    );
    const inputs = resolveRoutingBench({ trace: [file], column: 'cpu' });
    expect(inputs.options.scenarios.map((s) => s.name)).toEqual(['custom']);
    expect(inputs.options.traceSets.custom![0]!.values.length).toBe(50);
  });
});

describe('benchmark', () => {
  const small = {
    ...BENCH_DEFAULTS,
    traceSets: { nab: traces.cpuTraces },
    arrivalTrace: traces.arrivalTrace,
    steps: 60,
    scenarios: SCENARIOS.filter((s) => s.name === 'nab' || s.name === 'constant'),
    policies: POLICIES.filter((p) => ['p2c', 'a58-wrr', 'augur-envoy-eds'].includes(p.name)),
  };

  it('gives identical figures for the same seed, different ones for another', async () => {
    const a = await runRoutingBench({ ...small, seeds: [5] });
    const b = await runRoutingBench({ ...small, seeds: [5] });
    const c = await runRoutingBench({
      ...small,
      scenarios: small.scenarios.slice(0, 1),
      seeds: [6],
    });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(JSON.stringify(a[0])).not.toBe(JSON.stringify(c[0]));
    expect(a[0]!.figures.map((f) => f.policy)).toEqual(['p2c', 'a58-wrr', 'augur-envoy-eds']);
    for (const f of a[0]!.figures) expect(f.requests).toBeGreaterThan(5000);
    // seed 6 reads the traces from where seed 5's window would start one run later
    expect(c[0]!.start - a[0]!.start).toBe(a[0]!.rows);
  });

  it('runs in worker threads with the same figures as in one thread', async () => {
    const names = ['p2c', 'augur-envoy-eds'];
    const few = {
      ...small,
      policies: POLICIES.filter((p) => names.includes(p.name)),
      seeds: [4, 7],
    };
    const sequential = await runRoutingBench(few);
    const parallel = await runInParallel({ ...few, policies: names }, undefined, 2);
    expect(JSON.stringify(parallel)).toBe(JSON.stringify(sequential));
  });

  it('summarises over seeds: the median and range of each figure, and the targets seed by seed', async () => {
    const runs = await runRoutingBench({ ...small, seeds: [1, 2, 3] });
    const [nab, constant] = summarise(runs);
    expect(nab!.seeds).toEqual([1, 2, 3]);
    const p2c = runs.filter((r) => r.scenario === 'nab').map((r) => r.figures[0]!.p99);
    expect(nab!.policies[0]!.p99).toEqual(spread(p2c));
    const eds = nab!.targets.find((t) => t.policy === 'augur-envoy-eds' && t.versus === 'p2c')!;
    const ratios = runs
      .filter((r) => r.scenario === 'nab')
      .map((r) => r.figures[2]!.p99 / r.figures[0]!.p99);
    expect(eds.value).toEqual(spread(ratios));
    expect(eds.met).toBe(eds.value.median <= 0.85);
    // at constant capacity: churn against A58's, and no cuts
    const labels = constant!.targets.map((t) => `${t.figure}:${t.versus ?? ''}`);
    expect(labels).toEqual(expect.arrayContaining(['churn:a58-wrr', 'cuts:']));
  });

  it('reports the reference ratios seed by seed, with no verdict, only where both policies ran', async () => {
    const names = ['augur-envoy-rrm', 'omniscient-sed', 'augur-grpc'];
    const runs = await runRoutingBench({
      ...small,
      scenarios: small.scenarios.slice(0, 1),
      policies: POLICIES.filter((p) => names.includes(p.name)),
      seeds: [1, 2],
    });
    const [nab] = summarise(runs);
    expect(nab!.references.map((x) => `${x.policy}/${x.versus}`)).toEqual([
      'augur-envoy-rrm/omniscient-sed',
      'augur-envoy-rrm/augur-grpc',
      'omniscient-sed/augur-grpc',
    ]);
    const p99 = (r: (typeof runs)[number], policy: string) =>
      r.figures.find((f) => f.policy === policy)!.p99;
    expect(nab!.references[0]!.value).toEqual(
      spread(runs.map((r) => p99(r, 'augur-envoy-rrm') / p99(r, 'omniscient-sed'))),
    );
    // perfect information helps: the reference is no slower than the shipped RRM at the tail
    expect(nab!.references[0]!.value.median).toBeGreaterThanOrEqual(1);
    const [withoutBound] = summarise(runs.map((r) => ({ ...r, figures: r.figures.slice(0, 1) })));
    expect(withoutBound!.references).toEqual([]);
  });

  it('spread: median of an even count is the mean of the middle two; NaN are left out', () => {
    expect(spread([4, 1, 3, 2])).toEqual({ median: 2.5, min: 1, max: 4, n: 4 });
    expect(spread([NaN, 2])).toEqual({ median: 2, min: 2, max: 2, n: 1 });
    expect(spread([]).n).toBe(0);
  });
});
