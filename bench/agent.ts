/**
 * npm run bench:agent — what the EPM agent costs its host: CPU (its own and its
 * children's) and RSS of the real `augur agent` CLI sampling at a 1 s interval
 * and reporting to a real LPS on loopback, against an idle Node process
 * measured over the same window.
 *
 * The agent runs compiled (tsc output, plain `node`), not under tsx, whose
 * loader would add its own memory and CPU. Processes measured side by side:
 *   - `augur agent` through the package's CLI entry (src/cli/main.js), as users run it;
 *   - the same agent through an entry that registers only the agent command,
 *     to separate the agent's own cost from modules other subcommands load;
 *   - `node -e "setInterval(() => {}, 1000)"`, the idle baseline.
 *
 * Options: --duration=SECONDS (default 60), --interval=SECONDS (default 1),
 * --no-build (reuse the last compiled output).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/serve/config.js';
import { startControlPlane } from '../src/serve/control-plane.js';
import { markdownTable, writeBenchmarkSection } from './report.js';

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k!, v ?? 'true'] as [string, string];
  }),
);
const DURATION = Number(args.get('duration') ?? 60);
const INTERVAL = Number(args.get('interval') ?? 1);
const WARMUP_SECONDS = 5;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = join(ROOT, 'node_modules/.cache/augur-bench-agent');
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU seconds (user + system, plus reaped children) of a process and its live descendants. */
function cpuSeconds(pid: number): number {
  let ticks = 0;
  const visit = (p: number) => {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${p}/stat`, 'latin1');
    } catch {
      return; // exited
    }
    // Fields after the parenthesised command name: utime is field 14, cstime field 17.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
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

function build(): void {
  if (args.get('build') === 'false' || args.has('no-build')) {
    if (!existsSync(join(OUT, 'src/cli/main.js')))
      throw new Error(`--no-build: nothing compiled in ${OUT}`);
    return;
  }
  process.stdout.write(`compiling with tsc into ${OUT} ...\n`);
  try {
    execFileSync('npx', ['tsc', '-p', '.', '--outDir', OUT], { cwd: ROOT, stdio: 'ignore' });
  } catch {
    // Type errors elsewhere in the tree still emit JavaScript; what matters is that the entry exists.
  }
  if (!existsSync(join(OUT, 'src/cli/main.js'))) throw new Error('tsc produced no src/cli/main.js');
  // The CLI finds proto/ two levels above src/common; give the compiled tree one.
  if (!existsSync(join(OUT, 'proto'))) symlinkSync(join(ROOT, 'proto'), join(OUT, 'proto'));
}

interface Measured {
  name: string;
  child: ChildProcess;
  cpuAtStart: number;
  cpuAtEnd: number;
  rss: number[];
}

function spawnMeasured(name: string, argv: string[]): Measured {
  const child = spawn(process.execPath, argv, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (d: Buffer) => process.stderr.write(`[${name}] ${d}`));
  return { name, child, cpuAtStart: 0, cpuAtEnd: 0, rss: [] };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (b: number) => (b / 1024 / 1024).toFixed(1);

async function main(): Promise<void> {
  if (DURATION < 60)
    process.stdout.write(`note: --duration=${DURATION} is below the 60 s the issue asks for\n`);
  build();
  writeFileSync(
    join(OUT, 'agent-only.mjs'),
    [
      "import { Command } from 'commander';",
      "import { registerAgentCommand } from './src/agent/cli.js';",
      "const program = new Command('augur');",
      'registerAgentCommand(program);',
      'await program.parseAsync(process.argv);',
    ].join('\n'),
  );

  const dataDir = mkdtempSync(join(tmpdir(), 'augur-bench-agent-'));
  const plane = await startControlPlane({
    config: loadConfig({
      env: {},
      flags: { grpcListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', dataDir, logLevel: 'warn' },
    }),
  });
  // The endpoint the agents probe: a real HTTP server answering /healthz.
  const backend = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const backendAddr = `127.0.0.1:${(backend.address() as AddressInfo).port}`;

  const agentArgs = (id: string) => [
    'agent',
    '--lps',
    plane.grpcAddress,
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
  const procs = [
    spawnMeasured('augur agent (CLI entry)', [
      join(OUT, 'src/cli/main.js'),
      ...agentArgs('bench-cli'),
    ]),
    spawnMeasured('agent command alone', [join(OUT, 'agent-only.mjs'), ...agentArgs('bench-core')]),
    spawnMeasured('idle node (baseline)', ['-e', 'setInterval(() => {}, 1000)']),
  ];
  const ids = ['bench-cli', 'bench-core'];

  try {
    process.stdout.write(
      `warming up ${WARMUP_SECONDS} s, then measuring ${DURATION} s at a ${INTERVAL} s interval\n`,
    );
    await sleep(WARMUP_SECONDS * 1000);
    for (const p of procs) {
      if (p.child.exitCode !== null)
        throw new Error(`${p.name} exited early (${p.child.exitCode})`);
    }
    const startupCpu = procs.map((p) => cpuSeconds(p.child.pid!));
    const storedAtStart = ids.map((id) => plane.lps.store.get(id)?.samplesStored ?? 0);
    for (const p of procs) p.cpuAtStart = cpuSeconds(p.child.pid!);
    const t0 = performance.now();
    for (let s = 0; s < DURATION; s++) {
      await sleep(1000);
      for (const p of procs) p.rss.push(rssBytes(p.child.pid!));
    }
    for (const p of procs) p.cpuAtEnd = cpuSeconds(p.child.pid!);
    const window = (performance.now() - t0) / 1000;
    const delivered = ids.map(
      (id, i) => (plane.lps.store.get(id)?.samplesStored ?? 0) - storedAtStart[i]!,
    );

    // Stop the agents as a user would; they must exit 0 and say goodbye.
    const exits = await Promise.all(
      procs.map(
        (p) =>
          new Promise<number | string>((resolve) => {
            p.child.once('exit', (code, signal) => resolve(code ?? String(signal)));
            p.child.kill('SIGTERM');
          }),
      ),
    );

    const pct = (p: Measured) => ((p.cpuAtEnd - p.cpuAtStart) / window) * 100;
    const rows = procs.map((p, i) => [
      p.name,
      `${pct(p).toFixed(3)} %`,
      `${mb(p.rss.reduce((a, b) => a + b, 0) / p.rss.length)} MB`,
      `${mb(Math.max(...p.rss))} MB`,
      `${startupCpu[i]!.toFixed(2)} s`,
      i < ids.length ? `${delivered[i]} / ${Math.round(window / INTERVAL)}` : '',
      i < ids.length ? String(exits[i]) : '',
    ]);
    const [cli, core, idle] = procs as [Measured, Measured, Measured];
    const cliPct = pct(cli);
    const cliRss = Math.max(...cli.rss);
    const verdict = (ok: boolean) => (ok ? 'met' : '**not met**');
    const body = [
      `The compiled \`augur agent\` (plain \`node\`, no tsx loader) samples at a ${INTERVAL} s interval for ${Math.round(window)} s, ` +
        `probing a local HTTP endpoint and reporting to an in-process LPS over gRPC on loopback. ` +
        `CPU is user + system time of the process and its children (from /proc/<pid>/stat), ` +
        `as a share of one core over the window; RSS is VmRSS sampled each second. ` +
        `The first ${WARMUP_SECONDS} s (module loading, connecting) are left out and shown as start-up CPU.`,
      '',
      markdownTable(
        [
          'process',
          'CPU (% of one core)',
          'RSS mean',
          'RSS max',
          'start-up CPU',
          'samples stored / expected',
          'exit on SIGTERM',
        ],
        rows,
      ),
      '',
      `Targets for \`augur agent\`: CPU < 0.5 % of one core: ${verdict(cliPct < 0.5)} (${cliPct.toFixed(3)} %); ` +
        `RSS < 80 MB: ${verdict(cliRss < 80 * 1024 * 1024)} (${mb(cliRss)} MB max).`,
      '',
      `Above the idle Node baseline: CPU +${(cliPct - pct(idle)).toFixed(3)} points, ` +
        `RSS +${mb(cliRss - Math.max(...idle.rss))} MB through the CLI entry, ` +
        `+${mb(Math.max(...core.rss) - Math.max(...idle.rss))} MB for the agent command alone ` +
        `(the difference is what the other subcommands' modules cost when the CLI loads them up front).`,
      '',
      'Per tick the agent reads /proc/stat, /proc/meminfo and /proc/net/dev and spawns no process ' +
        '(systeminformation, which spawns shells, is loaded only on other platforms).',
    ].join('\n');
    writeBenchmarkSection(
      'EPM agent cost',
      `npm run bench:agent${DURATION !== 60 ? ` -- --duration=${DURATION}` : ''}`,
      body,
    );
  } finally {
    for (const p of procs)
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    backend.close();
    await plane.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
