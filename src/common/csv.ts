import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { AugurError } from './errors.js';

/** A line of a CSV that could not be used, and why. */
export interface CsvProblem {
  /** 1-based line number in the file. */
  line: number;
  message: string;
}

export interface CsvSeries {
  name: string;
  /** One value per data row; NaN where the cell was empty or not a number. */
  values: Float64Array;
}

/**
 * What a column holds: a series of values, the time of each row, or a row
 * counter (`step`, `t_seconds`, ...): the last two are not series, and a caller
 * gets them only by naming them.
 */
export type ColumnRole = 'value' | 'time' | 'index';

export interface CsvColumn extends CsvSeries {
  /** 1-based position in the file. */
  position: number;
  role: ColumnRole;
}

export interface ParsedCsv {
  delimiter: ',' | ';';
  hasHeader: boolean;
  /** Name of the timestamp column, if one was found. */
  timestampColumn?: string;
  /** ms since epoch per data row (NaN where unparseable), if a timestamp column was found. */
  timestamps?: Float64Array;
  /** The value columns (role `value`) that hold at least one number. */
  series: CsvSeries[];
  /** Every column with at least one number, in file order, with its role. */
  columns: CsvColumn[];
  problems: CsvProblem[];
}

const TIME_NAMES = /^(timestamp|time|date|datetime|ts|t)( \[[a-z]+\])?$/i;
/** Row counters and relative times: not series (the Azure and Google exports have `step,t_seconds`). */
const INDEX_NAMES = /^(step|index|idx|row|t_seconds|t_s|seconds|elapsed|offset)$/i;

function parseNumber(cell: string, decimalComma: boolean): number {
  let s = cell.trim();
  if (s === '') return NaN;
  if (decimalComma) s = s.replace(',', '.');
  // Number('') is 0 and Number('0x10') is 16: only accept plain decimal notation.
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return NaN;
  return Number(s);
}

function parseTime(cell: string): number {
  const s = cell.trim().replace(/^"|"$/g, '');
  if (s === '') return NaN;
  if (/^\d+(\.\d+)?$/.test(s)) {
    const n = Number(s);
    return n < 1e11 ? n * 1000 : n; // seconds or milliseconds since epoch
  }
  // "2014-05-14 01:14:00" is not ISO for every engine: make it so, and read it as UTC.
  const iso = /^\d{4}-\d{2}-\d{2} \d/.test(s) ? s.replace(' ', 'T') : s;
  const withZone = /T.*(Z|[+-]\d{2}:?\d{2})$/.test(iso) || !iso.includes('T') ? iso : `${iso}Z`;
  return Date.parse(withZone);
}

function splitLine(line: string, delimiter: string): string[] {
  return line.split(delimiter).map((c) => c.trim().replace(/^"(.*)"$/, '$1'));
}

/**
 * Reads the shapes real exports have: an optional header, an optional timestamp
 * column (ISO dates, "YYYY-MM-DD hh:mm:ss", or epoch seconds/ms), one or more value
 * columns, separated by `,` or `;` (with `;`, a decimal comma is accepted). Lines
 * with the wrong number of cells are skipped and reported; a cell that is not a
 * number becomes a missing value (NaN) and is reported, so the time steps of the
 * other rows stay where they are.
 */
