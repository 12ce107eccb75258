/**
 * bench:forecast — the walk-forward evaluation (`augur forecast eval`) over every
 * NAB trace in data/traces/nab (vendored, MIT), plus the LSTM worker's inference time
 * for 10,000 endpoints in one tick and the main thread's event-loop lag while the
 * model trains.
 *
 *   npm run bench:forecast            # every trace
 *   BENCH_TRACES=3 npm run bench:forecast   # the first 3 (while developing)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseCsv } from '../src/common/csv.js';
import {
  evaluate,
  SELECTED,
  type EvaluationReport,
  type SeriesInput,
} from '../src/lps/forecast/evaluate.js';
import { LstmWorker } from '../src/lps/forecast/lstm/client.js';
import { LSTM_FEATURES, LSTM_TARGETS } from '../src/lps/forecast/lstm/online.js';
import { LstmWalkForward } from '../src/lps/forecast/lstm/walk-forward.js';
import { forecastConfigSchema } from '../src/lps/forecast/config.js';
import { markdownTable, quantile, writeBenchmarkSection } from './report.js';

const LSTM_DEFAULTS = forecastConfigSchema.parse({}).lstm;
const TRACES = fileURLToPath(new URL('../data/traces/nab/', import.meta.url));
const HORIZONS = [1, 3, 5];
const BASELINE_NAMES = ['last', 'ewma', 'holt'];
const f3 = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : '-');

function loadTraces(): SeriesInput[] {
  const files = readdirSync(TRACES)
    .filter((f) => f.endsWith('.csv'))
    .sort();
  const limit = Number(process.env.BENCH_TRACES ?? files.length);
  return files.slice(0, limit).map((f) => {
    const csv = parseCsv(readFileSync(TRACES + f, 'utf8'));
    return {
      name: f.replace(/\.csv$/, ''),
      values: csv.series[0]!.values,
      timestamps: csv.timestamps,
    };
  });
}

function mase(
  report: EvaluationReport,
  series: string | undefined,
  forecaster: string,
  h: number,
): number {
  const scores = series ? report.series.find((s) => s.name === series)!.scores : report.mean;
  return scores.find((s) => s.forecaster === forecaster && s.horizon === h)!.mase;
}

async function evaluation(): Promise<{ body: string; ms: number }> {
  const series = loadTraces();
  const started = Date.now();
  let fits = 0;
  const report = await evaluate(series, {
    horizons: HORIZONS,
    batch: [
      new LstmWalkForward({
        firstFit: 1008, // 3.5 days of 5-minute samples
        refitEvery: 1000,
        initialEpochs: 16,
        fineTuneEpochs: 2,
        maxTrainWindows: 4096,
        onFit: (f) => {
          fits++;
          process.stderr.write(
            `lstm fit at step ${f.step}: loss ${f.loss.toFixed(4)}, ${f.windows} windows, ${f.ms} ms\n`,
          );
        },
      }),
    ],
  });
  const ms = Date.now() - started;
  const names = report.forecasters;
  const meanRows = names.map((f) => [f, ...HORIZONS.map((h) => f3(mase(report, undefined, f, h)))]);
  const lines: string[] = [];
  lines.push(
    `${series.length} traces (${series.reduce((a, s) => a + s.values.length, 0)} samples), walk-forward, ` +
      `scored from step 1008 of each trace; the LSTM (one model shared by all traces, window ${LSTM_DEFAULTS.window}, ${LSTM_DEFAULTS.units} units, ` +
      `inputs and outputs relative to an EWMA anchor, scaled per trace by its mean absolute one-step change) is fitted at step 1008 on everything before it and fine-tuned every 1000 steps ` +
      `(${fits} fits). Evaluation took ${(ms / 1000).toFixed(1)} s.`,
    '',
    '### Mean MASE over traces (lower is better; < 1 beats the last value at h=1)',
    '',
    markdownTable(['forecaster', ...HORIZONS.map((h) => `h=${h}`)], meanRows),
    '',
  );
  const verdicts: string[] = [];
  for (const h of HORIZONS) {
    const bestBaseline = Math.min(...BASELINE_NAMES.map((b) => mase(report, undefined, b, h)));
    const sel = mase(report, undefined, SELECTED, h);
    verdicts.push(
      `h=${h}: selected ${f3(sel)} vs best baseline ${f3(bestBaseline)} → ${sel <= bestBaseline ? 'met' : 'NOT met'}`,
    );
  }
  lines.push(
    `Target "selected no worse than the best baseline at every horizon": ${verdicts.join('; ')}.`,
    '',
  );
  const wins: string[] = [];
  for (const h of [3, 5]) {
    const beat = report.series.filter(
      (s) => mase(report, s.name, 'lstm', h) < mase(report, s.name, 'ewma', h),
    );
    const lost = report.series.filter((s) => !beat.includes(s)).map((s) => s.name);
    wins.push(
      `h=${h}: LSTM beats EWMA on ${beat.length}/${report.series.length} traces (loses on: ${lost.join(', ') || 'none'})`,
    );
  }
  lines.push(
    `Target "LSTM alone beats EWMA on most traces at h=3 and h=5": ${wins.join('; ')}.`,
    '',
  );
  for (const h of HORIZONS) {
    lines.push(`### MASE per trace, h=${h}`, '');
    lines.push(
      markdownTable(
        ['trace', 'n', ...names],
        report.series.map((s) => [
          s.name,
          s.length,
          ...names.map((f) => f3(mase(report, s.name, f, h))),
        ]),
      ),
      '',
    );
  }
  const picks = report.series.map((s) => {
    const c = s.picks[3]!;
    const total = Object.values(c).reduce((a, b) => a + b, 0) || 1;
    return [
      s.name,
      ...['last', 'ewma', 'holt', 'lstm'].map((f) => `${Math.round((100 * (c[f] ?? 0)) / total)}%`),
    ];
  });
  lines.push('### How often the selection used each forecaster (h=3)', '');
  lines.push(markdownTable(['trace', 'last', 'ewma', 'holt', 'lstm'], picks), '');
  return { body: lines.join('\n'), ms };
}

interface WorkerRun {
  niceness: number;
  backend: string;
  infer: number[];
  lagP99: number;
  idleP99: number;
  lagMax: number;
  during: number[];
  fitWindows: number;
  fitMs: number;
}

/**
 * One tick's inference for 10,000 endpoints, then the main thread's event-loop
 * delay while the worker trains (with a tick's inference for 1,000 endpoints
 * requested every second, as the LPS does).
 */
