/**
 * npm run bench:agent — what the EPM agent costs its host: CPU (its own and its
 * children's) and RSS of the compiled `augur agent` CLI (`npm run build`'s dist/,
 * plain `node`, no tsx loader) sampling at a 1 s interval, in two cases run side
 * by side in the same window, against an idle Node process:
 *   (a) host load and an HTTP probe, reporting to an LPS in this process over gRPC on loopback;
 *   (b) every signal on: the HTTP probe, the endpoint's own CPU (`--process-pid` of the
 *       backend's process) and its completed requests and latency from its Prometheus
 *       metrics (`--metrics-url` with `--requests-metric` and `--latency-metric`),
 *       reporting to a real `augur serve` child process;
 *   (c) host load alone (`--health-none`, no other signal) to the same `augur serve`:
 *       the floor, what the timer, /proc and the gRPC stream cost by themselves.
 * The backend is bench/agent-backend.ts in its own process; this process sends it
 * 20 requests/s so its counters move. Each repetition starts fresh agents, leaves
 * out a warm-up, then measures for --duration seconds.
 *
 * Options: --duration=SECONDS (default 60), --warmup=SECONDS (default 40, left out),
 * --interval=SECONDS (default 1),
 * --reps=N (default 5), --no-build (reuse dist/), --base=COMMIT (also run that
 * commit's agent in case (b) in the same window: `git archive` + tsc in a temporary
 * folder), --profile[=DIR] (one more case-(b) agent under `node --cpu-prof` in the first
 * repetition, not in the table; its top self-time functions are printed; with DIR the
 * .cpuprofile is kept there), --no-write (print, do not
 * rewrite BENCHMARKS.md).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ProbeHealth } from '../src/gen/augur/v1/common.js';
import { LoadPredictionClient, type EndpointInfo } from '../src/gen/augur/v1/load_prediction.js';
import { loadConfig } from '../src/serve/config.js';
import { startControlPlane } from '../src/serve/control-plane.js';
import { buildBase, buildTree, DIST, ROOT } from './compile.js';
import { formatSummary, summarizeProfile } from './cpu-profile-top.js';
import { statCpuTicks } from './proc-stat.js';
import { markdownTable, writeBenchmarkSection } from './report.js';

/** `--key=value`, `--key value` or a bare `--flag` (value 'true'). */
const args = new Map<string, string>();
for (let i = 2, argv = process.argv; i < argv.length; i++) {
  const a = argv[i]!;
  if (!a.startsWith('--')) throw new Error(`bench:agent: unexpected argument "${a}"`);
  const eq = a.indexOf('=');
  if (eq > 0) args.set(a.slice(2, eq), a.slice(eq + 1));
  else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--'))
    args.set(a.slice(2), argv[++i]!);
  else args.set(a.slice(2), 'true');
}
const DURATION = Number(args.get('duration') ?? 60);
const INTERVAL = Number(args.get('interval') ?? 1);
const REPS = Number(args.get('reps') ?? 5);
const BASE = args.get('base');
const PROFILE = args.has('profile');
/**
 * Left out before measuring: module loading, connecting, the first run of each code path
 * (compiled lazily; the first own-CPU rescan is at 10 s), and V8's memory reducer, which
 * runs two full mark-compacts 9-25 s after start (with a 20 s warm-up they fell inside the
 * window in 8 of 20 agent-windows, adding 0.06-0.08 points). Measured on this machine, an
 * agent spends about 1.4 % of a core from 5 to 20 s and 0.5 % after.
 */
const WARMUP_SECONDS = Number(args.get('warmup') ?? 40);
const TRAFFIC_PER_SECOND = 20;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU seconds (user + system, plus reaped children) of a process and its live descendants. */
function cpuSeconds(pid: number): number {
  let ticks = 0;
  const visit = (p: number) => {
    const own = statCpuTicks(`/proc/${p}/stat`, true);
    if (Number.isNaN(own)) return; // exited
    ticks += own;
    for (const child of children(p)) visit(child);
  };
  visit(pid);
  return ticks / CLK_TCK;
}

function children(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1')
        .trim()
        .split(/\s+/)) {
        if (c) out.push(Number(c));
      }
    } catch {
      // thread gone
    }
  }
  return out;
}

/** Resident set of a process and its live descendants, bytes. */
function rssBytes(pid: number): number {
  let kb = 0;
  const visit = (p: number) => {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'latin1'));
      kb += m ? Number(m[1]) : 0;
    } catch {
      return;
    }
    for (const child of children(p)) visit(child);
  };
  visit(pid);
  return kb * 1024;
}

