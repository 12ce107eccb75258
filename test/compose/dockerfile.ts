import { spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { basename, dirname, isAbsolute, join, posix, relative } from 'node:path';

/**
 * Just enough of Docker's build to run a Dockerfile's steps without Docker: stages in
 * their own folders, COPY (from the build context as .dockerignore filters it, or from
 * another stage), ENV, WORKDIR, and the RUN steps that make artefacts (npm). RUN steps
 * that only touch the image's system folders (mkdir/chown of an absolute path outside
 * WORKDIR) and `npm cache` housekeeping are listed, not run: they cannot change what is
 * built, and `npm cache clean` would empty this machine's cache.
 */

export interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

export interface Stage {
  name: string;
  base: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  args: Map<string, string>;
  stages: Stage[];
}

export function parseDockerfile(text: string): Dockerfile {
  const logical: Instruction[] = [];
  let buffer = '';
  let startLine = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    if (/^\s*#/.test(line) || (buffer === '' && line.trim() === '')) return;
    if (buffer === '') startLine = i + 1;
    if (line.endsWith('\\')) {
      buffer += line.slice(0, -1) + ' ';
      return;
    }
    buffer += line;
    const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(buffer);
    if (!m) throw new Error(`Dockerfile line ${startLine}: cannot read "${buffer}"`);
    logical.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.trim(), line: startLine });
    buffer = '';
  });
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of logical) {
    if (ins.keyword === 'ARG' && stages.length === 0) {
      const [name, value = ''] = ins.args.split('=');
      args.set(name!, value);
    } else if (ins.keyword === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`Dockerfile line ${ins.line}: cannot read FROM ${ins.args}`);
      const base = m[1]!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => args.get(a ?? b) ?? '');
      stages.push({ name: m[2] ?? String(stages.length), base, instructions: [] });
    } else {
      const stage = stages[stages.length - 1];
      if (!stage) throw new Error(`Dockerfile line ${ins.line}: ${ins.keyword} before FROM`);
      stage.instructions.push(ins);
    }
  }
  return { args, stages };
}

/** `["a", "b"]` (exec form) or a shell string, as an argv. */
export function execForm(args: string): string[] {
  const trimmed = args.trim();
  if (trimmed.startsWith('[')) return JSON.parse(trimmed) as string[];
  return ['/bin/sh', '-c', trimmed];
}

/** .dockerignore as Docker reads it: last matching pattern wins, `!` re-includes, a parent's match counts. */
export class DockerIgnore {
  private readonly rules: Array<{ negate: boolean; re: RegExp; text: string }>;

  constructor(text: string) {
    this.rules = text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => {
        const negate = l.startsWith('!');
        const pattern = posix.normalize((negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, ''));
        return { negate, re: globToRegExp(pattern), text: pattern };
      });
  }

  excludes(path: string): boolean {
    const parts = path.split('/');
    let excluded = false;
    for (const rule of this.rules) {
      for (let n = 1; n <= parts.length; n++) {
        if (rule.re.test(parts.slice(0, n).join('/'))) {
          excluded = !rule.negate;
          break;
        }
      }
    }
    return excluded;
  }

  /** Could a `!` rule re-include something below this excluded folder? */
  mayReinclude(dir: string): boolean {
    return this.rules.some(
      (r) => r.negate && (r.text.startsWith(`${dir}/`) || r.text.includes('*')),
    );
  }
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
      if (glob[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Copies what Docker would send as the build context into `into`; returns the files, relative. */
export function snapshotContext(repo: string, ignore: DockerIgnore, into: string): string[] {
  const files: string[] = [];
  const visit = (rel: string) => {
    const abs = join(repo, rel);
    for (const entry of readdirSync(abs, { withFileTypes: true })) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (ignore.excludes(child) && !ignore.mayReinclude(child)) continue;
        visit(child);
      } else if (entry.isFile() && !ignore.excludes(child)) {
        mkdirSync(dirname(join(into, child)), { recursive: true });
        cpSync(join(repo, child), join(into, child));
        files.push(child);
      }
    }
  };
  visit('');
  return files;
}

export interface StepLog {
  stage: string;
  line: number;
  step: string;
  ran: boolean;
  /** Not run: an install this machine already has was linked in its place. */
  reused?: string;
  ms?: number;
}

export interface BuildOptions {
  contextDir: string;
  /** Each stage's filesystem goes to `<workDir>/<stage name>`. */
  workDir: string;
  /** Added to every RUN's environment (e.g. npm_config_prefer_offline). */
  env?: NodeJS.ProcessEnv;
  /** Per RUN step. */
  timeoutMs?: number;
  /**
   * A `node_modules` installed by `npm ci` of the same lockfile: a full `npm ci` step (not
   * `--omit`ted) links it instead of installing again, after checking it holds every
   * package of the stage's lockfile at the locked version. The tests run one install each.
   */
  reuseNodeModules?: string;
}

export interface BuiltStage {
  name: string;
  root: string;
  workdir: string;
  env: Record<string, string>;
  /** The last ENTRYPOINT/CMD/USER/HEALTHCHECK/EXPOSE, as written. */
  meta: Map<string, string>;
}

/**
 * Runs every stage, concurrently where they do not depend on each other (as BuildKit does): a
 * stage waits for another only at its `COPY --from`.
 */