async function workerRun(niceness: number): Promise<WorkerRun> {
  const c = forecastConfigSchema.parse({}).lstm;
  const spec = {
    window: c.window,
    targets: LSTM_TARGETS,
    features: LSTM_FEATURES,
    horizon: 5,
    units: c.units,
    upperQuantile: c.upperQuantile,
    learningRate: c.learningRate,
    seed: 1,
  };
  const worker = await LstmWorker.start(
    spec,
    { maxRows: 256, maxTrainWindows: c.maxTrainWindows, batchSize: c.batchSize },
    { niceness },
  );
  try {
    const N = 10_000;
    const rowsPer = 64;
    const batch = Array.from({ length: N }, (_, e) => {
      const r = new Float32Array(rowsPer * LSTM_FEATURES);
      for (let t = 0; t < rowsPer; t++) {
        const base = t * LSTM_FEATURES;
        r[base] = 0.4 + 0.2 * Math.sin((t + e) / 7);
        r[base + 1] = 0.5;
        r[base + 2] = 0.01 * ((t * e) % 13);
        r[base + 3] = 0.02 + 0.005 * Math.cos(t / 5);
        r[base + 4] = Math.sin(t / 10);
        r[base + 5] = Math.cos(t / 10);
      }
      return { id: `ep${e}`, rows: r };
    });
    await worker.append(batch);
    await worker.fit(1);
    const ids = batch.map((b) => ({ id: b.id }));
    const infer: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await worker.predict(ids);
      infer.push(performance.now() - t);
    }
    const idle = monitorEventLoopDelay({ resolution: 5 });
    idle.enable();
    await new Promise((r) => setTimeout(r, 3000));
    idle.disable();
    const lag = monitorEventLoopDelay({ resolution: 5 });
    lag.enable();
    const fitStarted = performance.now();
    const during: number[] = [];
    let done = false;
    const fit = worker.fit(c.initialEpochs).then((r) => ((done = true), r));
    while (!done) {
      const t = performance.now();
      await worker.predict(ids.slice(0, 1000));
      during.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 1000));
    }
    const fitResult = await fit;
    lag.disable();
    return {
      niceness,
      backend: worker.backend,
      infer,
      lagP99: lag.percentile(99) / 1e6,
      idleP99: idle.percentile(99) / 1e6,
      lagMax: lag.max / 1e6,
      during,
      fitWindows: fitResult.windows,
      fitMs: performance.now() - fitStarted,
    };
  } finally {
    await worker.close();
  }
}