/** Reads stdout until `pattern` matches; rejects if the child exits first. */
function waitForLine(child: ChildProcess, pattern: RegExp, what: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (chunk: Buffer) => {
      buf += chunk.toString();
      const m = pattern.exec(buf);
      if (m) {
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        child.off('exit', onExit);
        resolve(m);
      }
    };
    const onExit = (code: number | null) =>
      reject(new Error(`${what} exited (${code}) before it was ready: ${buf.slice(-500)}`));
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}

function stopChild(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<number | string> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.exitCode ?? String(child.signalCode));
  return new Promise((resolve) => {
    child.once('exit', (code, sig) => resolve(code ?? String(sig)));
    child.kill(signal);
  });
}

type Case = 'a' | 'b' | 'c' | 'base' | 'idle' | 'profile';

interface Measured {
  name: string;
  kind: Case;
  endpointId?: string;
  child: ChildProcess;
  cpuAtStart: number;
  cpuAtEnd: number;
  rss: number[];
}

interface RepResult {
  /** CPU seconds spent in the warm-up. */
  startup: Map<Case, number>;
  cpuPct: Map<Case, number>;
  rssMax: Map<Case, number>;
  stored: Map<Case, number>;
  expected: number;
  exits: Map<Case, number | string>;
  signals: Map<Case, string>;
  load: [number, number];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const spread = (xs: number[], digits: number, unit = '') =>
  `${median(xs).toFixed(digits)}${unit} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;

/** Which signals the newest stored sample carries. */
function signalsOf(info: EndpointInfo | undefined): string {
  const s = info?.latest;
  if (!s) return 'none stored';
  const have = [
    'host CPU',
    s.health === ProbeHealth.PROBE_HEALTH_SERVING
      ? 'probe serving'
      : `probe ${ProbeHealth[s.health] ?? s.health}`,
  ];
  if (s.processCpuUsage !== undefined) have.push('own CPU');
  if (s.requestsCompleted !== undefined) have.push('requests');
  if (s.latencySumSeconds !== undefined) have.push('latency sum');
  return have.join(', ');
}

async function main(): Promise<void> {
  if (DURATION < 60)
    process.stdout.write(`note: --duration=${DURATION} is below the 60 s the issue asks for\n`);
  // The agent measured is the one users install: compiled, plain node.
  buildTree(args.has('no-build'));
  const baseDir = BASE ? buildBase(BASE, 'src/cli/main.js') : undefined;
  // --profile=DIR keeps the profile there; a bare --profile uses a temporary folder.
  const keptProfileDir =
    PROFILE && args.get('profile') !== 'true' ? args.get('profile') : undefined;
  if (keptProfileDir) mkdirSync(keptProfileDir, { recursive: true });
  const profileDir = PROFILE
    ? (keptProfileDir ?? mkdtempSync(join(tmpdir(), 'augur-bench-agent-prof-')))
    : undefined;

  // (a)'s LPS, in this process as before.
  const dataDir = mkdtempSync(join(tmpdir(), 'augur-bench-agent-'));
  const plane = await startControlPlane({
    config: loadConfig({
      env: {},
      flags: { grpcListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', dataDir, logLevel: 'warn' },
    }),
  });
  // (b)'s LPS: a real `augur serve`, compiled, in its own process.
  const serveDir = mkdtempSync(join(tmpdir(), 'augur-bench-agent-serve-'));
  const serve = spawn(
    process.execPath,
    [
      join(DIST, 'src/cli/main.js'),
      'serve',
      '--grpc-listen',
      '127.0.0.1:0',
      '--http-listen',
      '127.0.0.1:0',
      '--data-dir',
      serveDir,
    ],
    {
      cwd: ROOT,
      env: { ...process.env, AUGUR_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const backend = spawn(process.execPath, [join(DIST, 'bench/agent-backend.js')], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const procs: Measured[] = [];
  let traffic: NodeJS.Timeout | undefined;
  let lpsClient: LoadPredictionClient | undefined;
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });
  try {
    const serveGrpc = (await waitForLine(serve, /"grpc":"([^"]+)"/, 'augur serve'))[1]!;
    const backendPort = Number((await waitForLine(backend, /"port":(\d+)/, 'the backend'))[1]);
    const backendAddr = `127.0.0.1:${backendPort}`;
    lpsClient = new LoadPredictionClient(serveGrpc, grpc.credentials.createInsecure());
    const client = lpsClient;
    const listServe = () =>
      new Promise<EndpointInfo[]>((resolve, reject) =>
        client.listEndpoints({ service: '' }, (err, res) =>
          err ? reject(err) : resolve(res.endpoints),
        ),
      );
    traffic = setInterval(() => {
      http
        .get({ host: '127.0.0.1', port: backendPort, path: '/work', agent: keepAlive }, (res) =>
          res.resume(),
        )
        .on('error', () => {});
    }, 1000 / TRAFFIC_PER_SECOND);

    const common = (lps: string, id: string) => [
      'agent',
      '--lps',
      lps,
      '--endpoint-id',
      id,
      '--service',
      'bench',
      '--address',
      backendAddr,
      '--health-url',
      `http://${backendAddr}/healthz`,
      '--interval',
      String(INTERVAL),
      '--log-level',
      'warn',
    ];
    const everySignal = [
      '--process-pid',
      String(backend.pid),
      '--metrics-url',
      `http://${backendAddr}/metrics`,
      '--requests-metric',
      'http_requests_total{code!~"5.."}',
      '--latency-metric',
      'http_request_duration_seconds',
    ];
    const spawnMeasured = (name: string, kind: Case, argv: string[], endpointId?: string) => {
      const child = spawn(process.execPath, argv, {
        cwd: ROOT,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      child.stderr!.on('data', (d: Buffer) => process.stderr.write(`[${name}] ${d}`));
      const m: Measured = { name, kind, endpointId, child, cpuAtStart: 0, cpuAtEnd: 0, rss: [] };
      procs.push(m);
      return m;
    };

    const names: Record<Case, string> = {
      a: '(a) agent → LPS in-process: host load + HTTP probe',
      b: '(b) agent → `augur serve`: HTTP probe + own CPU + requests/latency',
      c: '(c) agent → `augur serve`: host load alone (`--health-none`)',
      base: `(b) at base ${BASE ?? ''}`,
      idle: 'idle node (baseline)',
      profile: '(b) under --cpu-prof',
    };
    const results: RepResult[] = [];
    process.stdout.write(
      `${REPS} repetitions: warm-up ${WARMUP_SECONDS} s, then ${DURATION} s measured at a ${INTERVAL} s interval; ` +
        `${cpus().length} cores, load average ${loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}\n`,
    );
    for (let rep = 0; rep < REPS; rep++) {
      procs.length = 0;
      const main = join(DIST, 'src/cli/main.js');
      spawnMeasured(names.a, 'a', [main, ...common(plane.grpcAddress, `a-${rep}`)], `a-${rep}`);
      spawnMeasured(
        names.b,
        'b',
        [main, ...common(serveGrpc, `b-${rep}`), ...everySignal],
        `b-${rep}`,
      );
      spawnMeasured(
        names.c,
        'c',
        [
          main,
          ...common(serveGrpc, `c-${rep}`).filter(
            (a) => !a.startsWith('--health-url') && !a.includes('/healthz'),
          ),
          '--health-none',
        ],
        `c-${rep}`,
      );
      if (baseDir)
        spawnMeasured(
          names.base,
          'base',
          [
            join(baseDir, 'dist/src/cli/main.js'),
            ...common(serveGrpc, `base-${rep}`),
            ...everySignal,
          ],
          `base-${rep}`,
        );
      spawnMeasured(names.idle, 'idle', ['-e', 'setInterval(() => {}, 1000)']);
      if (profileDir && rep === 0)
        spawnMeasured(
          names.profile,
          'profile',
          [
            '--cpu-prof',
            `--cpu-prof-dir=${profileDir}`,
            main,
            ...common(serveGrpc, `prof-${rep}`),
            ...everySignal,
          ],
          `prof-${rep}`,
        );

      await sleep(WARMUP_SECONDS * 1000);
      const startup = new Map(procs.map((p) => [p.kind, cpuSeconds(p.child.pid!)]));
      for (const p of procs)
        if (p.child.exitCode !== null)
          throw new Error(`${p.name} exited early (${p.child.exitCode})`);
      const load0 = loadavg()[0]!;
      const storedNow = async () => {
        const listed = new Map((await listServe()).map((e) => [e.endpointId, e]));
        const out = new Map<Case, number>();
        for (const p of procs) {
          if (!p.endpointId) continue;
          out.set(
            p.kind,
            p.kind === 'a'
              ? (plane.lps.store.get(p.endpointId)?.samplesStored ?? 0)
              : (listed.get(p.endpointId)?.samplesStored ?? 0),
          );
        }
        return { out, listed };
      };
      const before = (await storedNow()).out;
      for (const p of procs) p.cpuAtStart = cpuSeconds(p.child.pid!);
      const t0 = performance.now();
      for (let s = 0; s < DURATION; s++) {
        await sleep(1000);
        for (const p of procs) p.rss.push(rssBytes(p.child.pid!));
      }
      for (const p of procs) p.cpuAtEnd = cpuSeconds(p.child.pid!);
      const window = (performance.now() - t0) / 1000;
      const after = await storedNow();
      const load1 = loadavg()[0]!;
      const exits = new Map<Case, number | string>();
      await Promise.all(procs.map(async (p) => exits.set(p.kind, await stopChild(p.child))));
      const r: RepResult = {
        startup,
        cpuPct: new Map(),
        rssMax: new Map(),
        stored: new Map(),
        expected: Math.round(window / INTERVAL),
        exits,
        signals: new Map(),
        load: [load0, load1],
      };
      for (const p of procs) {
        r.cpuPct.set(p.kind, ((p.cpuAtEnd - p.cpuAtStart) / window) * 100);
        r.rssMax.set(p.kind, Math.max(...p.rss));
        if (p.endpointId) {
          r.stored.set(p.kind, after.out.get(p.kind)! - before.get(p.kind)!);
          r.signals.set(
            p.kind,
            p.kind === 'a'
              ? 'host CPU, probe serving'
              : p.kind === 'c'
                ? // --health-none: no probe runs; the LPS keeps only a healthy flag, so it lists SERVING.
                  signalsOf(after.listed.get(p.endpointId)).replace(
                    'probe serving',
                    'no probe (`--health-none`)',
                  )
                : signalsOf(after.listed.get(p.endpointId)),
          );
        }
      }
      results.push(r);
      process.stdout.write(
        `rep ${rep + 1}/${REPS} (load ${load0.toFixed(2)}→${load1.toFixed(2)}): ` +
          [...r.cpuPct]
            .map(
              ([k, v]) =>
                `${k} ${v.toFixed(3)} %${r.stored.has(k) ? ` ${r.stored.get(k)}/${r.expected}` : ''}`,
            )
            .join(', ') +
          '\n',
      );
    }

    let profileText = '';
    if (profileDir) {
      const file = readdirSync(profileDir)
        .filter((f) => f.endsWith('.cpuprofile'))
        .sort()
        .pop();
      if (!file) throw new Error(`--profile: no .cpuprofile written in ${profileDir}`);
      profileText = formatSummary(
        summarizeProfile(readFileSync(join(profileDir, file), 'utf8'), 25, DIST, WARMUP_SECONDS),
      );
      process.stdout.write(`\nCPU profile of ${names.profile}, rep 1:\n${profileText}\n`);
    }

    const kinds: Case[] = ['a', 'b', 'c', ...(baseDir ? (['base'] as Case[]) : []), 'idle'];
    const col = (k: Case, f: (r: RepResult) => number | undefined) =>
      results.map(f).filter((v): v is number => v !== undefined && Number.isFinite(v));
    const rows = kinds.map((k) => {
      const cpu = col(k, (r) => r.cpuPct.get(k));
      const aboveIdle = col(k, (r) => r.cpuPct.get(k)! - r.cpuPct.get('idle')!);
      const rss = col(k, (r) => r.rssMax.get(k));
      const stored = results.reduce((a, r) => a + (r.stored.get(k) ?? 0), 0);
      const expected = results.reduce((a, r) => a + r.expected, 0);
      return [
        names[k],
        `${spread(cpu, 3, ' %')}`,
        k === 'idle' ? '' : `${spread(aboveIdle, 3)}`,
        `${spread(
          col(k, (r) => r.startup.get(k)),
          2,
          ' s',
        )}`,
        `${spread(
          rss.map((b) => b / 1024 / 1024),
          1,
          ' MB',
        )}`,
        k === 'idle' ? '' : `${stored} / ${expected}`,
        k === 'idle' ? '' : (results[results.length - 1]!.signals.get(k) ?? ''),
        k === 'idle' ? '' : results.map((r) => r.exits.get(k)).join(' '),
      ];
    });
    const loads = results.flatMap((r) => r.load);
    const bCpu = median(col('b', (r) => r.cpuPct.get('b')));
    const aCpu = median(col('a', (r) => r.cpuPct.get('a')));
    const bRss = Math.max(...col('b', (r) => r.rssMax.get('b')));
    const verdict = (ok: boolean) => (ok ? 'met' : '**not met**');
    const extra = [
      ...(DURATION !== 60 ? [`--duration=${DURATION}`] : []),
      ...(WARMUP_SECONDS !== 40 ? [`--warmup=${WARMUP_SECONDS}`] : []),
      ...(REPS !== 5 ? [`--reps=${REPS}`] : []),
      ...(BASE ? [`--base=${BASE}`] : []),
      ...(PROFILE ? ['--profile'] : []),
    ];
    const command = `npm run bench:agent${extra.length ? ` -- ${extra.join(' ')}` : ''}`;
    const body = [
      `The compiled \`augur agent\` (\`npm run build\`'s dist/, plain \`node\`) samples at a ${INTERVAL} s interval; ` +
        `${REPS} repetitions, each with fresh processes, a ${WARMUP_SECONDS} s warm-up left out, then ${DURATION} s measured; ` +
        `the cases run side by side in the same window. (a): host load from /proc and an HTTP probe of a local backend, ` +
        `reporting to an LPS inside the bench process. (b): every signal the agent has — the HTTP probe, the backend's own CPU ` +
        `(\`--process-pid\`), its completed requests and latency sum from its prom-client \`/metrics\` ` +
        `(\`--requests-metric 'http_requests_total{code!~"5.."}' --latency-metric http_request_duration_seconds\`) — ` +
        `reporting to a real \`augur serve\` child process. (c): host load alone (\`--health-none\`) to the same \`augur serve\`: ` +
        `the floor of the timer, /proc and the gRPC stream. The backend (bench/agent-backend.ts, its own process) gets ` +
        `${TRAFFIC_PER_SECOND} requests/s.` +
        (BASE
          ? ` The base row is commit \`${BASE}\`'s agent in case (b), compiled the same way, in the same window.`
          : ''),
      '',
      `CPU is user + system time of the process and its children (/proc/<pid>/stat) as a share of one core over the ` +
        `window: median (range) over the repetitions; "above idle" is the difference to the idle Node process of the ` +
        `same repetition. RSS: the largest VmRSS sampled each second. Samples stored: counted by the LPS over the windows, ` +
        `against one per interval. Machine: ${cpus().length} cores, shared; load average (1 min) ` +
        `${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)} over the run. CPU time is what the process ` +
        `itself used, so a busy machine moves it less than a latency, but not nothing: a preempted tick, cold caches and ` +
        `a lower clock all show up as more CPU time.`,
      '',
      markdownTable(
        [
          'process',
          'CPU (% of one core)',
          'above idle (points)',
          `start-up CPU (first ${WARMUP_SECONDS} s)`,
          'RSS max',
          'samples stored / expected',
          'signals in the last sample',
          'exit on SIGTERM',
        ],
        rows,
      ),
      '',
      `Targets: CPU < 0.3 % of one core with every signal on (b): ${verdict(bCpu < 0.3)} (${bCpu.toFixed(3)} %); ` +
        `host load and probe only (a): ${verdict(aCpu < 0.3)} (${aCpu.toFixed(3)} %); RSS < 80 MB: ` +
        `${verdict(bRss < 80 * 1024 * 1024)} (${mb(bRss)} MB max).`,
      ...(profileText
        ? [
            '',
            `Where (b)'s time goes: one more case-(b) agent under \`node --cpu-prof\` in the first repetition ` +
              `(not in the table; the profiler costs CPU itself, its own allocations included). V8 samples the ` +
              `thread's stack every millisecond of wall-clock time, so on a loaded machine a function the thread ` +
              `was preempted in collects samples beyond its CPU time. Self time by function after the ` +
              `warm-up (\`tsx bench/cpu-profile-top.ts FILE 25 ${WARMUP_SECONDS}\`):`,
            '',
            '```',
            profileText,
            '```',
          ]
        : []),
    ].join('\n');
    if (args.has('no-write')) process.stdout.write(`\n${body}\n`);
    else writeBenchmarkSection('EPM agent cost', command, body);
  } finally {
    clearInterval(traffic);
    for (const p of procs)
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    lpsClient?.close();
    keepAlive.destroy();
    await Promise.all([stopChild(serve), stopChild(backend)]);
    await plane.stop();
    for (const d of [dataDir, serveDir, baseDir, keptProfileDir ? undefined : profileDir])
      if (d) rmSync(d, { recursive: true, force: true });
  }
}

await main();
