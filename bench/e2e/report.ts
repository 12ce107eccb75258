/**
 * The BENCHMARKS.md section of one configuration: what ran, each arm's figures (median and
 * range over repetitions), the issue's targets, where the time went, and every run the harness
 * could not trust.
 */
import { markdownTable } from '../report.js';
import { ARM_DESCRIPTIONS, type ArmName } from './arms.js';
import type { ArmRun } from './figures.js';
import { DEFAULT_CLIENTS, type E2eOptions } from './options.js';
import type { ConfigResult } from './run.js';
import {
  evaluateTargets,
  p99Ratios,
  spread,
  targetsFor,
  validRuns,
  type Spread,
} from './summary.js';

/** The section's heading; a client count or work other than the default names a section of its own. */
export function sectionTitle(
  result: Pick<ConfigResult, 'config'>,
  options: Pick<E2eOptions, 'clients' | 'work'>,
): string {
  const c = result.config;
  const clients = options.clients === DEFAULT_CLIENTS ? '' : `, ${options.clients} clients per arm`;
  const work = options.work === 'exponential' ? '' : `, ${options.work} work`;
  return `Real sockets (bench:e2e): ${c.stepSeconds} s trace steps, agents every ${c.reportInterval} s${clients}${work}`;
}

export interface MachineNote {
  cores: number;
  cpuModel: string;
  node: string;
  loadBefore: number[];
  loadAfter: number[];
}

