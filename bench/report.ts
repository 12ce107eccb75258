import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';

const FILE = fileURLToPath(new URL('../BENCHMARKS.md', import.meta.url));
const HEADER = `# Benchmarks

Figures measured on the development machine (${cpus().length} cores, Node ${process.version}).
Each section is rewritten by the command named in it; shared machines are noisy, so
compare ratios measured in one run rather than absolute figures across runs.
`;

/**
 * Replaces (or appends) the section `## <title>` of BENCHMARKS.md with the
 * command that produced it and its body, and prints the body.
 */
export function writeBenchmarkSection(title: string, command: string, body: string): void {
  const text = existsSync(FILE) ? readFileSync(FILE, 'utf8') : HEADER;
  const stamp = new Date().toISOString().slice(0, 16).replace('T', ' ');
  const section = `## ${title}\n\nCommand: \`${command}\` (run ${stamp} UTC)\n\n${body.trim()}\n`;
  const parts = text.split(/^(?=## )/m);
  const idx = parts.findIndex((p) => p.startsWith(`## ${title}\n`));
  if (idx >= 0) parts[idx] = section + '\n';
  else parts.push((parts[parts.length - 1]!.endsWith('\n\n') ? '' : '\n') + section);
  writeFileSync(FILE, parts.join('').replace(/\n{3,}/g, '\n\n'));
  process.stdout.write(`\n${section}\n`);
}

/** A markdown table from a header row and rows. */
export function markdownTable(header: string[], rows: Array<Array<string | number>>): string {
  const line = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** The q-quantile (0..1) of a list of numbers (nearest rank). */
export function quantile(values: ArrayLike<number>, q: number): number {
  const sorted = Array.from(values).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
