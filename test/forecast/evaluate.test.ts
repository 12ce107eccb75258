import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { Command } from 'commander';
import { registerForecastCommand } from '../../src/lps/forecast/cli.js';
import { parseCsv } from '../../src/common/csv.js';
import {
  evaluate,
  selectWalkForward,
  walkForward,
  type BatchWalkForward,
  type ForecastMatrix,
} from '../../src/lps/forecast/evaluate.js';
import { BASELINES } from '../../src/lps/forecast/baselines.js';
import { formatReport } from '../../src/lps/forecast/report-format.js';
import { LstmWalkForward } from '../../src/lps/forecast/lstm/walk-forward.js';
import type { Forecaster } from '../../src/lps/forecast/forecaster.js';

const series = Array.from(
  { length: 400 },
  (_, i) => 0.5 + 0.3 * Math.sin(i / 20) + ((i * 7919) % 13) / 100,
);

describe('walk-forward evaluator', () => {
  test('never looks ahead: changing the future leaves every earlier forecast (and selection) unchanged', () => {
    const k = 250;
    const changed = series.map((v, i) => (i >= k ? v * 3 + 1 : v));
    const H = 5;
    const before = new Map<string, ForecastMatrix>();
    const after = new Map<string, ForecastMatrix>();
    for (const [name, f] of Object.entries(BASELINES)) {
      before.set(name, walkForward(series, f, H));
      after.set(name, walkForward(changed, f, H));
    }
    const selBefore = selectWalkForward(series, before, H).selected;
    const selAfter = selectWalkForward(changed, after, H).selected;
    for (const [name, m] of before) {
      // Row t is made after observing values[t]: rows before k see only unchanged values.
      expect(Array.from(m.subarray(0, k * H))).toEqual(
        Array.from(after.get(name)!.subarray(0, k * H)),
      );
      // ...and row k does see the change, so the comparison can fail.
      expect(m[k * H]).not.toEqual(after.get(name)![k * H]);
    }
    expect(Array.from(selBefore.subarray(0, k * H))).toEqual(
      Array.from(selAfter.subarray(0, k * H)),
    );
  });

  test('a forecaster that peeks at the value it forecasts would be caught by the same check', () => {
    // The check above, applied to an evaluator that feeds value t+1 before forecasting t+1.
    const H = 1;
    const peeking = (values: number[]): Float64Array => {
      const out = new Float64Array(values.length).fill(NaN);
      const f = BASELINES.last!();
      for (let t = 0; t + 1 < values.length; t++) {
        f.observe(values[t + 1]!);
        out[t * H] = f.forecast(1)!.median;
      }
      return out;
    };
    const k = 250;
    const changed = series.map((v, i) => (i >= k ? v * 3 + 1 : v));
    expect(Array.from(peeking(series).subarray(0, k))).not.toEqual(
      Array.from(peeking(changed).subarray(0, k)),
    );
  });

  test('forecasts are made only from observed values: a spy sees exactly t+1 values at row t', () => {
    const seen: number[] = [];
    let count = 0;
    const spy = (): Forecaster => ({
      name: 'spy',
      observe: () => void count++,
      forecast: () => {
        seen.push(count);
        return { median: 0, upper: 0 };
      },
    });
    walkForward([1, 2, 3, 4], spy, 2);
    expect(seen).toEqual([1, 1, 2, 2, 3, 3, 4, 4]);
  });

  test('MASE of the last value at h=1 is 1; all forecasters share one scored span', async () => {
    const slow: BatchWalkForward = {
      name: 'late',
      // Forecasts only from step 100 on (like an LSTM waiting for history): ewma's forecast.
      run: async (ss, H) =>
        ss.map((s) => {
          const m = walkForward(s.values, BASELINES.ewma!, H);
          m.fill(NaN, 0, 100 * H);
          return m;
        }),
    };
    const report = await evaluate([{ name: 's', values: series }], {
      horizons: [1, 3],
      batch: [slow],
    });
    const s = report.series[0]!;
    expect(s.scoredFrom).toBe(100);
    const at = (f: string, h: number) =>
      s.scores.find((x) => x.forecaster === f && x.horizon === h)!;
    expect(at('last', 1).mase).toBeCloseTo(1, 12);
    expect(at('late', 3).mae).toBeCloseTo(at('ewma', 3).mae, 12);
    expect(at('late', 3).count).toBe(at('last', 3).count);
    expect(report.forecasters).toEqual(['last', 'ewma', 'holt', 'late', 'selected']);
  });
});