export function parseCsv(text: string): ParsedCsv {
  const lines = text.split(/\r?\n/);
  const first = lines.findIndex((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
  if (first < 0) throw new AugurError('CSV_EMPTY', 'the CSV has no data lines');
  const head = lines[first]!;
  const delimiter: ',' | ';' = (head.match(/;/g)?.length ?? 0) > 0 ? ';' : ',';
  const decimalComma = delimiter === ';';
  const headCells = splitLine(head, delimiter);
  const hasHeader = headCells.some(
    (c) => Number.isNaN(parseNumber(c, decimalComma)) && Number.isNaN(parseTime(c)),
  );
  const width = headCells.length;
  const names = hasHeader
    ? headCells.map((c, i) => c || `column${i + 1}`)
    : headCells.map((_, i) => `column${i + 1}`);

  const rows: Array<{ line: number; cells: string[] }> = [];
  const problems: CsvProblem[] = [];
  for (let i = hasHeader ? first + 1 : first; i < lines.length; i++) {
    const raw = lines[i]!;
    if (raw.trim() === '' || raw.trimStart().startsWith('#')) continue;
    const cells = splitLine(raw, delimiter);
    if (cells.length !== width) {
      problems.push({
        line: i + 1,
        message: `expected ${width} cells, found ${cells.length}: line skipped`,
      });
      continue;
    }
    rows.push({ line: i + 1, cells });
  }
  if (rows.length === 0) throw new AugurError('CSV_EMPTY', 'the CSV has a header but no data rows');

  // The timestamp column: named like one, or whose cells are dates but not plain numbers.
  let timeIdx = names.findIndex((n) => hasHeader && TIME_NAMES.test(n));
  if (timeIdx < 0) {
    timeIdx = headCells.findIndex((_, col) => {
      const sample = rows.slice(0, 20).map((r) => r.cells[col]!);
      return sample.every(
        (c) => Number.isNaN(parseNumber(c, decimalComma)) && !Number.isNaN(parseTime(c)),
      );
    });
  }
  if (timeIdx < 0 && rows.length >= 2) {
    // Epoch seconds or ms in the first column: integers after 2001, strictly increasing.
    const first = rows.slice(0, 50).map((r) => parseNumber(r.cells[0]!, decimalComma));
    if (
      width > 1 &&
      first.every((v, i) => Number.isInteger(v) && v > 1e9 && (i === 0 || v > first[i - 1]!))
    )
      timeIdx = 0;
  }
  const series: CsvSeries[] = [];
  const columns: CsvColumn[] = [];
  for (let col = 0; col < width; col++) {
    const role: ColumnRole =
      col === timeIdx ? 'time' : hasHeader && INDEX_NAMES.test(names[col]!) ? 'index' : 'value';
    const values = new Float64Array(rows.length);
    rows.forEach((r, k) => {
      const v = parseNumber(r.cells[col]!, decimalComma);
      if (role === 'value' && Number.isNaN(v) && r.cells[col]!.trim() !== '')
        problems.push({
          line: r.line,
          message: `${names[col]}: '${r.cells[col]}' is not a number: treated as missing`,
        });
      values[k] = v;
    });
    if (!values.some((v) => !Number.isNaN(v))) continue;
    columns.push({ name: names[col]!, values, position: col + 1, role });
    if (role === 'value') series.push({ name: names[col]!, values });
  }
  if (series.length === 0)
    throw new AugurError(
      'CSV_NO_VALUES',
      `the CSV has no value column with numbers in it${columns.length ? ` (only ${columns.map((c) => `${c.name}, ${article(c.role)} ${c.role} column`).join('; ')})` : ''}`,
    );
  let timestamps: Float64Array | undefined;
  if (timeIdx >= 0) {
    timestamps = new Float64Array(rows.length);
    rows.forEach((r, k) => {
      const t = parseTime(r.cells[timeIdx]!);
      if (Number.isNaN(t))
        problems.push({
          line: r.line,
          message: `${names[timeIdx]}: '${r.cells[timeIdx]}' is not a time`,
        });
      timestamps![k] = t;
    });
  }
  problems.sort((a, b) => a.line - b.line);
  return {
    delimiter,
    hasHeader,
    ...(timeIdx >= 0 ? { timestampColumn: names[timeIdx]! } : {}),
    ...(timestamps ? { timestamps } : {}),
    series,
    columns,
    problems,
  };
}

const article = (role: ColumnRole): string => (role === 'index' ? 'an' : 'a');

/** Reads and parses a CSV file; `.gz` files are decompressed first. Errors name the file. */
export function readCsvFile(path: string): ParsedCsv {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new AugurError('CSV_UNREADABLE', `cannot read ${path}: ${(err as Error).message}`);
  }
  let text: string;
  try {
    text = (path.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8');
  } catch (err) {
    throw new AugurError('CSV_UNREADABLE', `cannot decompress ${path}: ${(err as Error).message}`);
  }
  try {
    return parseCsv(text);
  } catch (err) {
    if (err instanceof AugurError) throw new AugurError(err.code, `${path}: ${err.message}`);
    throw err;
  }
}

/**
 * The column a user asked for: by exact name (any column, a time or index one
 * too), or by 1-based position in the file (value columns only: a number that
 * lands on `timestamp` or `step` is a mistake, said so). Without `column`, the
 * only value column; with several, an error that lists them.
 */
export function selectColumn(
  csv: ParsedCsv,
  column: string | undefined,
  source: string,
): CsvColumn {
  const list = (cs: readonly CsvColumn[]) => cs.map((c) => `${c.position}: ${c.name}`).join(', ');
  const values = csv.columns.filter((c) => c.role === 'value');
  if (column === undefined) {
    if (values.length === 1) return values[0]!;
    throw new AugurError(
      'CSV_WHICH_COLUMN',
      `${source} has ${values.length} value columns (${list(values)}): choose one with --column NAME or --column INDEX`,
    );
  }
  const byName = csv.columns.find((c) => c.name === column);
  if (byName) return byName;
  if (/^\d+$/.test(column.trim())) {
    const position = Number(column);
    const byPosition = csv.columns.find((c) => c.position === position);
    if (byPosition?.role === 'value') return byPosition;
    if (byPosition)
      throw new AugurError(
        'CSV_NOT_A_SERIES',
        `${source}: column ${position} is "${byPosition.name}", ${article(byPosition.role)} ${byPosition.role} column, not a series; name it (--column "${byPosition.name}") if you mean it`,
      );
  }
  throw new AugurError(
    'CSV_NO_SUCH_COLUMN',
    `${source} has no column "${column}"; columns with numbers: ${list(csv.columns)}`,
  );
}
