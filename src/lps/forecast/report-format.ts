import type { EvaluationReport, ForecasterScore } from './evaluate.js';

const fmt = (v: number): string => (Number.isFinite(v) ? v.toFixed(3) : 'n/a');

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function scoreTable(
  scores: readonly ForecasterScore[],
  forecasters: readonly string[],
  horizons: readonly number[],
) {
  const header = [
    'forecaster',
    ...horizons.map((h) => `MASE h=${h}`),
    ...horizons.map((h) => `MAE h=${h}`),
  ];
  const rows = forecasters.map((f) => {
    const at = (h: number) => scores.find((s) => s.forecaster === f && s.horizon === h)!;
    return [f, ...horizons.map((h) => fmt(at(h).mase)), ...horizons.map((h) => fmt(at(h).mae))];
  });
  return table(header, rows);
}

/** The human-readable report of `augur forecast eval`. */
export function formatReport(report: EvaluationReport): string {
  const out: string[] = [];
  for (const s of report.series) {
    out.push(`series ${s.name}: ${s.length} values, scored from step ${s.scoredFrom}`);
    out.push(scoreTable(s.scores, report.forecasters, report.horizons));
    for (const m of s.missing) out.push(`${m.forecaster}: no forecast: ${m.reason}`);
    const picks = report.horizons
      .map((h) => {
        const c = s.picks[h]!;
        const total = Object.values(c).reduce((a, b) => a + b, 0) || 1;
        const parts = Object.entries(c)
          .sort((a, b) => b[1] - a[1])
          .map(([f, n]) => `${f} ${Math.round((100 * n) / total)}%`);
        return `h=${h}: ${parts.join(', ')}`;
      })
      .join('; ');
    out.push(`selected: ${picks}`, '');
  }
  if (report.series.length > 1) {
    out.push(`mean over ${report.series.length} series`);
    out.push(scoreTable(report.mean, report.forecasters, report.horizons), '');
  }
  out.push(
    'MASE: MAE over the one-step last-value MAE of the same span; < 1 beats the naive forecast.',
  );
  return out.join('\n');
}