describe('CSV input', () => {
  test('timestamp + value with a header and commas', () => {
    const csv = parseCsv('timestamp,value\n2014-02-14 14:30:00,0.132\n2014-02-14 14:35:00,0.134\n');
    expect(csv.hasHeader).toBe(true);
    expect(csv.timestampColumn).toBe('timestamp');
    expect(csv.timestamps![1]! - csv.timestamps![0]!).toBe(300_000);
    expect(Array.from(csv.series[0]!.values)).toEqual([0.132, 0.134]);
  });

  test('semicolons, decimal commas, several value columns, no header, epoch seconds', () => {
    const csv = parseCsv('1700000000;0,5;12\n1700000060;0,6;13\n');
    expect(csv.delimiter).toBe(';');
    expect(csv.hasHeader).toBe(false);
    expect(csv.series.map((s) => Array.from(s.values))).toEqual([
      [0.5, 0.6],
      [12, 13],
    ]);
    expect(csv.timestamps![0]).toBe(1_700_000_000_000);
  });

  test('says what it could not parse, with line numbers', () => {
    const csv = parseCsv(
      'time,cpu,mem\n2024-01-01T00:00:00Z,0.5,0.1\n2024-01-01T00:01:00Z,abc,0.2\n1,2\n',
    );
    expect(csv.problems).toEqual([
      { line: 3, message: "cpu: 'abc' is not a number: treated as missing" },
      { line: 4, message: 'expected 3 cells, found 2: line skipped' },
    ]);
    expect(Number.isNaN(csv.series[0]!.values[1]!)).toBe(true);
  });

  test('an empty file or one without numbers is an error that says so', () => {
    expect(() => parseCsv('\n\n')).toThrow(/no data lines/);
    expect(() => parseCsv('name,city\nann,paris\n')).toThrow(/no value column with numbers/);
  });
});

describe('augur forecast eval', () => {
  const dir = mkdtempSync(join(tmpdir(), 'augur-eval-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs `augur forecast eval ARGS` in this process and returns what it printed. */
  async function evalCommand(args: string[]): Promise<string> {
    let out = '';
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => (
      (out += chunk),
      true
    )) as typeof process.stdout.write;
    try {
      const program = new Command('augur').exitOverride();
      registerForecastCommand(program);
      await program.parseAsync(['node', 'augur', 'forecast', 'eval', ...args]);
    } finally {
      process.stdout.write = write;
    }
    return out;
  }

  test('--json over a CSV with two columns and --column', async () => {
    const file = join(dir, 'two.csv');
    const lines = ['timestamp;a;b'];
    series.forEach((v, i) =>
      lines.push(`${new Date(1.7e12 + i * 60_000).toISOString()};${v};${1 - v}`),
    );
    writeFileSync(file, lines.join('\n'));
    const out = await evalCommand([
      '--csv',
      file,
      '--column',
      'b',
      '--horizons',
      '1,3',
      '--json',
      '--no-lstm',
    ]);
    const report = JSON.parse(out) as { series: Array<{ name: string }>; horizons: number[] };
    expect(report.series.map((s) => s.name)).toEqual(['b']);
    expect(report.horizons).toEqual([1, 3]);
  });

  test('--column takes a 1-based position too; a time column only by name, said so', async () => {
    const file = join(dir, 'steps.csv');
    writeFileSync(
      file,
      ['step,t_seconds,cpu', ...series.map((v, i) => `${i + 1},${i * 300},${v}`)].join('\n'),
    );
    const run = (column: string) =>
      evalCommand(['--csv', file, '--column', column, '--json', '--no-lstm']);
    const byIndex = JSON.parse(await run('3')) as { series: Array<{ name: string }> };
    expect(byIndex.series.map((s) => s.name)).toEqual(['cpu']);
    await expect(run('2')).rejects.toThrow(
      /column 2 is "t_seconds", an index column, not a series/,
    );
    const byName = JSON.parse(await run('t_seconds')) as { series: Array<{ name: string }> };
    expect(byName.series.map((s) => s.name)).toEqual(['t_seconds']);
  });

  test('a batch forecaster with nothing to say on a series is reported missing, with why; the others are scored', async () => {
    const silent: BatchWalkForward = {
      name: 'lstm',
      run: async (ss, H) => ss.map((x) => new Float64Array(x.values.length * H).fill(NaN)),
      unforecastable: (ss) => ss.map(() => 'too short for it'),
    };
    const report = await evaluate([{ name: 's', values: series }], { batch: [silent] });
    const s0 = report.series[0]!;
    expect(s0.missing).toEqual([{ forecaster: 'lstm', reason: 'too short for it' }]);
    expect(
      s0.scores.find((x) => x.forecaster === 'ewma' && x.horizon === 1)!.count,
    ).toBeGreaterThan(300);
    expect(formatReport(report)).toContain('lstm: no forecast: too short for it');
  });

  test('the LSTM says when a series is shorter than its first fit', () => {
    const lstm = new LstmWalkForward();
    const why = lstm.unforecastable(
      [
        { name: 'long', values: new Float64Array(4000) },
        { name: 'short', values: new Float64Array(288) },
      ],
      5,
    );
    expect(why[0]).toBeUndefined();
    expect(why[1]).toMatch(/288 values; the LSTM is first fitted at value 1000/);
  });
});
