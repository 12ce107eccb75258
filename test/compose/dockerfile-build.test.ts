import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, symlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO } from './compose-support.js';
import {
  DockerIgnore,
  buildStages,
  execForm,
  parseDockerfile,
  runShell,
  snapshotContext,
  type BuiltStage,
  type StepLog,
} from './dockerfile.js';

/**
 * The Dockerfile builds what `npm ci && npm run build` builds. Without Docker, its steps run
 * here for real: the build context is what .dockerignore lets through, each stage gets its
 * own folder, the npm steps run as written (npm may use this machine's cache:
 * npm_config_prefer_offline), and the runtime stage's dist/src is compared file by file with
 * `npm run build` of the same sources. Then the runtime stage alone (production dependencies,
 * no sources) runs `augur serve`, and the image's HEALTHCHECK command passes against it.
 * The build stage's full `npm ci` reuses this checkout's node_modules (the same lockfile,
 * checked package by package); the runtime stage's production `npm ci` and both tsc builds run.
 */

const dockerfile = parseDockerfile(readFileSync(join(REPO, 'Dockerfile'), 'utf8'));
const work = mkdtempSync(join(tmpdir(), 'augur-dockerfile-'));
const children: ChildProcess[] = [];

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  // Two node_modules trees: removing them takes a while on a busy disk.
  await rm(work, { recursive: true, force: true });
}, 180_000);

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const visit = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) visit(p);
      else out.push(relative(dir, p));
    }
  };
  visit(dir);
  return out.sort();
}

const digest = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('Dockerfile', () => {
  it('pins Node 20 by patch version, runs the CLI as a non-root user, and probes its health', () => {
    const runtime = dockerfile.stages[dockerfile.stages.length - 1]!;
    expect(dockerfile.stages.map((s) => s.name)).toEqual(['build', 'runtime']);
    for (const s of dockerfile.stages) expect(s.base).toMatch(/^node:20\.\d+\.\d+-[a-z]+-slim$/);
    const last = (k: string) =>
      runtime.instructions
        .filter((i) => i.keyword === k)
        .map((i) => i.args)
        .pop();
    expect(last('USER')).toBe('node');
    // node, its flags (V8's young generation capped: BENCHMARKS.md, footprint), the CLI
    const entrypoint = execForm(last('ENTRYPOINT')!);
    expect(entrypoint).toEqual(['node', '--max-semi-space-size=4', 'dist/src/cli/main.js']);
    // `npm start` (the demo) and `npm run augur` run node with the image's flags.
    const scripts = (
      JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
        scripts: Record<string, string>;
      }
    ).scripts;
    const flags = entrypoint.slice(1, -1).join(' ');
    expect(scripts.start).toMatch(new RegExp(`^node ${flags} `));
    expect(scripts.augur).toMatch(new RegExp(`^node ${flags} `));
    expect(execForm(last('CMD')!)[0]).toBe('serve');
    expect(last('HEALTHCHECK')).toMatch(/CMD \["node", "docker\/healthcheck.mjs"/);
  });

  it('builds the same dist/src as `npm ci && npm run build`, and its runtime stage serves', async () => {
    // One snapshot of the working tree feeds both builds, so an edit meanwhile cannot split them.
    const context = join(work, 'context');
    const ignore = new DockerIgnore(readFileSync(join(REPO, '.dockerignore'), 'utf8'));
    const sent = snapshotContext(REPO, ignore, context);
    expect(sent).toContain('package-lock.json');
    expect(sent.some((f) => f.startsWith('node_modules/') || f.startsWith('dist/'))).toBe(false);

    const reference = join(work, 'reference');
    for (const p of ['src', 'bench', 'test', 'scripts', 'proto']) {
      if (existsSync(join(REPO, p)))
        cpSync(join(REPO, p), join(reference, p), {
          recursive: true,
          filter: (s) => !s.includes('node_modules'),
        });
    }
    for (const f of ['package.json', 'package-lock.json', 'tsconfig.json'])
      cpSync(join(REPO, f), join(reference, f));
    // This checkout's node_modules is `npm ci` of the same lockfile.
    symlinkSync(join(REPO, 'node_modules'), join(reference, 'node_modules'));

    const log: StepLog[] = [];
    const t0 = performance.now();
    // Both to the end, even if one fails: no npm or tsc left running after the test.
    const [dockerBuild, npmBuild] = await Promise.allSettled([
      buildStages(
        dockerfile,
        {
          contextDir: context,
          workDir: join(work, 'stages'),
          env: { npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false' },
          // Hang guards: under two busy loops and other builds, one tsc took over 4 minutes.
          timeoutMs: 600_000,
          // The build stage's full `npm ci` is this checkout's install (same lockfile):
          // linked, not run again. The runtime stage's production install runs for real.
          reuseNodeModules: join(REPO, 'node_modules'),
        },
        log,
      ),
      runShell('npm run build', reference, process.env, 600_000),
    ]);
    if (npmBuild.status === 'rejected') throw npmBuild.reason;
    if (dockerBuild.status === 'rejected') throw dockerBuild.reason;
    const stages = dockerBuild.value;
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `Dockerfile steps without Docker, ${seconds.toFixed(0)} s:\n` +
        log
          .map(
            (s) =>
              `  [${s.stage}] ${s.ran ? 'ran' : s.reused ? `reused ${s.reused}` : 'not run'}: ${s.step}${s.ms ? ` (${(s.ms / 1000).toFixed(0)} s)` : ''}`,
          )
          .join('\n'),
    );
    // Every step that could change an artefact ran, but the one full install, which is
    // this checkout's own (checked against the lockfile); the production install ran.
    expect(
      log
        .filter((s) => !s.ran && !s.reused)
        .every((s) => /^(npm cache|mkdir -p \/|chown )/.test(s.step)),
    ).toBe(true);
    expect(log.filter((s) => s.reused).map((s) => [s.stage, s.step.split(' ')[1]])).toEqual([
      ['build', 'ci'],
    ]);
    expect(
      log.some((s) => s.ran && s.stage === 'runtime' && /^npm ci --omit=dev/.test(s.step)),
    ).toBe(true);

    const runtime = stages.get('runtime')!;
    const app = join(runtime.root, runtime.workdir);
    const built = filesUnder(join(app, 'dist/src')).filter(
      (f) => !f.startsWith('dashboard/static/'),
    );
    const expected = filesUnder(join(reference, 'dist/src'));
    expect(built).toEqual(expected);
    expect(expected).toContain('cli/main.js');
    const different = expected.filter(
      (f) => digest(join(app, 'dist/src', f)) !== digest(join(reference, 'dist/src', f)),
    );
    expect(different).toEqual([]);
    // `npm run build` also compiles bench/, test/ and scripts/, which the image does not ship.
    for (const d of readdirSync(join(reference, 'dist')))
      expect(['src', 'bench', 'test', 'scripts']).toContain(d);

    // The dashboard's static files ride along beside its compiled server.
    expect(filesUnder(join(app, 'dist/src/dashboard/static'))).toEqual(
      filesUnder(join(REPO, 'src/dashboard/static')),
    );
    await checkRuntime(runtime, app);
  }, 900_000);
});

