import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, test } from 'vitest';
import {
  LoadPredictionClient,
  Metric,
  type GetForecastResponse,
} from '../../src/gen/augur/v1/load_prediction.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';
import { RawAgentStream } from '../support/raw-agent.js';

let plane: TestPlane | undefined;
const closers: Array<() => void> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await plane?.dispose();
  plane = undefined;
});

describe('forecasting in augur serve', () => {
  test('GetForecast over gRPC: forecasts, bounds, forecaster and errors of a reporting endpoint; gauges in /metrics', async () => {
    plane = await startTestPlane({ lps: { scoreInterval: 0.05 } });
    const agent = new RawAgentStream(plane.grpcAddress);
    closers.push(() => agent.close());
    agent.hello({ endpointId: 'ep-f' });
    for (let seq = 1; seq <= 12; seq++) {
      agent.sample({ sequence: seq, cpuUsage: 0.2 + 0.02 * seq });
      await new Promise((r) => setTimeout(r, 60)); // one sample per scoring tick or so
    }
    const client = new LoadPredictionClient(plane.grpcAddress, grpc.credentials.createInsecure());
    closers.push(() => client.close());
    const get = () =>
      new Promise<GetForecastResponse | undefined>((resolve) =>
        client.getForecast({ endpointId: 'ep-f' }, (err, res) => resolve(err ? undefined : res)),
      );
    const forecast = await waitFor(
      async () => {
        const f = await get();
        const cpu = f?.metrics.find((m) => m.metric === Metric.METRIC_CPU);
        return cpu && cpu.errors.some((e) => e.count > 0) ? f : undefined;
      },
      10_000,
      'a forecast with scored errors',
    );
    const cpu = forecast.metrics.find((m) => m.metric === Metric.METRIC_CPU)!;
    expect(cpu.median).toHaveLength(plane.config.forecast.maxHorizon);
    expect(['last', 'ewma', 'holt', 'lstm']).toContain(cpu.forecaster);
    cpu.median.forEach((m, i) => expect(cpu.upper[i]!).toBeGreaterThanOrEqual(m));
    const metrics = await (await fetch(`${plane.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/augur_forecast_mase\{metric="cpu",forecaster="\w+",horizon="1"\}/);
  }, 30_000);
});
