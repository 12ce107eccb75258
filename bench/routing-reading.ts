import type { PolicySummary, ScenarioSummary } from '../src/sim/bench.js';

/** How the shipped Envoy EDS policy's picker is configured (what augur publishes in CDS). */
export interface ReadingContext {
  /** The least-request `active_request_bias` augur publishes for Envoy clusters. */
  envoyActiveRequestBias: number;
}

/** A shipped policy's p99 target against a peer, with the bounds that use the same data plane. */
interface PathTarget {
  policy: string;
  versus: string;
  perfect: string;
  oracle: string;
}

const EDS: PathTarget = {
  policy: 'augur-envoy-eds',
  versus: 'p2c',
  perfect: 'perfect-reactive-envoy-eds',
  oracle: 'oracle-envoy-eds',
};
const GRPC: PathTarget = {
  policy: 'augur-grpc',
  versus: 'a58-wrr',
  perfect: 'perfect-reactive-grpc',
  oracle: 'oracle-grpc',
};

/**
 * What a scenario is, where that alone explains a miss: facts of its construction, not of its
 * results (the results are quoted beside them).
 */
const SCENARIO_CONTEXT: Readonly<Record<string, string>> = {
  'flash-crowd':
    'from halfway the arrivals rise 1.5× for at least 10 intervals, which at a mean utilisation of ' +
    '0.7 is more than the fleet can serve: queues grow wherever requests go',
  constant:
    'capacities never change, so there is nothing to foresee and every weighted policy knows them ' +
    'after a few intervals; the tail is Poisson bursts, which only in-flight counts steer',
};

/** Ratios within this of 1 are read as "the same" (seed-to-seed noise is larger). */
const SAME = 0.03;

/**
 * The written reading of the routing benchmark. Every figure it quotes, and every claim that
 * depends on a figure (met or missed, ahead or behind a bound), is derived from the results of
 * the run it is printed with; the fixed sentences say how the policies work and what the
 * scenarios are, which no rerun changes.
 */
