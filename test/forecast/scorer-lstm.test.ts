import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, test } from 'vitest';
import { forecastConfigSchema } from '../../src/lps/forecast/config.js';
import { timeOfDay } from '../../src/lps/forecast/lstm/features.js';
import { LSTM_FEATURES, LSTM_TARGETS, OnlineLstm } from '../../src/lps/forecast/lstm/online.js';
import { FORECAST_METRICS, ForecastScorer } from '../../src/lps/forecast/scorer.js';
import { ACTIVE, push, record } from './scorer-support.js';

const dir = mkdtempSync(join(tmpdir(), 'augur-scorer-lstm-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ForecastScorer with the LSTM', () => {
  // The backfill in one message, and in one message per endpoint (each endpoint's 40 rows
  // are 280 floats, more than a chunk of 100).
  test.for<{ how: string; backfillChunk: number | undefined }>([
    { how: 'in one message', backfillChunk: undefined },
    { how: 'a message per endpoint', backfillChunk: 100 },
  ])(
    'starts the worker once there is history, backfills it ($how), fits, and scores the LSTM beside the baselines',
    { timeout: 60_000 },
    async ({ backfillChunk }) => {
      const config = forecastConfigSchema.parse({
        maxHorizon: 3,
        scoreHorizon: 2,
        lstm: {
          window: 4,
          units: 4,
          minHistory: 40,
          initialEpochs: 2,
          fineTuneEvery: 10_000,
          maxTrainWindows: 256,
          batchSize: 32,
          inferenceTimeoutMs: 20_000,
          niceness: 0,
        },
      });
      const logger = pino({ level: 'silent' });
      const file = join(dir, `lstm-${backfillChunk ?? 'default'}.json`);
      let starts = 0;
      const scorer = new ForecastScorer({
        config,
        logger,
        backfillChunk,
        startLstm: () => {
          starts++;
          return OnlineLstm.start({
            config: config.lstm,
            maxHorizon: config.maxHorizon,
            file,
            logger,
          });
        },
      });
      const eps = [record('a'), record('b')];
      const states = new Map(eps.map((e) => [e.id, ACTIVE]));
      let now = 1_700_000_000_000;
      /** `samples` new samples per endpoint (an agent that sent a batch), then one scoring pass. */
      const tick = async (samples = 1) => {
        for (let k = 0; k < samples; k++) {
          now += 1000;
          const t = now / 1000;
          eps.forEach((e, i) =>
            push(e, now, { cpu: 0.4 + 0.2 * Math.sin(t / 4 + i) + ((t * 7) % 5) / 100 }),
          );
        }
        return scorer.assess(eps, states, now);
      };
      /**
       * What the worker holds (saved after each fit and on shutdown: each series' newest window +
       * horizon rows) is the ring's newest samples, oldest first: metrics in FORECAST_METRICS order,
       * then the time of day.
       */
      const expectRowsAsRing = (): void => {
        const saved = JSON.parse(readFileSync(file, 'utf8')) as {
          series: Record<string, { rows: number; data: string }>;
        };
        for (const e of eps) {
          const { rows, data } = saved.series[e.id]!;
          const b = Buffer.from(data, 'base64');
          const got = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
          expect(rows).toBe(config.lstm.window + config.maxHorizon);
          for (let i = 0; i < rows; i++) {
            const sample = e.series.get(rows - 1 - i);
            const row = got.subarray(i * LSTM_FEATURES, (i + 1) * LSTM_FEATURES);
            expect(row[FORECAST_METRICS.indexOf('cpu')]).toBe(Math.fround(sample.cpu));
            const [sin, cos] = timeOfDay(sample.timestamp);
            expect([row[LSTM_TARGETS], row[LSTM_TARGETS + 1]]).toEqual([
              Math.fround(sin),
              Math.fround(cos),
            ]);
          }
        }
      };
      try {
        for (let i = 0; i < 39; i++) await tick();
        expect(starts).toBe(0); // nothing to learn yet: no worker
        await tick(); // 40 samples: the worker starts
        expect(starts).toBe(1);
        const lstm = (await scorer.lstmStarted())!;
        expect(lstm).toBeDefined();
        await tick(); // backfill + first fit starts
        await lstm.settled();
        expect(lstm.ready).toBe(true);
        expectRowsAsRing(); // the backfill: many rows per endpoint
        expect(lstm.lastFitResult!.windows).toBeGreaterThan(2 * 30); // both endpoints' backfilled history
        // Now and then three samples at once: each reaches the LSTM, in order.
        for (let i = 0; i < 8; i++) await tick(i % 3 === 1 ? 3 : 1);
        const errors = scorer.forecastFor('a')!.metrics[0]!.errors;
        const lstmErr = errors.find((e) => e.forecaster === 'lstm' && e.horizon === 1);
        expect(lstmErr?.count).toBeGreaterThan(0);
        expect(Number.isFinite(lstmErr!.mase)).toBe(true);
        expect(existsSync(file)).toBe(true); // saved after the fit
      } finally {
        await scorer.close();
      }
      expect(starts).toBe(1);

      expectRowsAsRing();
    },
  );
});
