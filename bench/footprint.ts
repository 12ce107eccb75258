/**
 * npm run bench:ingest -- --only=footprint — what one endpoint costs the LPS: resident memory per
 * endpoint with a full ring of samples carrying every signal the agent sends (and its forecaster
 * state once scored), the scoring CPU per endpoint per tick at 1 s, and the event loop's lag
 * meanwhile; at 5,000 and 20,000 endpoints, for this tree and for a base commit (before the
 * compact ring) in the same run. Each measurement is a process of its own
 * (bench/footprint-child.ts), compiled (`npm run build`'s dist/, plain node, as the Docker image
 * runs augur); the base tree is `git archive`d into a temporary folder and compiled there.
 *
 *   --endpoints=5000,20000  --ticks=11  --base=<commit>|none  --ring-sizes=720,256  --no-lstm
 *   --no-build: reuse this checkout's dist/ as it is
 *   --repeat=N: each row is N runs of the child (CPU: median and range over the ticks of every
 *   run; RSS and lag p99: the median run's; lag max: the largest); --lstm-only: only the LSTM-on
 *   rows (no base, no LSTM-off rows), into a section of their own
 *   --image-malloc: the LSTM-on rows also once more with glibc's malloc set as the Docker image
 *   sets it (its MALLOC_* ENV, bench/image-runtime.ts)
 *   --account: each child of this tree also prints where the bytes and the microseconds go
 *   (heap snapshot by constructor, CPU profile of the scoring ticks by function, what the ticks
 *   allocate by function) to stderr.
 * Every child runs with the node flags of the image's ENTRYPOINT (as `augur serve` ships), the
 * base tree's too; one more row per size, this tree without them, shows what they buy.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { buildBase, buildTree, DIST, ROOT } from './compile.js';
import { imageRuntime } from './image-runtime.js';
import { markdownTable, quantile, writeBenchmarkSection } from './report.js';

/** The child, compiled: its path under a tree's dist/. */
const CHILD = 'bench/footprint-child.js';
/** The last commit with one Float64Array per column and per error-tracker row. */
const DEFAULT_BASE = '4cf6061';

/** How the Docker image runs augur: node flags (every child) and malloc settings (--image-malloc). */
const IMAGE = imageRuntime();

interface Measured {
  /** Set by this parent: the malloc settings the child ran with, where not glibc's defaults. */
  malloc?: string;
  /** Set by this parent: the node flags the child ran with besides --expose-gc ('' for none). */
  nodeFlags?: string;
  endpoints: number;
  ringSize: number;
  lstm?: boolean;
  rssStoreKb: number;
  rssKb: number;
  heapKb: number;
  arrayBuffersKb: number;
  cpuPerEndpointUs: number[];
  /** The main (serving) thread's share; absent from a child that predates it. */
  mainCpuPerEndpointUs?: number[];
  /** The LSTM worker thread's share; LSTM on only. */
  workerCpuPerEndpointUs?: number[];
  /** The whole tick (the prioritizer: the scorer and the lists); absent from an older child. */
  tickCpuPerEndpointUs?: number[];
  lagP99Ms: number;
  lagMaxMs: number;
}

function run(
  cwd: string,
  script: string,
  args: string[],
  env: Record<string, string>,
  nodeFlags: readonly string[],
) {
  return new Promise<Measured>((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', ...nodeFlags, script, ...args], {
      cwd,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ...env },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line.startsWith('{'))
        reject(new Error(`footprint child in ${cwd} exited with ${code}: ${out.slice(-500)}`));
      else resolve(JSON.parse(line) as Measured);
    });
  });
}

/** `run` `times` times, one after the other, merged as --repeat says. */
async function measure(
  cwd: string,
  script: string,
  args: string[],
  times: number,
  env: Record<string, string> = {},
  nodeFlags: readonly string[] = IMAGE.nodeFlags,
) {
  const runs: Measured[] = [];
  for (let i = 0; i < times; i++) runs.push(await run(cwd, script, args, env, nodeFlags));
  const median = (f: (m: Measured) => number) => quantile(runs.map(f), 0.5);
  const malloc = Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return {
    ...runs[0]!,
    ...(malloc ? { malloc } : {}),
    nodeFlags: nodeFlags.join(' '),
    rssStoreKb: median((m) => m.rssStoreKb),
    rssKb: median((m) => m.rssKb),
    heapKb: median((m) => m.heapKb),
    arrayBuffersKb: median((m) => m.arrayBuffersKb),
    cpuPerEndpointUs: runs.flatMap((m) => m.cpuPerEndpointUs),
    mainCpuPerEndpointUs: runs.every((m) => m.mainCpuPerEndpointUs)
      ? runs.flatMap((m) => m.mainCpuPerEndpointUs!)
      : undefined,
    workerCpuPerEndpointUs: runs.every((m) => m.workerCpuPerEndpointUs)
      ? runs.flatMap((m) => m.workerCpuPerEndpointUs!)
      : undefined,
    tickCpuPerEndpointUs: runs.every((m) => m.tickCpuPerEndpointUs)
      ? runs.flatMap((m) => m.tickCpuPerEndpointUs!)
      : undefined,
    lagP99Ms: median((m) => m.lagP99Ms),
    lagMaxMs: Math.max(...runs.map((m) => m.lagMaxMs)),
  } satisfies Measured;
}