export function routingReading(results: readonly ScenarioSummary[], ctx: ReadingContext): string {
  const get = (s: ScenarioSummary, policy: string): PolicySummary | undefined =>
    s.policies.find((p) => p.policy === policy);
  const p99 = (s: ScenarioSummary, policy: string) => get(s, policy)?.p99.median ?? NaN;
  const ratio = (s: ScenarioSummary, a: string, b: string) => p99(s, a) / p99(s, b);
  const x = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : '-');
  const ms = (v: number) => (Number.isFinite(v) ? `${(v * 1000).toFixed(0)} ms` : '-');
  const by = (name: string) => results.find((r) => r.scenario === name);
  const list = (items: string[]) => (items.length ? items.join(', ') : 'none');
  const star = (s: ScenarioSummary) => (s.tuning ? s.scenario : `${s.scenario}*`);
  const target = (s: ScenarioSummary, policy: string, versus: string) =>
    s.targets.find((t) => t.policy === policy && t.versus === versus && t.figure === 'p99');
  const targetCell = (s: ScenarioSummary, policy: string, versus: string) => {
    const v = target(s, policy, versus)?.value;
    if (!v) return `${star(s)} -`;
    return v.min === v.max
      ? `${star(s)} ${x(v.median)}`
      : `${star(s)} ${x(v.median)} (${v.min.toFixed(2)}–${v.max.toFixed(2)})`;
  };
  const median = (values: number[]) => {
    const v = values.filter(Number.isFinite).sort((a, b) => a - b);
    return v.length ? (v[(v.length - 1) >> 1]! + v[v.length >> 1]!) / 2 : NaN;
  };
  const vsBound = (policy: string, bound: string) =>
    results.map((s) => `${s.scenario} ${x(ratio(s, policy, bound))}`).join(', ');
  const medianVs = (policy: string, bound: string) =>
    median(results.map((s) => ratio(s, policy, bound)));
  const behind = (policy: string, bound: string) =>
    results.filter((s) => ratio(s, policy, bound) > 1 + SAME);
  const ahead = (policy: string, bound: string) =>
    results.filter((s) => ratio(s, policy, bound) < 1 - SAME);
  const ran = (t: PathTarget) => results.filter((s) => target(s, t.policy, t.versus) !== undefined);
  const met = (t: PathTarget) => results.filter((s) => target(s, t.policy, t.versus)?.met);
  const missed = (t: PathTarget) =>
    results.filter((s) => target(s, t.policy, t.versus)?.met === false);
  const limitOf = (t: PathTarget) =>
    results.map((s) => target(s, t.policy, t.versus)?.limit).find((l) => l !== undefined) ?? NaN;
  const tuningNote = (scenarios: ScenarioSummary[]) =>
    scenarios.some((s) => !s.tuning) ? '; * = not tuned on' : '';

  /** Why a shipped policy misses its p99 target where it does, from the bounds on the same picker. */
  const whyMissed = (t: PathTarget): string => {
    const limit = limitOf(t);
    return missed(t)
      .map((s) => {
        const oracle = ratio(s, t.oracle, t.versus);
        const vsPerfect = ratio(s, t.policy, t.perfect);
        const vsOracle = ratio(s, t.policy, t.oracle);
        const context = SCENARIO_CONTEXT[s.scenario] ? ` (${SCENARIO_CONTEXT[s.scenario]})` : '';
        if (!(oracle <= limit))
          return (
            `${star(s)}: the same picker over the true capacity of the coming interval is at ` +
            `${x(oracle)} ${t.versus}'s p99, so no forecast can meet the target on this data plane${context}`
          );
        const estimate =
          vsPerfect < 1 - SAME
            ? `at ${x(vsPerfect)} perfect-reactive's p99 its forecast is already ahead of the last interval's truth, and the rest is foresight these series did not give`
            : vsPerfect <= 1 + SAME
              ? `at ${x(vsPerfect)} perfect-reactive's p99 its estimate is as good as the last interval's truth, so what is missing is foresight these series did not give`
              : `at ${x(vsPerfect)} perfect-reactive's p99 its estimate of capacity costs ${((vsPerfect - 1) * 100).toFixed(0)} % of p99 beyond the last interval's truth`;
        return (
          `${star(s)}: the oracle would meet it (${x(oracle)}), augur is at ${x(vsOracle)} the oracle's p99; ` +
          `${estimate}${context}`
        );
      })
      .join('; ');
  };

  const constant = by('constant');
  const nab = by('nab');
  const noisy = by('noisy-neighbour');
  const batch = by('batch-job');
  const lead = (s: ScenarioSummary | undefined, p: string) =>
    s ? `${(get(s, p)?.leadTime.median ?? NaN).toFixed(2)} s` : '-';
  const falseCuts = (s: ScenarioSummary | undefined, p: string) =>
    s ? `${((get(s, p)?.falseRate.median ?? NaN) * 100).toFixed(0)} %` : '-';
  const churn = (p: string) =>
    constant ? (get(constant, p)?.churn.median ?? NaN).toFixed(3) : '-';
  const cuts = (p: string) => (constant ? (get(constant, p)?.cuts.median ?? NaN).toFixed(0) : '-');

  // The RRM path: two targets.
  const rrmVsPrequal = (s: ScenarioSummary) => target(s, 'augur-envoy-rrm', 'prequal');
  const rrmVsP2c = (s: ScenarioSummary) => target(s, 'augur-envoy-rrm', 'p2c');
  const rrmRan = results.filter((s) => rrmVsPrequal(s) !== undefined);
  const rrmMet = rrmRan.filter((s) => rrmVsPrequal(s)?.met && rrmVsP2c(s)?.met);
  const rrmMissed = rrmRan.filter(
    (s) => rrmVsPrequal(s)?.met === false || rrmVsP2c(s)?.met === false,
  );
  const rrmCell = (s: ScenarioSummary) =>
    `${star(s)} ${x(rrmVsPrequal(s)?.value.median ?? NaN)} Prequal / ${x(rrmVsP2c(s)?.value.median ?? NaN)} P2C`;
  const rrmVsPerfect = medianVs('augur-envoy-rrm', 'perfect-reactive-envoy-rrm');
  const rrmVsOracle = medianVs('augur-envoy-rrm', 'oracle-envoy-rrm');
  const forecastReading = (vsPerfect: number, vsOracle: number, why: string) =>
    Math.abs(vsPerfect - 1) <= SAME && Math.abs(vsOracle - 1) <= SAME
      ? `on this path the forecast buys nothing measurable, and perfect knowledge of the coming interval would not either: ${why}`
      : Math.abs(vsPerfect - 1) <= SAME
        ? `augur's estimate is as good as the last interval's truth, and the oracle (the coming interval's truth) is at ${x(1 / vsOracle)} of its p99`
        : vsPerfect < 1
          ? "augur's forecast is ahead of the last interval's truth"
          : "augur's estimate is behind the last interval's truth";

  const rrmParagraph = `**Envoy with augur's RRM picking per request (\`augur-envoy-rrm\`, the shipped default path):
both targets (≤ Prequal's p99 and ≤ 0.8× P2C's) are met in ${rrmMet.length} of ${rrmRan.length}
scenarios** (${list(rrmMet.map(rrmCell))}${tuningNote(rrmRan)}), and missed in ${list(rrmMissed.map(rrmCell))}.
The RRM sees every request it routed and its response headers, so it knows each endpoint's requests
in flight and latency without probes; it draws candidates by the forecast weights and sends the
request to the one with the shortest expected delay. Against the same picker fed the true capacity
of the interval just ended it is at a median of ${x(rrmVsPerfect)} (${vsBound('augur-envoy-rrm', 'perfect-reactive-envoy-rrm')}),
and against the true capacity of the interval ahead at ${x(rrmVsOracle)}: ${forecastReading(
    rrmVsPerfect,
    rrmVsOracle,
    'the in-band counts see a capacity change within a few requests',
  )}. Prequal (as simulated) ranks endpoints by requests in flight and latency alone, while the RRM
divides each endpoint's queue by its estimated capacity, so a slow endpoint with a short queue is
not taken for a free one; that this is what ${rrmMet.length ? 'puts it ahead' : 'would put it ahead'} is
our reading, which no ablation here isolates.${
    rrmMissed.length
      ? ` Where it misses, the oracle's weights under the same picker are at ${list(
          rrmMissed.map(
            (s) =>
              `${star(s)} ${x(ratio(s, 'oracle-envoy-rrm', 'prequal'))} Prequal / ${x(ratio(s, 'oracle-envoy-rrm', 'p2c'))} P2C`,
          ),
        )}.`
      : ''
  }`;

  const bias = ctx.envoyActiveRequestBias;
  const biasText = bias === 1 ? '(active requests + 1)' : `(active requests + 1)^${bias}`;
  const edsVsPerfect = medianVs(EDS.policy, EDS.perfect);
  const edsBehind = behind(EDS.policy, EDS.perfect);
  const edsAhead = ahead(EDS.policy, EDS.perfect);
  const edsParagraph = `**Envoy with augur's EDS weights (\`augur-envoy-eds\`): the target (≤ 0.85× P2C's p99) is met in
${met(EDS).length} of ${ran(EDS).length} scenarios** (${list(met(EDS).map((s) => targetCell(s, EDS.policy, EDS.versus)))}${tuningNote(ran(EDS))})
and missed in ${list(missed(EDS).map((s) => targetCell(s, EDS.policy, EDS.versus)))}. Envoy's weighted least
request is an EDF schedule in which a host's weight is divided by ${biasText} only at
the moment it is picked (augur publishes \`active_request_bias\` ${bias}), so it follows the weights and
reacts to queues less than P2C's comparison of two hosts' in-flight counts does.${
    missed(EDS).length ? ` Why it misses: ${whyMissed(EDS)}.` : ''
  }
Against the bound that knows each interval's true capacity as soon as it ends, augur's weights are at
a median of ${x(edsVsPerfect)} its p99 (${vsBound(EDS.policy, EDS.perfect)}): ahead of it in
${list(edsAhead.map(star))}, behind it in ${list(edsBehind.map(star))}, within ±${SAME * 100} % elsewhere.
Measuring the background (host − own CPU) instead of inferring it is what keeps the estimate near the
truth; the forecast can only add foresight where a change announces itself (the periodic batch job,
the noisy neighbours ramping up), and with few samples between capacity changes (5 and 15 s
intervals) a forecaster smooths steps that the last value already shows.`;

  const grpcVsPerfect = medianVs(GRPC.policy, GRPC.perfect);
  const grpcVsOracle = medianVs(GRPC.policy, GRPC.oracle);
  const grpcBehind = behind(GRPC.policy, GRPC.perfect);
  const grpcParagraph = `**Proxyless gRPC with augur's policy registered (\`augur-grpc\`: the shipped \`augur_expected_delay\`
picker in each client, src/grpc-lb): the target (≤ 0.6× A58-WRR's p99) is met in ${met(GRPC).length} of
${ran(GRPC).length} scenarios** (${list(met(GRPC).map((s) => targetCell(s, GRPC.policy, GRPC.versus)))}${tuningNote(ran(GRPC))})
and missed in ${list(missed(GRPC).map((s) => targetCell(s, GRPC.policy, GRPC.versus)))}.${
    missed(GRPC).length ? ` Why it misses: ${whyMissed(GRPC)}.` : ''
  }
Each client counts its own calls in flight and times its own answers, so a capacity change shows
within a few calls: augur-grpc is at a median of ${x(grpcVsPerfect)} perfect-reactive's p99
(${vsBound(GRPC.policy, GRPC.perfect)}) and ${x(grpcVsOracle)} the oracle's: ${forecastReading(
    grpcVsPerfect,
    grpcVsOracle,
    'the picker, not the forecast, wins here',
  )}. A client that did not register the policy (\`augur-grpc-locality\`: weighted random between
localities, the fallback augur publishes) is at ${vsBound('augur-grpc-locality', 'a58-wrr')} of A58-WRR's p99.`;

  const settled = (p: string) =>
    constant &&
    (get(constant, p)?.churn.median ?? NaN) === 0 &&
    get(constant, p)?.cuts.median === 0;
  const stability = `**Stability.** At constant capacity augur's published weights move ${churn('augur-envoy-eds')} of the
traffic per interval (A58's: ${churn('a58-wrr')}) with ${cuts('augur-envoy-eds')} cuts${
    settled('augur-envoy-eds')
      ? ': once settled they do not move, because the hysteresis holds measurement noise back, so grpc-js-xds clients are not made to reconnect for nothing'
      : ''
  }.`;

  const swaps = `**Swaps.** Against capacity drops that overload an endpoint, the oracle can cut ahead and
perfect-reactive only after (lead ${lead(nab, 'oracle-envoy-eds')} and ${lead(nab, 'perfect-reactive-envoy-eds')}
on NAB); augur cuts at ${lead(nab, 'augur-envoy-eds')} on NAB, ${lead(noisy, 'augur-envoy-eds')} with noisy
neighbours (oracle ${lead(noisy, 'oracle-envoy-eds')}, perfect-reactive ${lead(noisy, 'perfect-reactive-envoy-eds')})
and ${lead(batch, 'augur-envoy-eds')} for the batch job (oracle ${lead(batch, 'oracle-envoy-eds')}, perfect-reactive
${lead(batch, 'perfect-reactive-envoy-eds')}). Its false-cut rate (${falseCuts(nab, 'augur-envoy-eds')} on NAB, against
${falseCuts(nab, 'perfect-reactive-envoy-eds')} for perfect-reactive and ${falseCuts(nab, 'oracle-envoy-eds')} for the
oracle, whose "false" cuts are drops too small to overload) counts cuts that no overload followed
within two intervals.`;

  const prequalWins = results.filter((s) => p99(s, 'prequal') < p99(s, EDS.policy));
  const flash = by('flash-crowd');
  const losses = `**Where augur loses.** Targets missed: ${
    [
      ...rrmMissed.map((s) => `augur-envoy-rrm in ${star(s)}`),
      ...missed(EDS).map((s) => `augur-envoy-eds in ${star(s)}`),
      ...missed(GRPC).map((s) => `augur-grpc in ${star(s)}`),
    ].join(', ') || 'none'
  } (reasons above). Prequal beats augur-envoy-eds in ${prequalWins.length} of ${results.length}
scenarios: it probes every endpoint's queue for each request, for free and instantly in this
simulator, which no weight published once per interval can match (the RRM's per-request picker,
\`augur-envoy-rrm\`, is the answer to that). ${
    flash
      ? `In the flash crowd weights cannot create capacity: augur-envoy-eds ${ms(p99(flash, EDS.policy))}, P2C ${ms(p99(flash, 'p2c'))}, augur-grpc ${ms(p99(flash, GRPC.policy))}, A58-WRR ${ms(p99(flash, 'a58-wrr'))}. `
      : ''
  }augur's weights trail perfect-reactive's by more than ${SAME * 100} % for Envoy EDS in ${list(edsBehind.map(star))}
and for gRPC in ${list(grpcBehind.map(star))}. What the fallback to A58 (no own CPU) costs is in the next table.`;

  const limits = `**Limits of the model.** FIFO workers with exponential service; background load slows every worker
alike and is measured exactly (host − own), which a real host only approximates; the weights take
effect the moment they are computed (no push delay) and reach every proxy; Prequal's probes are free
and instant; the LSTM is not run (its training is asynchronous in a worker thread, which would make
runs depend on timing), so the ForecastScorer selects among its baselines; endpoints never fail.
Latency percentiles are of completed requests; drops are counted apart.`;

  return [
    '### Reading',
    rrmParagraph,
    edsParagraph,
    grpcParagraph,
    stability,
    swaps,
    losses,
    limits,
  ].join('\n\n');
}

