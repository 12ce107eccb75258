import { readdir } from 'node:fs/promises';
import { AugurError } from '../common/errors.js';
import { ProcFile } from './procfs.js';

/**
 * The endpoint's own CPU, as a fraction of the host's whole capacity (all its
 * cores) over the time since the previous `sample()`: with the host's CPU beside
 * it, the load that is not the endpoint's is measured (host − own) instead of
 * inferred. Each source reads one or a few procfs/cgroupfs files per tick: no
 * child process.
 */
export interface OwnCpuSource {
  readonly kind: 'process' | 'cgroup';
  /** Fraction of the host's CPU the endpoint used since the previous call (the first: since start). */
  sample(): Promise<number>;
  close(): Promise<void>;
}

/** Clock ticks per second of /proc/<pid>/stat's times: USER_HZ, 100 on every Linux ABI. */
const USER_HZ = 100;

/**
 * Parses utime + stime (fields 14 and 15, clock ticks) of /proc/<pid>/stat. The
 * command name (field 2) is in parentheses and may hold spaces or parentheses,
 * so fields are counted after the last ')'.
 */
export function parseProcessTicks(text: string): number {
  const close = text.lastIndexOf(')');
  if (close < 0) throw new Error('not a /proc/<pid>/stat line');
  const fields = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime))
    throw new Error('/proc/<pid>/stat has no utime/stime');
  return utime + stime;
}

/** `usage_usec` of a cgroup v2 cpu.stat, microseconds. */
export function parseCgroupUsage(text: string): number {
  const m = /^usage_usec (\d+)$/m.exec(text);
  if (!m) throw new Error('cpu.stat has no usage_usec line (is this a cgroup v2 directory?)');
  return Number(m[1]);
}

/**
 * The root of the process tree whose command name (/proc/<pid>/comm, at most 15
 * characters) is `name`: among the processes with that name, the one whose
 * parent does not have it. Several such roots, or none, is an error that says so.
 */
export async function findProcessByName(name: string, procRoot = '/proc'): Promise<number> {
  const entries = (await readdir(procRoot)).filter((e) => /^\d+$/.test(e));
  const named = new Map<number, number>(); // pid -> parent pid
  for (const e of entries) {
    const stat = new ProcFile(`${procRoot}/${e}/stat`, 512, true);
    try {
      const text = await stat.read();
      const open = text.indexOf('(');
      const close = text.lastIndexOf(')');
      if (text.slice(open + 1, close) !== name) continue;
      const ppid = Number(
        text
          .slice(close + 2)
          .trim()
          .split(/\s+/)[1],
      );
      named.set(Number(e), ppid);
    } catch {
      // gone since readdir, or not ours to read
    } finally {
      await stat.close();
    }
  }
  const roots = [...named].filter(([, ppid]) => !named.has(ppid)).map(([pid]) => pid);
  if (roots.length === 1) return roots[0]!;
  throw new AugurError(
    'BAD_PROCESS',
    roots.length === 0
      ? `no process named "${name}" (the name in /proc/<pid>/comm, at most 15 characters)`
      : `${roots.length} process trees named "${name}" (pids ${roots.join(', ')}): give --process-pid`,
  );
}

export interface ProcessTreeOptions {
  /** The root process, or how to find it again (by name) when it is restarted. */
  pid: number;
  /** With it, a root that went away is looked for again at the next rescan instead of failing. */
  find?: () => Promise<number>;
  /** Logical cores of the host: own CPU is a fraction of all of them. */
  cores: number;
  procRoot?: string;
  /** Seconds between looks for new or gone descendants. Default 10. */
  rescanSeconds?: number;
  now?: () => number;
}

/**
 * A process and its descendants (pre-fork servers, worker pools): the sum of
 * utime + stime of each live member, per-member deltas so members that come and
 * go do not count twice. Descendants are found through
 * /proc/<pid>/task/<tid>/children (a few reads, no scan of /proc), every
 * `rescanSeconds`. A member that exits loses at most its last tick of CPU; a
 * short-lived child that starts and ends between rescans is not seen (use a
 * cgroup for those). The root process going away is an error that names it.
 */
export class ProcessTreeCpu implements OwnCpuSource {
  readonly kind = 'process';
  private readonly opts: Required<Omit<ProcessTreeOptions, 'now' | 'find'>> &
    Pick<ProcessTreeOptions, 'find'> & { now: () => number };
  private root: number;
  private readonly files = new Map<number, ProcFile>();
  private readonly lastTicks = new Map<number, number>();
  private lastAt: number;
  private nextScanAt = 0;

  private constructor(opts: ProcessTreeOptions) {
    this.opts = {
      procRoot: '/proc',
      rescanSeconds: 10,
      now: () => performance.now(),
      ...opts,
    };
    this.lastAt = this.opts.now();
    this.root = opts.pid;
  }

  /** The root process now (it changes when a process found by name is restarted). */
  get pid(): number {
    return this.root;
  }

