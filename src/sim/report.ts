import type { ScenarioResult } from './bench.js';
import { POLICIES } from './policies/catalog.js';

const ms = (s: number) => (Number.isFinite(s) ? (s * 1000).toFixed(1) : '-');
const pct = (x: number, digits = 2) => (Number.isFinite(x) ? (x * 100).toFixed(digits) : '-');
const num = (x: number | undefined, digits = 2) =>
  x !== undefined && Number.isFinite(x) ? x.toFixed(digits) : '-';

/** A markdown table per scenario, plus the gap summary, from the bench results. */
export function renderTables(
  results: readonly ScenarioResult[],
  table: (header: string[], rows: Array<Array<string | number>>) => string,
): string {
  const parts: string[] = [];
  for (const r of results) {
    parts.push(`### ${r.scenario} (interval ${r.interval} s, SLO ${ms(r.slo)} ms)\n`);
    parts.push(
      table(
        [
          'policy',
          'kind',
          'mean ms',
          'p50 ms',
          'p99 ms',
          'p99.9 ms',
          'over SLO %',
          'dropped %',
          'churn',
          'lead s',
          'caught %',
          'false cuts %',
        ],
        r.figures.map((f) => [
          f.policy,
          r.groups[f.policy] ?? '',
          ms(f.mean),
          ms(f.p50),
          ms(f.p99),
          ms(f.p999),
          pct(f.overSlo),
          pct(f.dropped),
          num(f.churn, 3),
          num(f.swaps?.leadTime, 2),
          pct(f.swaps?.caught ?? NaN, 0),
          pct(f.swaps?.falseRate ?? NaN, 0),
        ]),
      ),
    );
    const g = r.gap;
    // a gap under 5 % of the oracle's p99 is within run-to-run noise: no ratio of it means anything
    const measurable = (from: number) => from - g.oracleP99 >= 0.05 * g.oracleP99;
    const closed = (x: number, from: number, name: string) =>
      !measurable(from)
        ? `${name}→oracle gap under 5 %`
        : x < 0
          ? `closes none of the ${name}→oracle gap (worse than ${name})`
          : `closes ${pct(x, 0)} % of the ${name}→oracle gap`;
    const lines = g.augur.map(
      (a) =>
        `${a.policy}: p99 ${ms(a.p99)} ms, ${signed(a.vsBestReactive)} vs ${g.bestReactive}; ` +
        `${closed(a.closedFromPerfect, g.perfectReactiveP99, 'perfect-reactive')}; ` +
        `${closed(a.closedFromBest, g.bestReactiveP99, g.bestReactive)}`,
    );
    parts.push(
      `\nGap on p99: perfect reactive ${ms(g.perfectReactiveP99)} ms → oracle ${ms(g.oracleP99)} ms ` +
        `(oracle ${pct(1 - g.oracleP99 / g.perfectReactiveP99, 0)} % lower); best reactive policy: ${g.bestReactive} ` +
        `${ms(g.bestReactiveP99)} ms.\n\n` +
        lines.map((l) => `- ${l}`).join('\n') +
        '\n',
    );
  }
  return parts.join('\n');
}

function signed(x: number): string {
  return Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${(x * 100).toFixed(0)} %` : '-';
}

/** The policies, one line each. */
export function renderPolicyList(): string {
  return POLICIES.map((p) => `- \`${p.name}\` (${p.group}): ${p.description}`).join('\n');
}