export async function runFootprint(argv: readonly string[]): Promise<void> {
  const args = new Map(argv.map((a) => a.replace(/^--/, '').split('=') as [string, string]));
  const sizes = (args.get('endpoints') ?? '5000,20000').split(',').map(Number);
  const ticks = args.get('ticks') ?? '11';
  const lstmOnly = args.has('lstm-only');
  const repeat = Math.max(1, Number(args.get('repeat') ?? 1));
  const base = lstmOnly ? 'none' : (args.get('base') ?? DEFAULT_BASE);
  const rings = lstmOnly ? [] : (args.get('ring-sizes') ?? '720,256').split(',').map(Number);
  buildTree(args.has('no-build'), CHILD);
  // The base predates the child: this tree's child (and what it imports from bench/) is compiled
  // with it.
  const baseDir =
    base === 'none'
      ? undefined
      : buildBase(base, CHILD, [CHILD.replace(/\.js$/, '.ts'), 'bench/proc-stat.ts']);
  const baseLabel = `base ${base}`;
  const rows: Array<{ tree: string; m: Measured }> = [];
  try {
    for (const n of sizes) {
      const common = [`--endpoints=${n}`, `--ticks=${ticks}`];
      const account = args.has('account') ? ['--account'] : [];
      if (baseDir) {
        const m = await measure(baseDir, join(baseDir, 'dist', CHILD), common, repeat);
        console.log(baseLabel, m);
        rows.push({ tree: baseLabel, m });
      }
      for (const ring of rings) {
        const m = await measure(
          ROOT,
          join(DIST, CHILD),
          [...common, ...account, `--ring-size=${ring}`],
          repeat,
        );
        console.log('this tree', m);
        rows.push({ tree: 'this tree', m });
      }
      // What the image's node flags buy: the first row again with plain node.
      if (!lstmOnly && IMAGE.nodeFlags.length > 0) {
        const m = await measure(
          ROOT,
          join(DIST, CHILD),
          [...common, ...account, '--ring-size=720'],
          repeat,
          {},
          [],
        );
        console.log('this tree, plain node', m);
        rows.push({ tree: 'this tree', m });
      }
      // As `augur serve` runs by default: the LSTM on (its worker, its rows, its first fit); with
      // --image-malloc, once more with glibc's malloc as the Docker image sets it.
      const mallocs = args.has('image-malloc') ? [{}, IMAGE.malloc] : [{}];
      for (const env of args.has('no-lstm') ? [] : mallocs) {
        const m = await measure(
          ROOT,
          join(DIST, CHILD),
          [...common, ...account, '--ring-size=720', '--lstm'],
          repeat,
          env,
        );
        console.log(`this tree, LSTM on${m.malloc ? `, ${m.malloc}` : ''}`, m);
        rows.push({ tree: 'this tree', m });
      }
    }
  } finally {
    if (baseDir) rmSync(baseDir, { recursive: true, force: true });
  }

  const us = (xs: number[]) =>
    `${quantile(xs, 0.5).toFixed(1)} (${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)})`;
  const table = markdownTable(
    [
      'tree',
      'endpoints',
      'ring (samples)',
      'LSTM',
      'node flags',
      'RSS / endpoint, samples only',
      'RSS / endpoint, scored',
      'of which typed arrays',
      'scoring CPU / endpoint / tick',
      'of which the serving thread',
      'of which the LSTM worker',
      'whole tick, lists included',
      'event-loop lag p99 (max)',
    ],
    rows.map(({ tree, m }) => [
      tree,
      m.endpoints,
      m.ringSize,
      m.lstm ? (m.malloc ? `on, ${m.malloc}` : 'on') : 'off',
      m.nodeFlags ? `\`${m.nodeFlags}\`` : 'none',
      `${m.rssStoreKb.toFixed(1)} KB`,
      `${m.rssKb.toFixed(1)} KB`,
      `${m.arrayBuffersKb.toFixed(1)} KB`,
      `${us(m.cpuPerEndpointUs)} µs`,
      m.mainCpuPerEndpointUs?.every(Number.isFinite) ? `${us(m.mainCpuPerEndpointUs)} µs` : '—',
      m.workerCpuPerEndpointUs?.every(Number.isFinite) ? `${us(m.workerCpuPerEndpointUs)} µs` : '—',
      m.tickCpuPerEndpointUs?.length ? `${us(m.tickCpuPerEndpointUs)} µs` : '—',
      `${m.lagP99Ms.toFixed(1)} (${m.lagMaxMs.toFixed(1)}) ms`,
    ]),
  );
  const imageFlags = IMAGE.nodeFlags.join(' ');
  /** This tree's row at `n` endpoints, ring 720, LSTM off, with the image's node flags or none. */
  const lstmOffRow = (n: number, flags = imageFlags) =>
    rows.find(
      (r) =>
        r.tree === 'this tree' &&
        r.m.endpoints === n &&
        r.m.ringSize === 720 &&
        !r.m.lstm &&
        r.m.nodeFlags === flags,
    )?.m;
  const ratios = sizes
    .map((n) => {
      const b = rows.find((r) => r.tree === baseLabel && r.m.endpoints === n)?.m;
      const t = lstmOffRow(n);
      if (!b || !t) return '';
      return (
        `at ${n} endpoints, RSS per endpoint ${b.rssKb.toFixed(1)} → ${t.rssKb.toFixed(1)} KB ` +
        `(${((t.rssKb / b.rssKb) * 100).toFixed(0)} %), scoring CPU ` +
        `${quantile(b.cpuPerEndpointUs, 0.5).toFixed(1)} → ${quantile(t.cpuPerEndpointUs, 0.5).toFixed(1)} µs ` +
        `(${((quantile(t.cpuPerEndpointUs, 0.5) / quantile(b.cpuPerEndpointUs, 0.5)) * 100).toFixed(0)} %)`
      );
    })
    .filter(Boolean)
    .join('; ');
  // What one more endpoint costs, without the process's fixed costs (V8's young generation grows
  // to its limit while the rings fill, and at 5,000 endpoints that is several KB per endpoint).
  const keyOf = (r: { tree: string; m: Measured }) =>
    `${r.tree}|${r.m.ringSize}|${r.m.lstm ? 'on' : 'off'}${r.m.malloc ? `, ${r.m.malloc}` : ''}|${r.m.nodeFlags ? `node flags ${r.m.nodeFlags}` : 'plain node'}`;
  const marginal = [...new Set(rows.map(keyOf))]
    .map((key) => {
      const same = rows.filter((r) => keyOf(r) === key).map((r) => r.m);
      if (same.length < 2) return '';
      const [a, b] = [same[0]!, same[same.length - 1]!];
      const kb = (b.rssKb * b.endpoints - a.rssKb * a.endpoints) / (b.endpoints - a.endpoints);
      const [tree, ring, lstm, flags] = key.split('|');
      return `${tree} (ring ${ring}, LSTM ${lstm}, ${flags}): ${kb.toFixed(1)} KB`;
    })
    .filter(Boolean)
    .join('; ');
  // What the LSTM costs the process as a whole (on minus off, same ring): its worker thread,
  // TensorFlow.js, its training rows (capped in total), what a fit leaves resident, and per
  // endpoint its state in the worker and its forecaster's columns in the banks.
  const lstmCost = sizes.map((n) => {
    const on = rows.find(
      (r) => r.tree === 'this tree' && r.m.endpoints === n && r.m.lstm && !r.m.malloc,
    )?.m;
    const off = lstmOffRow(n);
    return on && off ? { n, kb: (on.rssKb - off.rssKb) * n } : undefined;
  });
  const [c1, c2] = [lstmCost[0], lstmCost[lstmCost.length - 1]];
  const lstmLine =
    c1 && c2 && c2.n > c1.n
      ? (() => {
          const perEndpoint = (c2.kb - c1.kb) / (c2.n - c1.n);
          const fixed = c1.kb - perEndpoint * c1.n;
          return (
            `**What the LSTM adds to the process** (RSS scored, on minus off, ring 720): ` +
            `${(c1.kb / 1024).toFixed(0)} MB at ${c1.n} endpoints, ${(c2.kb / 1024).toFixed(0)} MB at ${c2.n}: ` +
            `about ${(fixed / 1024).toFixed(0)} MB whatever the fleet, and ${perEndpoint.toFixed(1)} KB per endpoint.`
          );
        })()
      : '';
  // What the image's node flags buy (this tree, ring 720, LSTM off: with them and without).
  const flagsLine = imageFlags
    ? sizes
        .map((n) => {
          const [withFlags, plain] = [lstmOffRow(n), lstmOffRow(n, '')];
          if (!withFlags || !plain) return '';
          return (
            `at ${n} endpoints ${plain.rssKb.toFixed(1)} → ${withFlags.rssKb.toFixed(1)} KB per endpoint, ` +
            `scoring CPU ${quantile(plain.cpuPerEndpointUs, 0.5).toFixed(1)} → ${quantile(withFlags.cpuPerEndpointUs, 0.5).toFixed(1)} µs, ` +
            `whole tick ${quantile(plain.tickCpuPerEndpointUs ?? [NaN], 0.5).toFixed(1)} → ${quantile(withFlags.tickCpuPerEndpointUs ?? [NaN], 0.5).toFixed(1)} µs`
          );
        })
        .filter(Boolean)
        .join('; ')
    : '';
  const load = loadavg()
    .map((l) => l.toFixed(1))
    .join(', ');
  const body = [
    `Each row is a process of its own (\`bench/footprint-child.ts\`, compiled by \`npm run build\` and run by \`node\` with the node flags of the Docker image's ENTRYPOINT (${imageFlags ? `\`${imageFlags}\`` : 'none'}), as the image runs augur: no TypeScript loader in any thread; one row per size without those flags, \"none\", shows what they buy): it opens N endpoints with an agent's hello (labels, locality, capacity), fills each ring (\`lps.ringSize\`) through the store with samples carrying every signal the agent sends (host and own CPU, memory, network, probe response time and health, requests completed, latency sum, span), then scores once a second with the ForecastScorer (the baselines and the weight) while one new sample per endpoint arrives before each tick. LSTM off: the baselines alone. LSTM on, as \`augur serve\` runs by default: its worker thread (TensorFlow.js on WebAssembly) is started, each endpoint's training rows are filled to the worker's cap (\`forecast.lstm.trainingRows\`, as after ringSize intervals), the first fit runs and ends within the warm-up, and each measured tick includes the LSTM's inference; the worker is in the same process, so its memory and CPU are in the figures. RSS per endpoint is the growth of the process's resident memory from before the first endpoint, after a full GC, divided by N: "samples only" once the rings are full, "scored" after the ticks (forecaster state, cost and weight state added). Scoring CPU is the process's CPU over one \`assess\` divided by N: median and range over ${ticks} ticks after 2 unmeasured ones (the first feeds each endpoint its recent history); "of which the serving thread" is the main thread's own part of it (/proc/self/task/<pid>/stat, in 10 ms clock ticks), "of which the LSTM worker" the worker thread's (its thread id as the worker reads it from /proc/thread-self), the rest being V8's and libuv's helper threads (concurrent marking of the GC, parallel scavenges). "Whole tick, lists included" is what a tick of \`augur serve\` costs: after the memory is read, ${ticks} more ticks (after one unmeasured) run through the prioritizer (\`src/lps/prioritizer.ts\`), which asks the same scorer, then builds, sorts and publishes each service's list; its samples arrive on the wall clock, which the prioritizer reads (the earlier ones lag it by the set-up's time), and the lists it keeps are not in the RSS columns. Lag is \`monitorEventLoopDelay\` (1 ms resolution) over the measured ticks. The base tree is commit \`${base}\` (\`git archive\`, compiled the same way with this checkout's node_modules) in the same run.`,
    '',
    table,
    '',
    ratios ? `**This tree against the base**: ${ratios}.` : '',
    '',
    flagsLine
      ? `**What the image's node flags buy** (this tree, ring 720, LSTM off, without → with \`${imageFlags}\`): ${flagsLine}.`
      : '',
    '',
    marginal
      ? `**RSS per endpoint added** from ${sizes[0]} to ${sizes[sizes.length - 1]} endpoints (the growth of the scored process over the endpoints added, so fixed costs cancel): ${marginal}.`
      : '',
    '',
    lstmLine,
    '',
    `Targets (issue 13): ≤ 20 KB per endpoint at the default history (720 samples), ≤ 25 µs of scoring CPU per endpoint per tick, event-loop lag p99 < 50 ms. Machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), shared with other work; load average at the end of the run: ${load}.`,
  ].join('\n');
  const runs =
    repeat > 1
      ? `Each row is ${repeat} runs of the child, one after the other: scoring CPU is the median and range over the measured ticks of every run, RSS and lag p99 the median of the runs, lag max the largest. `
      : '';
  writeBenchmarkSection(
    lstmOnly
      ? `Memory and scoring per endpoint (LPS), LSTM on, ${repeat} runs`
      : 'Memory and scoring per endpoint (LPS)',
    `npm run bench:ingest -- ${argv.join(' ')}`,
    lstmOnly
      ? `${runs}The rows of the section above with the LSTM on, as \`augur serve\` runs by default, repeated; how each run is made is written there.\n\n${table}\n\n**RSS per endpoint added** from ${sizes[0]} to ${sizes[sizes.length - 1]} endpoints: ${marginal || '—'}.\n\nTargets (issue 13): ≤ 25 µs of scoring CPU per endpoint per tick, ≤ 20 KB per endpoint. Machine: ${cpus().length} cores, shared with other work; load average at the end of the run: ${load}.`
      : runs + body,
  );
}
