import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, test } from 'vitest';
import { forecastConfigSchema } from '../../src/lps/forecast/config.js';
import { registerForecastMetrics } from '../../src/lps/forecast/metrics.js';
import { ForecastScorer } from '../../src/lps/forecast/scorer.js';
import { Metric } from '../../src/gen/augur/v1/load_prediction.js';
import { ACTIVE, STALE, push, record } from './scorer-support.js';

const config = forecastConfigSchema.parse({ lstm: { enabled: false } });
const logger = pino({ level: 'silent' });

describe('ForecastScorer (baselines)', () => {
  test('scores from forecasts, weights from capacity per service, parts filled, only new samples fed', async () => {
    const scorer = new ForecastScorer({ config, logger });
    const busy = record('busy');
    const idle = record('idle');
    const other = record('other', 'svc2');
    const states = new Map([
      ['busy', ACTIVE],
      ['idle', ACTIVE],
      ['other', ACTIVE],
    ]);
    let now = 1_700_000_000_000;
    let out = new Map();
    for (let t = 0; t < 40; t++) {
      now += 1000;
      // busy's background ramps up; idle stays low. Each serves 100 requests/s at 0.004 CPU-s each (2 cores).
      push(busy, now, { cpu: 0.5 + t * 0.01, processCpu: 0.2, completed: 100, responseTime: 0.05 });
      push(idle, now, { cpu: 0.3, processCpu: 0.2, completed: 100 });
      push(other, now, { cpu: 0.3, processCpu: 0.2, completed: 100 });
      out = await scorer.assess([busy, idle, other], states, now);
    }
    const b = out.get('busy')!;
    const i = out.get('idle')!;
    expect(i.score).toBeGreaterThan(b.score);
    expect(b.score).toBeGreaterThan(0);
    // Weights are capacities in free cores (2 cores × (1 − background)); shares are their ratios.
    expect(i.weight).toBeCloseTo(2 * (1 - 0.1), 1);
    expect(b.weight).toBeLessThan(2 * (1 - 0.3 - 0.38)); // planned for at least the last background
    expect(b.parts.weightParts!.plannedBackground).toBeGreaterThan(0.68);
    expect(i.parts.estimatedCapacity).toBeCloseTo((2 * 0.9) / 0.004, -1);
    expect(i.parts.weightParts!.costPerRequest).toBeCloseTo(0.004, 6);
    // Holt sees the ramp: the predicted utilisation (upper, 3 ahead) is above the last value.
    expect(b.parts.predictedUtilization).toBeGreaterThan(0.89);
    expect(['last', 'ewma', 'holt', 'seasonal']).toContain(b.parts.forecaster);
    expect(b.parts.horizon).toEqual({ seconds: config.scoreHorizon, nanos: 0 });
    expect(b.parts.utilizationFactor).toBeLessThan(i.parts.utilizationFactor);

    const countOf = () =>
      scorer
        .forecastFor('busy')!
        .metrics[0]!.errors.find((e) => e.forecaster === 'ewma' && e.horizon === 1)!.count;
    const before = countOf();
    await scorer.assess([busy, idle, other], states, now + 1000); // no new samples
    expect(countOf()).toBe(before);
    push(busy, now + 2000, { cpu: 0.9 });
    await scorer.assess([busy, idle, other], states, now + 2000);
    expect(countOf()).toBe(before + 1);
  });

  test('stale endpoints get score 0 and weight 0; the others share the traffic', async () => {
    const scorer = new ForecastScorer({ config, logger });
    const a = record('a');
    const b = record('b');
    let now = 1_700_000_000_000;
    for (let t = 0; t < 5; t++) {
      now += 1000;
      push(a, now, { cpu: 0.2 });
      push(b, now, { cpu: 0.2 });
    }
    const out = await scorer.assess(
      [a, b],
      new Map([
        ['a', ACTIVE],
        ['b', STALE],
      ]),
      now,
    );
    expect(out.get('b')).toMatchObject({ score: 0, weight: 0 });
    expect(out.get('a')!.weight).toBeGreaterThan(0);
    expect(out.get('a')!.score).toBeGreaterThan(0.5);
  });

  test('GetForecast data: every metric, 1..H median and upper, the selected forecaster, recent errors', async () => {
    const scorer = new ForecastScorer({ config, logger });
    const r = record('e');
    let now = 1_700_000_000_000;
    for (let t = 0; t < 30; t++) {
      now += 1000;
      push(r, now, { cpu: 0.4 + 0.1 * Math.sin(t / 3), processCpu: 0.1 });
      await scorer.assess([r], new Map([['e', ACTIVE]]), now);
    }
    const f = scorer.forecastFor('e')!;
    expect(f.endpointId).toBe('e');
    expect(f.metrics.map((m) => m.metric)).toEqual([
      Metric.METRIC_CPU,
      Metric.METRIC_MEMORY,
      Metric.METRIC_NETWORK,
      Metric.METRIC_RESPONSE_TIME,
      Metric.METRIC_BACKGROUND,
    ]);
    // The background is measured: host CPU − own CPU.
    expect(f.metrics[4]!.median[0]).toBeCloseTo(0.3 + 0.1 * Math.sin(29 / 3), 1);
    const cpu = f.metrics[0]!;
    expect(cpu.median).toHaveLength(config.maxHorizon);
    cpu.median.forEach((m, h) => expect(cpu.upper[h]!).toBeGreaterThanOrEqual(m));
    expect(cpu.errors.find((e) => e.forecaster === 'holt' && e.horizon === 5)!.count).toBe(30 - 5);
    expect(f.metrics[2]!.median[0]).toBeCloseTo(1e-3, 9); // network over link capacity
    expect(scorer.forecastFor('nope')).toBeUndefined();
  });

  test('/metrics: rolling MAE and MASE per metric, forecaster and horizon, not per endpoint', async () => {
    const scorer = new ForecastScorer({ config, logger });
    const registry = new Registry();
    registerForecastMetrics(registry, scorer);
    const eps = Array.from({ length: 20 }, (_, i) => record(`e${i}`));
    const states = new Map(eps.map((e) => [e.id, ACTIVE]));
    let now = 1_700_000_000_000;
    for (let t = 0; t < 20; t++) {
      now += 1000;
      eps.forEach((e, i) => push(e, now, { cpu: 0.3 + 0.01 * ((t * (i + 3)) % 7) }));
      await scorer.assess(eps, states, now);
    }
    const text = await registry.metrics();
    expect(text).toMatch(
      /augur_forecast_mase\{metric="cpu",forecaster="ewma",horizon="3"\} [0-9.]+/,
    );
    const selected = text
      .split('\n')
      .filter((l) => l.startsWith('augur_forecast_selected_endpoints{'))
      .map((l) => Number(l.split(' ')[1]));
    expect(selected.reduce((a, b) => a + b, 0)).toBe(20);
    expect(text).not.toMatch(/e1[0-9]/); // no endpoint label
    const maseLines = text.split('\n').filter((l) => l.startsWith('augur_forecast_mase{'));
    // One line per metric, forecaster and horizon: the three baselines on four metrics (the
    // background needs the endpoint's own CPU, which these samples lack), and the seasonal
    // forecaster on the CPU, whose 7-step cycle the endpoints whose search phase (their bank
    // slot) fell within the 20 ticks have found.
    expect(maseLines.filter((l) => l.includes('forecaster="seasonal"'))).toHaveLength(
      config.maxHorizon,
    );
    expect(maseLines.length).toBe((4 * 3 + 1) * config.maxHorizon);
  });
});
