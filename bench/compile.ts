/**
 * The compiled tree a benchmark measures: `npm run build`'s dist/ (what the Docker image and an
 * npm install run, plain `node`, no TypeScript loader in any thread), and a base commit compiled
 * the same way in a temporary folder.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const DIST = join(ROOT, 'dist');

/** `npm run build` (what `prepare` runs), or with `reuse` only a check that dist/ holds `entry`. */
export function buildTree(reuse: boolean, entry = 'src/cli/main.js'): void {
  if (reuse) {
    if (!existsSync(join(DIST, entry)))
      throw new Error(`--no-build: nothing compiled in ${DIST} (run npm run build)`);
    return;
  }
  process.stdout.write('npm run build ...\n');
  execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
}

/**
 * `commit`'s src/ compiled in a temporary folder (this checkout's node_modules and proto/), with
 * `extra` files of this checkout (paths relative to the root, such as a bench child that the base
 * predates) compiled beside it; returns the folder, whose dist/ holds `entry`.
 */
export function buildBase(commit: string, entry: string, extra: readonly string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), 'augur-bench-base-'));
  const tar = execFileSync('git', ['archive', commit, 'src', 'package.json', 'tsconfig.json'], {
    cwd: ROOT,
    maxBuffer: 1 << 30,
  });
  execFileSync('tar', ['-x', '-C', dir], { input: tar });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  symlinkSync(join(ROOT, 'proto'), join(dir, 'proto'));
  for (const file of extra) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    cpSync(join(ROOT, file), join(dir, file));
  }
  process.stdout.write(`compiling ${commit} in ${dir} ...\n`);
  try {
    execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', dir], { stdio: 'ignore' });
  } catch {
    // Type errors elsewhere still emit JavaScript; what matters is that the entry exists.
  }
  if (!existsSync(join(dir, 'dist', entry)))
    throw new Error(`${commit}: tsc produced no dist/${entry}`);
  return dir;
}
