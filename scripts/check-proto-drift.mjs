// Regenerates src/gen from proto/ into a temporary folder and fails if it differs
// from what is committed: generated code must come from `npm run proto:gen`.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const tmp = mkdtempSync(join(tmpdir(), 'augur-gen-'));
try {
  execFileSync('npx', ['buf', 'generate', '-o', tmp], { stdio: 'inherit' });
  // Envoy's descriptors for src/xds (scripts/gen-envoy-descriptors.mjs), also under src/gen.
  execFileSync(process.execPath, ['scripts/gen-envoy-descriptors.mjs', join(tmp, 'src/gen')], {
    stdio: 'inherit',
  });
  const list = (dir) =>
    readdirSync(dir).flatMap((name) => {
      const p = join(dir, name);
      return statSync(p).isDirectory() ? list(p) : [p];
    });
  const fresh = join(tmp, 'src/gen');
  const want = new Map(list(fresh).map((p) => [relative(fresh, p), readFileSync(p, 'utf8')]));
  const have = new Map(
    list('src/gen').map((p) => [relative('src/gen', p), readFileSync(p, 'utf8')]),
  );
  const drift = [];
  for (const [file, text] of want)
    if (have.get(file) !== text) drift.push(`changed or missing: src/gen/${file}`);
  for (const file of have.keys())
    if (!want.has(file)) drift.push(`not generated from proto/: src/gen/${file}`);
  if (drift.length) {
    console.error(
      `generated code is out of date with proto/ (run npm run proto:gen):\n  ${drift.join('\n  ')}`,
    );
    process.exit(1);
  }
  console.log(`proto: src/gen matches proto/ (${want.size} files)`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
