/**
 * The functions with the most self time in a V8 CPU profile (`node --cpu-prof`):
 * `tsx bench/cpu-profile-top.ts FILE.cpuprofile [N] [SKIP_SECONDS]`. Self time of a node is the
 * sum of the sampling intervals whose sample landed in it; nodes of the same
 * function (name, script, line) are added together. Used by `npm run bench:agent
 * -- --profile`, which profiles the agent in its "every signal" case.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface SelfTime {
  /** `name (script:line)`; V8's own entries keep their name: (idle), (program), (garbage collector). */
  frame: string;
  /** Microseconds. */
  selfUs: number;
}

export interface ProfileSummary {
  /** Sampled time that was not (idle), microseconds. */
  busyUs: number;
  /** Profile length, microseconds. */
  totalUs: number;
  top: SelfTime[];
}

function frameName(n: ProfileNode, root: string): string {
  const { functionName, url, lineNumber } = n.callFrame;
  if (!url) return functionName || '(anonymous)';
  const script = url
    .replace(/^file:\/\//, '')
    .replace(root, '')
    .replace(/^.*node_modules\//, '');
  return `${functionName || '(anonymous)'} (${script}:${lineNumber + 1})`;
}

/**
 * Self time by function, largest first, (idle) left out of the list and of `busyUs`;
 * the first `skipSeconds` of the profile (start-up) are left out.
 */
export function summarizeProfile(
  text: string,
  limit = 20,
  root = '',
  skipSeconds = 0,
): ProfileSummary {
  const p = JSON.parse(text) as CpuProfile;
  if (!Array.isArray(p.nodes) || !Array.isArray(p.samples) || !Array.isArray(p.timeDeltas))
    throw new Error('not a V8 CPU profile (.cpuprofile): nodes, samples and timeDeltas expected');
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let busy = 0;
  let at = p.startTime;
  const from = p.startTime + skipSeconds * 1e6;
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i] ?? 0;
    const node = byId.get(p.samples[i]!);
    // The time up to the next sample is the one this sample stands for.
    const dt = p.timeDeltas[i + 1] ?? 0;
    if (!node || dt <= 0 || at < from) continue;
    const name = frameName(node, root);
    if (name === '(idle)') continue;
    busy += dt;
    self.set(name, (self.get(name) ?? 0) + dt);
  }
  const top = [...self]
    .map(([frame, selfUs]) => ({ frame, selfUs }))
    .sort((a, b) => b.selfUs - a.selfUs)
    .slice(0, limit);
  return { busyUs: busy, totalUs: p.endTime - Math.max(p.startTime, from), top };
}

/** The summary as text lines: share of busy time, ms, function. */
export function formatSummary(s: ProfileSummary): string {
  const lines = [
    `profile: ${(s.totalUs / 1e6).toFixed(1)} s, busy (not idle) ${(s.busyUs / 1e3).toFixed(0)} ms ` +
      `= ${((s.busyUs / s.totalUs) * 100).toFixed(3)} % of one core`,
  ];
  for (const t of s.top)
    lines.push(
      `${((t.selfUs / s.busyUs) * 100).toFixed(1).padStart(5)} %  ${(t.selfUs / 1e3).toFixed(1).padStart(7)} ms  ${t.frame}`,
    );
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write(
      'usage: tsx bench/cpu-profile-top.ts FILE.cpuprofile [N] [SKIP_SECONDS]\n',
    );
    process.exit(2);
  }
  const [limit, skip] = [Number(process.argv[3] ?? 25), Number(process.argv[4] ?? 0)];
  process.stdout.write(
    `${formatSummary(summarizeProfile(readFileSync(file, 'utf8'), limit, '', skip))}\n`,
  );
}