  /** Checks the process exists and takes the reference reading. */
  static async start(opts: ProcessTreeOptions): Promise<ProcessTreeCpu> {
    if (!Number.isInteger(opts.pid) || opts.pid < 1)
      throw new AugurError(
        'BAD_PROCESS',
        `--process-pid must be a process id >= 1, got ${opts.pid}`,
      );
    const tree = new ProcessTreeCpu(opts);
    try {
      await tree.sample();
    } catch (err) {
      throw new AugurError(
        'BAD_PROCESS',
        `cannot read the CPU of process ${opts.pid}: ${(err as Error).message}`,
      );
    }
    return tree;
  }

  async sample(): Promise<number> {
    const now = this.opts.now();
    if (now >= this.nextScanAt) {
      await this.rescan();
      this.nextScanAt = now + this.opts.rescanSeconds * 1000;
    }
    if (!this.files.has(this.root)) {
      this.nextScanAt = 0;
      throw new AugurError('PROCESS_GONE', `the process tree of ${this.root} is gone`);
    }
    let ticks = 0;
    for (const [pid, file] of [...this.files]) {
      let total: number;
      try {
        total = parseProcessTicks(await file.read());
      } catch (err) {
        await this.forget(pid);
        if (pid !== this.root) continue;
        if (this.opts.find) {
          this.nextScanAt = 0; // look for it again at the next tick
          throw new AugurError('PROCESS_GONE', `process ${pid} went away: looking for it again`);
        }
        throw new AugurError(
          'PROCESS_GONE',
          `process ${pid} (--process-pid) cannot be read: ${(err as Error).message}`,
        );
      }
      const prev = this.lastTicks.get(pid);
      this.lastTicks.set(pid, total);
      // A member first seen now has no baseline: its earlier CPU is not of this interval.
      if (prev !== undefined && total >= prev) ticks += total - prev;
    }
    const seconds = (now - this.lastAt) / 1000;
    this.lastAt = now;
    if (!(seconds > 0)) return 0;
    return Math.min(1, ticks / USER_HZ / (seconds * this.opts.cores));
  }

  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => f.close()));
    this.files.clear();
  }

  private async forget(pid: number): Promise<void> {
    await this.files.get(pid)?.close();
    this.files.delete(pid);
    this.lastTicks.delete(pid);
  }

  private async rescan(): Promise<void> {
    const root = this.opts.procRoot;
    if (this.opts.find && !this.files.has(this.root)) {
      try {
        this.root = await this.opts.find();
      } catch {
        return; // not back yet: own CPU is unknown until it is
      }
    }
    const members = new Set<number>([this.root]);
    const queue = [this.root];
    while (queue.length > 0) {
      const pid = queue.shift()!;
      let tids: string[];
      try {
        tids = await readdir(`${root}/${pid}/task`);
      } catch (err) {
        if (pid === this.root && (err as NodeJS.ErrnoException).code === 'ENOENT') {
          // The root is gone: so is the tree (sample() says so, or finds it again by name).
          for (const p of [...this.files.keys()]) await this.forget(p);
          return;
        }
        continue; // gone since, or not ours to list: the process alone
      }
      for (const tid of tids) {
        let text = '';
        try {
          const f = new ProcFile(`${root}/${pid}/task/${tid}/children`, 256);
          text = await f.read();
          await f.close();
        } catch {
          continue;
        }
        for (const child of text.trim().split(/\s+/)) {
          const c = Number(child);
          if (Number.isInteger(c) && c > 0 && !members.has(c)) {
            members.add(c);
            queue.push(c);
          }
        }
      }
    }
    for (const pid of [...this.files.keys()]) if (!members.has(pid)) await this.forget(pid);
    for (const pid of members)
      if (!this.files.has(pid))
        this.files.set(pid, new ProcFile(`${root}/${pid}/stat`, 1024, true));
  }
}

export interface CgroupCpuOptions {
  /** The cgroup v2 directory (e.g. /sys/fs/cgroup/system.slice/app.service). */
  path: string;
  cores: number;
  now?: () => number;
}

/**
 * A cgroup v2's CPU (`usage_usec` of its cpu.stat): everything in the cgroup,
 * short-lived children included, the right source for a container or a
 * systemd service.
 */
export class CgroupCpu implements OwnCpuSource {
  readonly kind = 'cgroup';
  private readonly file: ProcFile;
  private readonly now: () => number;
  private last = NaN;
  private lastAt = 0;

  private constructor(private readonly opts: CgroupCpuOptions) {
    this.file = new ProcFile(`${opts.path.replace(/\/$/, '')}/cpu.stat`, 512);
    this.now = opts.now ?? (() => performance.now());
  }

  static async start(opts: CgroupCpuOptions): Promise<CgroupCpu> {
    const source = new CgroupCpu(opts);
    try {
      await source.sample();
    } catch (err) {
      throw new AugurError(
        'BAD_CGROUP',
        `cannot read ${opts.path}/cpu.stat (--cgroup): ${(err as Error).message}`,
      );
    }
    return source;
  }

  async sample(): Promise<number> {
    const usage = parseCgroupUsage(await this.file.read());
    const now = this.now();
    const prev = this.last;
    const seconds = (now - this.lastAt) / 1000;
    this.last = usage;
    this.lastAt = now;
    if (Number.isNaN(prev) || !(seconds > 0) || usage < prev) return 0;
    return Math.min(1, (usage - prev) / 1e6 / (seconds * this.opts.cores));
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}
