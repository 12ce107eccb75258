import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runRoutingBench, SCENARIOS } from '../../src/sim/bench.js';
import { runScenariosInParallel } from '../../src/sim/parallel.js';
import { POLICIES } from '../../src/sim/policies/catalog.js';
import {
  buildScenario,
  loadDefaultTraces,
  SCENARIO_DEFAULTS,
  scaleArrivals,
} from '../../src/sim/scenarios.js';
import { readTrace } from '../../src/sim/traces.js';

const traces = loadDefaultTraces();
const dir = mkdtempSync(join(tmpdir(), 'augur-sim-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('traces', () => {
  it('reads the NAB traces vendored in data/traces/nab', () => {
    expect(traces.cpuTraces).toHaveLength(10);
    expect(traces.arrivalTrace.values.length).toBe(4032);
  });

  it('reads a CSV with ; and a named column, and says what it could not parse', () => {
    const file = join(dir, 'a.csv');
    writeFileSync(file, 'time;cpu;mem\n1;10;5\n2;x;6\n3;30;7\n');
    expect(Array.from(readTrace(file, 'cpu').values)).toEqual([10, 30]);
    expect(() => readTrace(file, 'disk')).toThrow(/no column "disk"/);
    expect(() => readTrace(join(dir, 'missing.csv'))).toThrow(/does not exist/);
    writeFileSync(join(dir, 'b.csv'), 'a,b\nx,y\n');
    expect(() => readTrace(join(dir, 'b.csv'))).toThrow(/no numeric values/);
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

  it('builds the default world at the target utilisation, capacity from the traces', () => {
    const s = buildScenario({ ...SCENARIO_DEFAULTS, ...traces, simulatedSeconds: 300 });
    const mean = (a: Float64Array) => a.reduce((x, y) => x + y, 0) / a.length;
    expect(mean(s.setup.rate) / mean(s.capacity)).toBeCloseTo(0.7, 3);
    for (let k = 0; k < s.capacity.length; k++)
      expect(s.setup.rate[k]).toBeLessThanOrEqual(0.95 * s.capacity[k]! + 1e-9);
    expect(s.setup.speed).toHaveLength(10);
    const constant = buildScenario({
      ...SCENARIO_DEFAULTS,
      ...traces,
      kind: 'constant',
      simulatedSeconds: 300,
    });
    for (const sp of constant.setup.speed) expect(Math.min(...sp)).toBe(Math.max(...sp));
  });
});

describe('benchmark', () => {
  const small = {
    ...traces,
    interval: 1,
    simulatedSeconds: 60,
    sloFactor: 4,
    scenarios: SCENARIOS.filter((s) => s.name === 'default' || s.name === 'constant capacity'),
    policies: POLICIES.filter((p) => ['p2c', 'augur-p2c', 'oracle'].includes(p.name)),
  };

  it('gives identical figures for the same seed, different ones for another', async () => {
    const a = await runRoutingBench({ ...small, seed: 5 });
    const b = await runRoutingBench({ ...small, seed: 5 });
    const c = await runRoutingBench({ ...small, scenarios: small.scenarios.slice(0, 1), seed: 6 });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(JSON.stringify(a[0])).not.toBe(JSON.stringify(c[0]));
    expect(a[0]!.figures.map((f) => f.policy)).toEqual(['p2c', 'augur-p2c', 'oracle']);
    for (const f of a[0]!.figures) expect(f.requests).toBeGreaterThan(10000);
  });

  it('runs scenarios in worker threads with the same figures as in one thread', async () => {
    const names = ['p2c', 'oracle'];
    const few = { ...small, policies: POLICIES.filter((p) => names.includes(p.name)), seed: 4 };
    const sequential = await runRoutingBench(few);
    const parallel = await runScenariosInParallel(few.scenarios, few, undefined, 2, names);
    expect(JSON.stringify(parallel)).toBe(JSON.stringify(sequential));
  });
});
