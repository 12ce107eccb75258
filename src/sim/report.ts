import type { ReferenceRatio, ScenarioSummary, Spread, TargetCheck } from './bench.js';
import { POLICIES } from './policies/catalog.js';

type Table = (header: string[], rows: Array<Array<string | number>>) => string;

const ms = (s: number) => (Number.isFinite(s) ? (s * 1000).toFixed(s < 0.1 ? 1 : 0) : '-');
const pct = (x: number, digits = 2) => (Number.isFinite(x) ? (x * 100).toFixed(digits) : '-');
const num = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : '-');

/** "median (min–max)"; only the median when the range is one value. */
function ranged(s: Spread, f: (x: number) => string): string {
  if (s.n === 0) return '-';
  const lo = f(s.min);
  const hi = f(s.max);
  return lo === hi ? f(s.median) : `${f(s.median)} (${lo}–${hi})`;
}

function seedsLabel(seeds: readonly number[]): string {
  if (seeds.length === 0) return 'no seeds';
  const consecutive = seeds.every((s, i) => i === 0 || s === seeds[i - 1]! + 1);
  return consecutive && seeds.length > 2
    ? `seeds ${seeds[0]}–${seeds.at(-1)}`
    : `seed${seeds.length > 1 ? 's' : ''} ${seeds.join(', ')}`;
}

/** How a target reads: "augur-grpc p99 / a58-wrr p99 ≤ 0.6". */
export function targetLabel(
  t: Pick<TargetCheck, 'policy' | 'versus' | 'figure' | 'limit'>,
): string {
  if (t.figure === 'cuts') return `${t.policy} cuts = 0`;
  return t.versus
    ? `${t.policy} ${t.figure} / ${t.versus} ${t.figure} ≤ ${t.limit}`
    : `${t.policy} ${t.figure} ≤ ${t.limit}`;
}

function targetValue(t: TargetCheck): string {
  const digits = t.figure === 'cuts' ? 0 : 2;
  return ranged(t.value, (x) => num(x, digits));
}

/** A table per scenario (medians over seeds with their range) and its targets. */
export function renderTables(results: readonly ScenarioSummary[], table: Table): string {
  const parts: string[] = [];
  for (const r of results) {
    const w = r.windows;
    const rows =
      w.length > 0 && w.every((x) => x.rows === w[0]!.rows) ? `${w[0]!.rows} intervals` : '';
    const starts = w.map((x) => x.start).join(', ');
    parts.push(
      `### ${r.scenario} (interval ${r.interval} s, ${seedsLabel(r.seeds)}, ${r.tuning ? 'tuned on' : 'not tuned on'}; ` +
        `trace rows from ${starts}, ${rows} each; SLO ${ms(r.slo)} ms)\n`,
    );
    parts.push(
      table(
        [
          'policy',
          'kind',
          'p50 ms',
          'p99 ms',
          'p99.9 ms',
          'dropped %',
          'churn',
          'cuts',
          'lead s',
          'caught %',
          'false cuts %',
          'capacity est. / true',
        ],
        r.policies.map((p) => [
          p.policy,
          p.dataPlane ? `${p.group} (${p.dataPlane})` : p.group,
          ms(p.p50.median),
          ranged(p.p99, ms),
          ranged(p.p999, ms),
          pct(p.dropped.median),
          num(p.churn.median, 3),
          num(p.cuts.median, 0),
          num(p.leadTime.median, 2),
          pct(p.caught.median, 0),
          pct(p.falseRate.median, 0),
          p.biasRatio.n
            ? `${num(p.biasRatio.median, 2)} (${pct(p.within25.median, 0)} % within ±25 %)`
            : '-',
        ]),
      ),
    );
    if (r.targets.length > 0) {
      parts.push(
        '\n' +
          r.targets
            .map(
              (t) => `- ${targetLabel(t)}: ${targetValue(t)} ${t.met ? '— met' : '— **missed**'}`,
            )
            .join('\n') +
          '\n',
      );
    }
    if (r.references.length > 0) {
      parts.push(
        r.references
          .map((x) => `- ${referenceLabel(x)}: ${ranged(x.value, (v) => num(v))} (no target)`)
          .join('\n') + '\n',
      );
    }
  }
  return parts.join('\n');
}

/** How a reference ratio reads: "augur-envoy-rrm p99 / omniscient-sed p99". */
export function referenceLabel(x: Pick<ReferenceRatio, 'policy' | 'versus'>): string {
  return `${x.policy} p99 / ${x.versus} p99`;
}

/**
 * One row per scenario (* = not tuned on), one column per label of `items` (a cell is empty where
 * a scenario has no item of that label).
 */
function perScenario<T>(
  results: readonly ScenarioSummary[],
  table: Table,
  items: (r: ScenarioSummary) => readonly T[],
  label: (item: T) => string,
  cell: (item: T) => string,
): string {
  const labels = [...new Set(results.flatMap((r) => items(r).map(label)))];
  if (labels.length === 0) return '';
  return table(
    ['scenario', ...labels],
    results.map((r) => [
      `${r.scenario}${r.tuning ? '' : ' *'}`,
      ...labels.map((l) => {
        const item = items(r).find((x) => label(x) === l);
        return item === undefined ? '' : cell(item);
      }),
    ]),
  );
}

/** One row per scenario, one column per reference ratio: the median over seeds (range). */
export function renderReferenceSummary(results: readonly ScenarioSummary[], table: Table): string {
  return perScenario(
    results,
    table,
    (r) => r.references,
    referenceLabel,
    (x) => ranged(x.value, (v) => num(v)),
  );
}

/** One row per scenario, one column per target: the median over seeds (range) and whether it is met. */
export function renderTargetSummary(results: readonly ScenarioSummary[], table: Table): string {
  return perScenario(
    results,
    table,
    (r) => r.targets,
    targetLabel,
    (t) => `${targetValue(t)} ${t.met ? '✓' : '✗'}`,
  );
}

/** The policies, one line each. */
export function renderPolicyList(): string {
  return POLICIES.map((p) => `- \`${p.name}\` (${p.group}): ${p.description}`).join('\n');
}