export async function buildStages(
  file: Dockerfile,
  options: BuildOptions,
  log: StepLog[],
): Promise<Map<string, BuiltStage>> {
  const started = new Map<string, Promise<BuiltStage>>();
  for (const stage of file.stages) {
    started.set(
      stage.name,
      runStage(stage, options, log, (name) => {
        const other = started.get(name);
        if (!other) throw new Error(`COPY --from=${name}: no earlier stage of that name`);
        return other;
      }),
    );
  }
  const built = await Promise.all(started.values());
  return new Map(built.map((b) => [b.name, b]));
}

async function runStage(
  stage: Stage,
  options: BuildOptions,
  log: StepLog[],
  stageNamed: (name: string) => Promise<BuiltStage>,
): Promise<BuiltStage> {
  const root = join(options.workDir, stage.name);
  mkdirSync(root, { recursive: true });
  const built: BuiltStage = { name: stage.name, root, workdir: '/', env: {}, meta: new Map() };
  const inRoot = (p: string) => join(root, posix.resolve(built.workdir, p));
  for (const ins of stage.instructions) {
    const record = (step: string, ran: boolean, ms?: number) =>
      log.push({ stage: stage.name, line: ins.line, step, ran, ms });
    switch (ins.keyword) {
      case 'WORKDIR':
        built.workdir = posix.resolve(built.workdir, ins.args);
        mkdirSync(inRoot('.'), { recursive: true });
        break;
      case 'ENV': {
        for (const m of ins.args.matchAll(/(\w+)=("[^"]*"|\S+)/g))
          built.env[m[1]!] = m[2]!.replace(/^"|"$/g, '');
        break;
      }
      case 'COPY': {
        const tokens = ins.args.split(/\s+/);
        const flags = tokens.filter((t) => t.startsWith('--'));
        const paths = tokens.filter((t) => !t.startsWith('--'));
        const dest = paths.pop()!;
        const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
        const sourceRoot = from ? (await stageNamed(from)).root : options.contextDir;
        for (const src of paths) {
          const abs = join(sourceRoot, from ? src : posix.normalize(src));
          if (!existsSync(abs)) throw new Error(`COPY ${src}: not in the ${from ?? 'context'}`);
          const target = inRoot(dest);
          if (statSync(abs).isDirectory()) cpSync(abs, target, { recursive: true });
          else {
            const intoDir = dest.endsWith('/') || paths.length > 1;
            const file = intoDir ? join(target, basename(abs)) : target;
            mkdirSync(dirname(file), { recursive: true });
            cpSync(abs, file);
          }
        }
        record(`COPY ${ins.args}`, true);
        break;
      }
      case 'RUN':
        for (const step of ins.args.split('&&').map((s) => s.trim())) {
          if (/^npm cache\b/.test(step)) {
            record(step, false);
          } else if (
            options.reuseNodeModules &&
            /^npm ci\b/.test(step) &&
            !/--omit\b/.test(step) &&
            installMatchesLock(options.reuseNodeModules, inRoot('package-lock.json'))
          ) {
            symlinkSync(options.reuseNodeModules, inRoot('node_modules'));
            log.push({
              stage: stage.name,
              line: ins.line,
              step,
              ran: false,
              reused: options.reuseNodeModules,
            });
          } else if (/^npm\s/.test(step)) {
            const t0 = performance.now();
            await sh(
              step,
              inRoot('.'),
              { ...process.env, ...options.env, ...built.env },
              options.timeoutMs,
            );
            record(step, true, Math.round(performance.now() - t0));
          } else if (touchesOnlySystemPaths(step, built.workdir)) {
            record(step, false);
          } else {
            throw new Error(
              `Dockerfile line ${ins.line}: no rule to run "${step}" without Docker; teach test/compose/dockerfile.ts`,
            );
          }
        }
        break;
      default:
        built.meta.set(ins.keyword, ins.args);
    }
  }
  return built;
}

/**
 * Whether `nodeModules` holds every package `lockFile` installs (optional ones aside: their
 * install scripts may fail and remove them), each at its locked version, per npm's own
 * record of what it installed (node_modules/.package-lock.json).
 */
export function installMatchesLock(nodeModules: string, lockFile: string): boolean {
  type Lock = {
    packages: Record<string, { version?: string; optional?: boolean; link?: boolean }>;
  };
  const hidden = join(nodeModules, '.package-lock.json');
  if (!existsSync(hidden) || !existsSync(lockFile)) return false;
  const installed = (JSON.parse(readFileSync(hidden, 'utf8')) as Lock).packages;
  const wanted = (JSON.parse(readFileSync(lockFile, 'utf8')) as Lock).packages;
  return Object.entries(wanted).every(
    ([path, entry]) =>
      path === '' || entry.optional || entry.link || installed[path]?.version === entry.version,
  );
}

/** `mkdir -p /x`, `chown u:g /x`: absolute paths, none inside WORKDIR. */
function touchesOnlySystemPaths(step: string, workdir: string): boolean {
  const m = /^(mkdir -p|chown(?: -R)? [\w.-]+:[\w.-]+)\s+(.+)$/.exec(step);
  if (!m) return false;
  return m[2]!
    .split(/\s+/)
    .every(
      (p) =>
        isAbsolute(p) &&
        !`${p}/`.startsWith(`${workdir}/`) &&
        relative(workdir, p).startsWith('..'),
    );
}

function sh(
  command: string,
  cwd: string,
  env: NodeJS.ProcessEnv,
  timeoutMs = 180_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else
        reject(
          new Error(`"${command}" in ${cwd} failed (${signal ?? code}):\n${output.slice(-4000)}`),
        );
    });
  });
}

export { sh as runShell };
