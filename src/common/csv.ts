import { AugurError } from '../../common/errors.js';

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

export interface ParsedCsv {
  delimiter: ',' | ';';
  hasHeader: boolean;
  /** Name of the timestamp column, if one was found. */
  timestampColumn?: string;
  /** ms since epoch per data row (NaN where unparseable), if a timestamp column was found. */
  timestamps?: Float64Array;
  series: CsvSeries[];
  problems: CsvProblem[];
}

const TIME_NAMES = /^(timestamp|time|date|datetime|ts|t)$/i;

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
  for (let col = 0; col < width; col++) {
    if (col === timeIdx) continue;
    const values = new Float64Array(rows.length);
    rows.forEach((r, k) => {
      const v = parseNumber(r.cells[col]!, decimalComma);
      if (Number.isNaN(v) && r.cells[col]!.trim() !== '')
        problems.push({
          line: r.line,
          message: `${names[col]}: '${r.cells[col]}' is not a number: treated as missing`,
        });
      values[k] = v;
    });
    if (values.some((v) => !Number.isNaN(v))) series.push({ name: names[col]!, values });
  }
  if (series.length === 0)
    throw new AugurError('CSV_NO_VALUES', 'the CSV has no column with numbers in it');
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
    problems,
  };
}
