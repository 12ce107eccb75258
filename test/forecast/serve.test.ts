import * as grpc from '@grpc/grpc-js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
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

  test('the LSTM starts once there is history, is saved in --data-dir on stop, and is restored on restart', async () => {
    const flags = {
      lps: { scoreInterval: 0.05 },
      forecast: {
        lstm: { minHistory: 20, window: 4, units: 4, initialEpochs: 1, batchSize: 16, niceness: 0 },
      },
    };
    plane = await startTestPlane(flags);
    const dataDir = plane.dataDir;
    const agent = new RawAgentStream(plane.grpcAddress);
    closers.push(() => agent.close());
    agent.hello({ endpointId: 'ep-l' });
    for (let seq = 1; seq <= 40; seq++) {
      agent.sample({ sequence: seq, cpuUsage: 0.3 + 0.1 * Math.sin(seq / 3) });
      await new Promise((r) => setTimeout(r, 20));
    }
    const ready = async (p: TestPlane) =>
      /^augur_forecast_lstm_ready 1$/m.test(await (await fetch(`${p.httpUrl}/metrics`)).text());
    const first = plane;
    await waitFor(() => ready(first), 40_000, 'the first LSTM fit');
    for (const c of closers.splice(0)) c();
    await plane.stop(); // keeps the data dir
    expect(existsSync(join(dataDir, 'forecast', 'lstm.json'))).toBe(true);

    // minHistory out of reach: after the restart the LSTM can only be ready by restoring.
    const noFit = { ...flags, forecast: { lstm: { ...flags.forecast.lstm, minHistory: 100_000 } } };
    plane = await startTestPlane(noFit, dataDir);
    const second = plane;
    // Restored at start, before any endpoint has reported again.
    await waitFor(() => ready(second), 20_000, 'the restored LSTM');
  }, 90_000);
});
