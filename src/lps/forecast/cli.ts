import type { Command } from 'commander';
import { AugurError } from '../../common/errors.js';
import { selectColumn, type ParsedCsv } from '../../common/csv.js';
import type { SeriesInput } from './evaluate.js';

interface EvalFlags {
  csv: string;
  column?: string;
  horizons: string;
  json?: boolean;
  lstm: boolean;
}

export function parseHorizons(text: string): number[] {
  const hs = text.split(',').map((s) => s.trim());
  const out = hs.map((s) => Number(s));
  if (out.some((h, i) => !Number.isInteger(h) || h < 1 || h > 32 || hs[i] === ''))
    throw new AugurError(
      'BAD_HORIZONS',
      `--horizons must be integers in 1..32 separated by commas, got '${text}'`,
    );
  return [...new Set(out)].sort((a, b) => a - b);
}

/**
 * The series to evaluate: every value column, or the one `--column` names (by
 * name, or by 1-based position in the file; a time or index column only by name).
 */
export function pickSeries(
  csv: ParsedCsv,
  column: string | undefined,
  source = 'the CSV',
): SeriesInput[] {
  const withTime = (s: { name: string; values: Float64Array }): SeriesInput => ({
    name: s.name,
    values: s.values,
    ...(csv.timestamps ? { timestamps: csv.timestamps } : {}),
  });
  if (column === undefined) return csv.series.map(withTime);
  return [withTime(selectColumn(csv, column, source))];
}

export function registerForecastCommand(program: Command): void {
  const forecast = program.command('forecast').description('forecasting tools');
  forecast
    .command('eval')
    .description(
      'walk-forward evaluation of every forecaster on a CSV (no look-ahead): MAE and MASE per horizon',
    )
    .requiredOption(
      '--csv <file>',
      'CSV (.gz too) with an optional timestamp column and value columns, "," or ";"',
    )
    .option(
      '--column <name|index>',
      'evaluate only this column, by name or 1-based position (default: every value column)',
    )
    .option('--horizons <list>', 'horizons in samples, comma separated', '1,3,5')
    .option('--json', 'print the report as JSON')
    .option(
      '--no-lstm',
      'skip the LSTM (it trains in a worker thread: about a minute per 10,000 values)',
    )
    .action(async (flags: EvalFlags) => {
      const horizons = parseHorizons(flags.horizons);
      // Loaded here: TensorFlow.js must not weigh on every other augur command.
      const [{ readCsvFile }, { evaluate }, { LstmWalkForward }, { formatReport }] =
        await Promise.all([
          import('../../common/csv.js'),
          import('./evaluate.js'),
          import('./lstm/walk-forward.js'),
          import('./report-format.js'),
        ]);
      const csv = readCsvFile(flags.csv);
      const shown = csv.problems.slice(0, 20);
      for (const p of shown) process.stderr.write(`${flags.csv}:${p.line}: ${p.message}\n`);
      if (csv.problems.length > shown.length)
        process.stderr.write(
          `${flags.csv}: ${csv.problems.length - shown.length} more problems not shown\n`,
        );
      const series = pickSeries(csv, flags.column, flags.csv);
      const report = await evaluate(series, {
        horizons,
        batch: flags.lstm ? [new LstmWalkForward({ initialEpochs: 16, fineTuneEpochs: 2 })] : [],
      });
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ ...report, problems: csv.problems }, null, 2)}\n`);
      } else {
        process.stdout.write(`${formatReport(report)}\n`);
      }
    });
}