async function workerFigures(): Promise<string> {
  const c = forecastConfigSchema.parse({}).lstm;
  const runs = [await workerRun(0), await workerRun(c.niceness)];
  const cell = (f: (r: WorkerRun) => string) => runs.map(f);
  const rows = [
    [
      'inference, 10,000 endpoints, one batch (median of 5)',
      ...cell((r) => `${quantile(r.infer, 0.5).toFixed(0)} ms`),
      '< 250 ms',
    ],
    [
      'inference, 10,000 endpoints, worst of 5',
      ...cell((r) => `${Math.max(...r.infer).toFixed(0)} ms`),
      '',
    ],
    [
      `main-thread event-loop delay p99 while the worker trains (${c.initialEpochs} epochs)`,
      ...cell(
        (r) =>
          `${r.lagP99.toFixed(1)} ms (fit ${(r.fitMs / 1000).toFixed(0)} s, ${r.fitWindows} windows)`,
      ),
      '< 20 ms',
    ],
    [
      'main-thread event-loop delay p99, idle, same process (reference)',
      ...cell((r) => `${r.idleP99.toFixed(1)} ms`),
      '',
    ],
    [
      'main-thread event-loop delay max while training',
      ...cell((r) => `${r.lagMax.toFixed(1)} ms`),
      '',
    ],
    [
      'inference for 1,000 endpoints while training (p50 / max round trip)',
      ...cell(
        (r) => `${quantile(r.during, 0.5).toFixed(0)} / ${Math.max(...r.during).toFixed(0)} ms`,
      ),
      '',
    ],
  ];
  return [
    `### The LSTM worker (${runs[0]!.backend}; window ${c.window}, ${c.units} units, ${LSTM_TARGETS} metrics × 5 horizons × 2 quantiles)`,
    '',
    markdownTable(
      ['figure', 'worker at nice 0', `worker at nice ${c.niceness} (default)`, 'target'],
      rows,
    ),
    '',
    'The worker thread runs at a lower priority by default (`forecast.lstm.niceness`), so on a busy host the ' +
      'serving thread wins the CPU; the price is slower inference and training when the CPU is contended. ' +
      'Inference requested while training waits for the batch in progress (the worker yields between batches).',
  ].join('\n');
}

const started = Date.now();
const evalPart = await evaluation();
const workerPart = await workerFigures();
const total = ((Date.now() - started) / 1000).toFixed(0);
writeBenchmarkSection(
  'Forecasting (bench:forecast)',
  'npm run bench:forecast',
  `${evalPart.body}\n${workerPart}\n\nWhole benchmark: ${total} s on a shared, busy machine (load average ${(await import('node:os')).loadavg()[0]!.toFixed(1)} at the end).\n`,
);