/** Production dependencies only, and `augur serve` starts from the stage alone, healthy. */
async function checkRuntime(runtime: BuiltStage, app: string): Promise<void> {
  // What the lockfile marks dev or optional is absent; everything else is installed.
  const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; optional?: boolean; devOptional?: boolean }>;
  };
  const wrong: string[] = [];
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '') continue;
    const omitted = entry.dev || entry.optional || entry.devOptional;
    if (existsSync(join(app, path)) === Boolean(omitted)) wrong.push(path);
  }
  expect(wrong).toEqual([]);
  expect(existsSync(join(app, 'node_modules/typescript'))).toBe(false);
  expect(existsSync(join(app, 'node_modules/@grpc/grpc-js'))).toBe(true);
  expect(existsSync(join(app, 'src'))).toBe(false); // sources stay in the build stage
  expect(existsSync(join(app, 'proto/augur/v1/telemetry.proto'))).toBe(true);

  const [command, ...args] = execForm(runtime.meta.get('ENTRYPOINT')!);
  expect(command).toBe('node');
  const dataDir = join(work, 'data');
  const child = spawn(
    process.execPath,
    [
      ...args,
      'serve',
      '--grpc-listen',
      '127.0.0.1:0',
      '--http-listen',
      '127.0.0.1:0',
      '--data-dir',
      dataDir,
    ],
    {
      cwd: app,
      // Only what the image sets: no NODE_PATH, no tsx, no repository around it.
      env: { PATH: process.env.PATH, HOME: work, ...runtime.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.push(child);
  let output = '';
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const httpUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`augur serve did not start:\n${output}`)),
      60_000,
    );
    child.stdout!.on('data', (d: Buffer) => {
      output += d.toString();
      const m = /"http":"(http:\/\/[^"]+)"/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.on('exit', (code) => reject(new Error(`augur serve exited ${code}:\n${output}`)));
  });

  // The image's own HEALTHCHECK command, pointed at this port.
  const health = execForm(runtime.meta.get('HEALTHCHECK')!.replace(/^(--\S+\s+)*CMD\s+/, ''));
  expect(health.slice(0, 2)).toEqual(['node', 'docker/healthcheck.mjs']);
  await runShell(`node docker/healthcheck.mjs ${httpUrl}/healthz`, app, process.env, 20_000);
  const dashboard = await fetch(`${httpUrl}/dashboard`);
  expect(dashboard.status).toBe(200);
  await dashboard.text();

  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
}
