/**
 * How the Docker image runs augur, read from the repository's Dockerfile (its last stage), so a
 * benchmark measures what ships: the node flags of its ENTRYPOINT (between `node` and the script)
 * and the glibc malloc settings of its ENV.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execForm, parseDockerfile } from '../test/compose/dockerfile.js';
import { ROOT } from './compile.js';

export interface ImageRuntime {
  /** Flags the image gives node before augur's script, e.g. `--max-semi-space-size=4`. */
  nodeFlags: string[];
  /** The image's `MALLOC_*` environment (glibc's malloc tuning). */
  malloc: Record<string, string>;
}

export function imageRuntime(dockerfile = join(ROOT, 'Dockerfile')): ImageRuntime {
  const { stages } = parseDockerfile(readFileSync(dockerfile, 'utf8'));
  const runtime = stages[stages.length - 1];
  if (!runtime) throw new Error(`${dockerfile}: no stage`);
  const last = (keyword: string) =>
    runtime.instructions.filter((i) => i.keyword === keyword).pop()?.args;
  const entrypoint = last('ENTRYPOINT');
  if (!entrypoint) throw new Error(`${dockerfile}: the last stage has no ENTRYPOINT`);
  const [command, ...rest] = execForm(entrypoint);
  const script = rest.findIndex((a) => !a.startsWith('-'));
  if (command !== 'node' || script < 0)
    throw new Error(`${dockerfile}: ENTRYPOINT is not node [flags] script: ${entrypoint}`);
  const malloc: Record<string, string> = {};
  for (const env of runtime.instructions.filter((i) => i.keyword === 'ENV')) {
    const m = /^(MALLOC_\w+)=(\S+)$/.exec(env.args);
    if (m) malloc[m[1]!] = m[2]!;
  }
  return { nodeFlags: rest.slice(0, script), malloc };
}