/**
 * The reading of the reference ratios (no targets): how far the RRM's per-request rule is from
 * the same rule with perfect information, and whether perfect information would reach the
 * bench:e2e target `augur-rrm` ≤ 0.8× `augur-xds` (there the xDS arm runs augur's own per-call
 * policy, `augur-grpc` here). Every figure is derived from the run it is printed with.
 */
export function referenceReading(results: readonly ScenarioSummary[]): string {
  const median = (s: ScenarioSummary, policy: string, versus: string): number =>
    s.references.find((x) => x.policy === policy && x.versus === versus)?.value.median ?? NaN;
  const rows = results.filter((s) =>
    Number.isFinite(median(s, 'augur-envoy-rrm', 'omniscient-sed')),
  );
  if (rows.length === 0) return '';
  const f = (v: number) => v.toFixed(2);
  const toBound = rows.map((s) => median(s, 'augur-envoy-rrm', 'omniscient-sed'));
  const near = rows.filter((_, i) => toBound[i]! <= 1.1).map((s) => s.scenario);
  const far = rows.filter((_, i) => toBound[i]! > 1.1);
  const boundVsGrpc = rows
    .map((s) => ({ s: s.scenario, v: median(s, 'omniscient-sed', 'augur-grpc') }))
    .filter((x) => Number.isFinite(x.v));
  const reach = boundVsGrpc.filter((x) => x.v <= 0.8).map((x) => x.s);
  const rrmVsGrpc = rows
    .map((s) => median(s, 'augur-envoy-rrm', 'augur-grpc'))
    .filter(Number.isFinite);
  const lines = [
    `Reading: the shipped RRM's p99 is ${f(Math.min(...toBound))}–${f(Math.max(...toBound))}× ` +
      "`omniscient-sed`'s (the same kind of rule given every endpoint's true speed and true queue), " +
      `within 10 % of it on ${near.length} of ${rows.length} scenarios` +
      (far.length
        ? ` (further on ${far.map((s) => `${s.scenario}, ${f(median(s, 'augur-envoy-rrm', 'omniscient-sed'))}×`).join('; ')})`
        : '') +
      ': better signals or a better estimate would buy the RRM ' +
      (near.length === rows.length ? 'at most that much' : 'little on most scenarios') +
      '.',
  ];
  if (boundVsGrpc.length > 0) {
    lines.push(
      '',
      `Against the shipped gRPC policy (\`augur-grpc\`: the same rule in each client, on its own calls), the RRM's ` +
        `p99 is ${f(Math.min(...rrmVsGrpc))}–${f(Math.max(...rrmVsGrpc))}×, and perfect information ` +
        `${f(Math.min(...boundVsGrpc.map((x) => x.v)))}–${f(Math.max(...boundVsGrpc.map((x) => x.v)))}×: ` +
        `0.8× or below on ${reach.length} of ${boundVsGrpc.length} scenarios (${reach.length ? reach.join(', ') : 'none'}). ` +
        "bench:e2e's target `augur-rrm` ≤ 0.8× `augur-xds` compares the RRM with that gRPC policy; " +
        'where even perfect information stays above 0.8×, no per-request rule of this kind meets it, ' +
        'and the gap left is the one between one picker seeing every request and clients each seeing their own.',
    );
  }
  return lines.join('\n');
}