export function renderSection(
  result: ConfigResult,
  options: E2eOptions,
  machine: MachineNote,
): string {
  const c = result.config;
  const traces = options.cpuTraces.map((t) => t.name.replace(/\.csv$/, '')).join(', ');
  const load = (l: number[]) => l.map((x) => x.toFixed(1)).join(' / ');
  const lines: string[] = [
    `Machine: ${machine.cores} cores (${machine.cpuModel}), Node ${machine.node}; load average ` +
      `(1/5/15 min) ${load(machine.loadBefore)} before, ${load(machine.loadAfter)} after. ` +
      `Latencies are wall time on real sockets: on a shared machine they are provisional.`,
    '',
    `Setup: ${options.backends} gRPC backends on loopback, each a FIFO queue with ${options.workers} ` +
      `workers; a request's work is ${
        options.work === 'fixed'
          ? `${options.serviceTime * 1000} ms at full speed for every request (\`--work fixed\`)`
          : `exponential (mean ${options.serviceTime * 1000} ms at full speed)`
      } and ` +
      `takes work / speed, speed = 1 − the background CPU of a real trace (${traces}; capped at ` +
      `${options.maxBackground}), simulated with timers. One trace step every ${c.stepSeconds} s. Open-loop ` +
      `Poisson arrivals ${options.load === 'trace' ? `following ${options.arrivalTrace.name}` : 'at a constant rate'}, ` +
      `scaled to a mean fleet utilisation of ${options.utilisation} (at most ${options.peakUtilisation} of a ` +
      `step's capacity): ${result.meanRate.toFixed(0)} requests/s on average, sent by ${options.clients} ` +
      `clients per arm. Real augur agents (\`--load-url\`, in the fleet process) report every ` +
      `${c.reportInterval} s to a real \`augur serve\`. ${options.reps} repetitions; each runs every arm over ` +
      `the same trace stretch and the same arrivals, in an order rotated by one arm per repetition, ` +
      `repetition r on the stretch after repetition r−1's; per arm run ${c.warmupSeconds} s of warm-up ` +
      `(fresh clients) then ${c.measureSeconds} s measured; ${options.primeSeconds} s of round-robin traffic ` +
      `before the first. Deadline ${options.deadlineSeconds} s. Whole configuration: ` +
      `${(result.wallSeconds / 60).toFixed(1)} min.`,
    '',
    'Arms:',
    ...options.arms.map((a) => `- \`${a}\`: ${ARM_DESCRIPTIONS[a]}`),
    '',
    `Each cell is the median over valid repetitions [min–max]. Failed requests count in the ` +
      `percentiles at the deadline (${options.deadlineSeconds * 1000} ms); † marks a median that falls on ` +
      `failures. Traffic TVD: per measured step, the total variation distance between each backend's ` +
      `share of the requests and its share of the true capacity, averaged over steps; the floor beside it ` +
      `is what picking each request at random in proportion to capacity would give (weighted random, ` +
      `as grpc-js-xds picks localities; a deterministic rotation can go below it). Pushes: weight updates the arm's ` +
      `clients were sent (xDS arms). Connections opened: to the backends during the measured window ` +
      `(gRPC; for augur-rrm the data planes' HTTP connections): reconnects, the churn weight updates ` +
      `cause. A run is invalid when the load generator sent its requests, or the backends' timers ` +
      `fired, more than ${options.lateLimitMs.toFixed(0)} ms late at p99: the harness, not the arm, ` +
      `would then be in the figures.`,
    '',
    armTable(result, options.arms, options.deadlineSeconds * 1000),
    '',
    targetLines(result),
    '',
    ...readingLines(result),
    '**Where the time goes** (medians over every run, invalid ones included): time in the backend (queue and service) and ' +
      "each part apart, with the share of the slowest 1 % of requests' time that was service (near 1: the tail is requests " +
      'served slowly where they went, not requests that waited); time outside it (client, proxy, ext_proc, sockets, timers); how late the load generator sent; each ' +
      "process's event-loop lag p99 and CPU (cores) — harness (load generator and clients) / augur serve / " +
      "fleet / data planes; how late the backends' completion timers fired; agent ticks that could not read the load " +
      '(skipped samples, out of all ticks); and, for the xDS arms, how far the published ' +
      'shares were from the capacity shares of the same step, and the lag (in steps) at which they match best.',
    '',
    timeTable(result, options.arms),
    '',
    repTable(result, options.arms),
    ...invalidLines(result),
  ];
  return lines.join('\n');
}

function fmt(s: Spread | undefined, digits = 0, mark?: boolean): string {
  if (!s) return '—';
  const f = (x: number) => x.toFixed(digits);
  const median = `${f(s.median)}${mark ? ' †' : ''}`;
  return s.n > 1 && s.min !== s.max ? `${median} [${f(s.min)}–${f(s.max)}]` : median;
}

function armTable(result: ConfigResult, arms: readonly ArmName[], deadlineMs: number): string {
  const rows = arms.map((arm) => {
    const runs = validRuns(result.runs, arm);
    const pick = (f: (r: ArmRun) => number) => spread(runs.map(f));
    const onFailure = (f: (r: ArmRun) => { ms: number }) => {
      const s = pick((r) => f(r).ms);
      return fmt(s, 0, s !== undefined && s.median >= deadlineMs);
    };
    const nullable = (f: (r: ArmRun) => number | null) =>
      spread(runs.map(f).filter((x): x is number => x !== null));
    return [
      `\`${arm}\``,
      onFailure((r) => r.p50),
      onFailure((r) => r.p99),
      onFailure((r) => r.p999),
      `${fmt(pick((r) => r.failed))} (${fmt(pick((r) => r.failedFast))})`,
      `${fmt(
        pick((r) => r.trafficTvd),
        3,
      )} (${fmt(
        pick((r) => r.trafficTvdFloor),
        3,
      )})`,
      fmt(nullable((r) => r.pushes)),
      fmt(pick((r) => r.reconnects)),
      `${runs.length}/${result.runs.filter((r) => r.arm === arm).length}`,
    ];
  });
  return markdownTable(
    [
      'arm',
      'p50 ms',
      'p99 ms',
      'p99.9 ms',
      'failed (fast)',
      'traffic TVD (floor)',
      'pushes',
      'connections opened',
      'valid runs',
    ],
    rows,
  );
}

/** The ratios that carry a target at some trace step (the others are there to be read). */
const targetsAtSomeStep = new Set(
  [1, 5].flatMap((step) =>
    targetsFor(step)
      .filter((t) => t.atMost !== undefined)
      .map((t) => t.name),
  ),
);

function targetLines(result: ConfigResult): string {
  const rows = evaluateTargets(result)
    .filter((t) => t.spread !== undefined || t.atMost !== undefined)
    .map((t) => [
      `${t.name} (\`${t.numerator}\` / \`${t.denominator}\`)`,
      // Three decimals where two would round onto the target and hide which side it is on.
      fmt(
        t.spread,
        t.atMost !== undefined &&
          t.spread !== undefined &&
          t.spread.median.toFixed(2) === t.atMost.toFixed(2)
          ? 3
          : 2,
      ),
      t.atMost !== undefined
        ? `≤ ${t.atMost.toFixed(2)}`
        : targetsAtSomeStep.has(t.name)
          ? 'none at this step'
          : 'none (for reading)',
      t.met === undefined
        ? '—'
        : t.met
          ? t.metEveryRep
            ? 'met (every repetition)'
            : 'met (median)'
          : '**missed**',
    ]);
  return [
    '**Targets** (issue 11), p99 ratios taken within each repetition, then the median [range]:',
    '',
    markdownTable(['ratio of p99', 'median [range]', 'target', 'verdict'], rows),
  ].join('\n');
}

function timeTable(result: ConfigResult, arms: readonly ArmName[]): string {
  const rows = arms.map((arm) => {
    // Every run, the invalid ones too: this table is where a run's trouble shows.
    const runs = result.runs.filter((r) => r.arm === arm);
    const m = (f: (r: ArmRun) => number | null | undefined, digits = 0) =>
      fmt(spread(runs.map(f).filter((x): x is number => typeof x === 'number')), digits);
    const med = (f: (r: ArmRun) => number, digits: number) =>
      spread(runs.map(f))?.median.toFixed(digits) ?? '—';
    const three = (f: (p: ArmRun['processes']['harness']) => number, digits: number) =>
      [
        med((r) => f(r.processes.harness), digits),
        med((r) => f(r.processes.serve), digits),
        med((r) => f(r.processes.fleet), digits),
        med((r) => f(r.processes.dataPlanes), digits),
      ].join(' / ');
    const lag = spread(runs.map((r) => r.weightsBestLag?.steps ?? NaN));
    return [
      `\`${arm}\``,
      m((r) => r.backendP99Ms),
      `${m((r) => r.queueP99Ms)} / ${m((r) => r.serviceP99Ms)} / ${m((r) => r.tailServiceShare, 2)}`,
      `${m((r) => r.outsideP50Ms, 1)} / ${m((r) => r.outsideP99Ms)}`,
      `${m((r) => r.sendLateP99Ms, 1)} / ${m((r) => r.sendLateMaxMs)}`,
      three((p) => p.lagP99Ms, 0),
      three((p) => p.cpuCores, 2),
      m((r) => r.backendTimerLateP99Ms, 1),
      `${m((r) => r.agentSamplesSkipped)} of ${m((r) => r.agentSamples + r.agentSamplesSkipped)}`,
      runs.some((r) => r.weightsTvd !== null)
        ? `${m((r) => r.weightsTvd, 3)} (best at lag ${lag ? lag.median.toFixed(0) : '—'})`
        : '—',
    ];
  });
  return markdownTable(
    [
      'arm',
      'in backend p99 ms',
      'queue p99 / service p99 ms / tail service share',
      'outside p50 / p99 ms',
      'send late p99 / max ms',
      'loop lag p99 ms',
      'CPU cores',
      'backend timers late p99 ms',
      'agent samples skipped',
      'weights vs capacity TVD',
    ],
    rows,
  );
}

function repTable(result: ConfigResult, arms: readonly ArmName[]): string {
  const reps = [...new Set(result.runs.map((r) => r.rep))].sort((a, b) => a - b);
  const rows = reps.map((rep) => {
    const order = result.runs
      .filter((r) => r.rep === rep)
      .sort((a, b) => a.order - b.order)
      .map((r) => r.arm);
    return [
      String(rep + 1),
      ...arms.map((arm) => {
        const run = result.runs.find((r) => r.arm === arm && r.rep === rep);
        if (!run) return '—';
        const cell = `${run.p99.ms.toFixed(0)}${run.p99.failure ? ' †' : ''}`;
        return run.invalid ? `(${cell}, invalid)` : cell;
      }),
      order.map((a) => arms.indexOf(a) + 1).join('→'),
    ];
  });
  return [
    'p99 ms of every run (the order column numbers the arms as in the table above):',
    '',
    markdownTable(['rep', ...arms.map((a) => `\`${a}\``), 'order'], rows),
  ].join('\n');
}

function invalidLines(result: ConfigResult): string[] {
  const invalid = result.runs.filter((r) => r.invalid);
  const detoured = result.runs.filter((r) => Object.keys(r.detours).length > 0);
  const lines: string[] = [];
  if (result.errors.length > 0) {
    lines.push('', 'Runs that could not be measured:');
    for (const e of result.errors) lines.push(`- rep ${e.rep + 1}, \`${e.arm}\`: ${e.message}`);
  }
  if (invalid.length > 0) {
    lines.push('', 'Runs left out as invalid:');
    for (const r of invalid) lines.push(`- rep ${r.rep + 1}, \`${r.arm}\`: ${r.invalid}`);
  }
  const failing = result.runs.filter((r) => r.failed > 0);
  if (failing.length > 0) {
    lines.push('', 'Failed requests by kind (counted in the percentiles at the deadline):');
    for (const r of failing) {
      const what = Object.entries(r.failures)
        .map(([code, n]) => `${n} × ${code}`)
        .join(', ');
      lines.push(`- rep ${r.rep + 1}, \`${r.arm}\`: ${what} (of ${r.requests})`);
    }
  }
  if (detoured.length > 0) {
    lines.push('', 'Requests that went another way than the arm intends:');
    for (const r of detoured) {
      const what = Object.entries(r.detours)
        .map(([why, n]) => `${n} × ${why}`)
        .join(', ');
      lines.push(`- rep ${r.rep + 1}, \`${r.arm}\`: ${what}`);
    }
  }
  return lines;
}

/**
 * The figures that explain the targets, said in words: how augur's weights compare with the
 * bounds, how far and how late they follow capacity, what the RRM path spends outside the
 * backends. Facts from the tables above only; no judgement the figures do not carry.
 */
function readingLines(result: ConfigResult): string[] {
  const median = (arm: ArmName, f: (r: ArmRun) => number | null) =>
    spread(
      validRuns(result.runs, arm)
        .map(f)
        .filter((x): x is number => x !== null),
    )?.median;
  const p99 = (arm: ArmName) => median(arm, (r) => r.p99.ms);
  // Within each repetition, then the median: as the targets are taken.
  const ratio = (a: ArmName, b: ArmName) => {
    const r = spread(p99Ratios(result.runs, a, b));
    return r ? `${r.median.toFixed(2)}×` : undefined;
  };
  const out: string[] = [];
  const xds = p99('augur-xds');
  if (xds !== undefined) {
    const against = (
      [
        ['wrr-orca', "WRR+ORCA's"],
        ['round-robin', "round robin's"],
        ['perfect-reactive', "perfect-reactive's"],
        ['oracle', "the oracle's"],
      ] as const
    )
      .map(([arm, name]) => (ratio('augur-xds', arm) ? `${ratio('augur-xds', arm)} ${name}` : ''))
      .filter(Boolean);
    const tvd = (arm: ArmName) => median(arm, (r) => r.weightsTvd)?.toFixed(3) ?? '—';
    const lag = (arm: ArmName) => median(arm, (r) => r.weightsBestLag?.steps ?? null);
    const bestLag = lag('augur-xds');
    out.push(
      `Reading: augur's xDS weights gave p99 ${xds.toFixed(0)} ms (median; the median of its ratio within each repetition: ` +
        `${against.join(', ')}). The shares it published were ${tvd('augur-xds')} (TVD) from the ` +
        `true capacity shares of the same step (perfect-reactive ${tvd('perfect-reactive')}, oracle ` +
        `${tvd('oracle')}), and closest to the capacity of ${bestLag ?? '—'} step(s) before ` +
        `(perfect-reactive ${lag('perfect-reactive') ?? '—'}, oracle ${lag('oracle') ?? '—'}). ` +
        `Its clients got ${median('augur-xds', (r) => r.pushes)?.toFixed(0) ?? '—'} weight updates per ` +
        `run and opened ${median('augur-xds', (r) => r.reconnects)?.toFixed(0) ?? '—'} connections to ` +
        `the backends (grpc-js-xds reconnects to every backend on each locality-weight update).`,
    );
  }
  const rrm = p99('augur-rrm');
  if (rrm !== undefined) {
    const outside = (arm: ArmName) => median(arm, (r) => r.outsideP99Ms)?.toFixed(0) ?? '—';
    const fellBack = median('augur-rrm', (r) =>
      r.requests > 0 ? Object.values(r.detours).reduce((a, n) => a + n, 0) / r.requests : null,
    );
    const planeLag = median('augur-rrm', (r) => r.processes.dataPlanes.lagP99Ms);
    out.push(
      `augur's RRM path gave p99 ${rrm.toFixed(0)} ms${ratio('augur-rrm', 'augur-xds') ? ` (${ratio('augur-rrm', 'augur-xds')} augur's xDS weights)` : ''}; ` +
        `time outside the backends (data plane, ext_proc, sockets) was ${outside('augur-rrm')} ms at p99, ` +
        `against ${outside('augur-xds')} ms for the xDS arm and ${outside('round-robin')} ms for round robin` +
        (fellBack
          ? `; ${(fellBack * 100).toFixed(1)} % of its requests were not routed by the RRM (the ext_proc ` +
            `exchange failed or outlasted the data plane's 200 ms message timeout, and the data plane fell ` +
            `back to round robin, as Envoy with failure_mode_allow does), with the data-plane ` +
            `process's event loop ${planeLag?.toFixed(0) ?? '—'} ms late at p99.`
          : '.'),
    );
  }
  const alone = p99('augur-xds-locality');
  if (alone !== undefined) {
    const vs = (a: ArmName, b: ArmName, what: string) =>
      ratio(a, b) ? `${ratio(a, b)} ${what}` : undefined;
    const parts = [
      vs('augur-xds-locality', 'wrr-orca', "WRR+ORCA's"),
      vs('augur-xds-locality', 'augur-xds', "the xDS arm's with augur's policy"),
    ].filter(Boolean);
    const rrmVs = ratio('augur-rrm', 'augur-xds-locality');
    out.push(
      `augur's weights alone (grpc-js-xds without augur's policy, weighted random between localities, ` +
        `through a gateway hop) gave p99 ${alone.toFixed(0)} ms` +
        (parts.length ? ` (${parts.join(', ')})` : '') +
        (rrmVs ? `; the RRM's p99 was ${rrmVs} theirs.` : '.'),
    );
  }
  const invalid = result.runs.filter((r) => r.invalid).length;
  if (invalid > 0) {
    out.push(
      `${invalid} of ${result.runs.length} runs were invalid (listed below) and are left out of the ` +
        `medians and ratios: the machine, not the arms, was slow then.`,
    );
  }
  return out.length ? [out.join(' '), ''] : [];
}
