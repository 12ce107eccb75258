import { readdirSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { AugurError } from '../common/errors.js';
import { ProcFile, scanNumber, scannedTo } from './procfs.js';

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
  // After the name: state is field 3, so utime (14) is the 11th field after it, stime the 12th.
  let pos = close + 2;
  for (let skip = 0; skip < 11 && pos > 0; skip++) pos = text.indexOf(' ', pos) + 1;
  const utime = pos > 0 ? scanNumber(text, pos) : NaN;
  const at = text.indexOf(' ', pos) + 1;
  const stime = pos > 0 && at > 0 ? scanNumber(text, at) : NaN;
  if (!Number.isFinite(utime) || !Number.isFinite(stime))
    throw new Error('/proc/<pid>/stat has no utime/stime');
  return utime + stime;
}

/** `usage_usec` of a cgroup v2 cpu.stat, microseconds. */
export function parseCgroupUsage(text: string): number {
  const key = 'usage_usec ';
  const at = text.startsWith(key) ? 0 : text.indexOf(`\n${key}`) + 1;
  const v = at > 0 || text.startsWith(key) ? scanNumber(text, at + key.length) : NaN;
  if (Number.isNaN(v))
    throw new Error('cpu.stat has no usage_usec line (is this a cgroup v2 directory?)');
  return v;
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
      const text = stat.read();
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
      stat.close();
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

  sample(): Promise<number> {
    try {
      const now = this.opts.now();
      if (now >= this.nextScanAt) {
        if (this.opts.find && !this.files.has(this.root)) {
          // The root went away: find it again by name (a scan of /proc, rare), then measure.
          return this.opts
            .find()
            .then(
              (pid) => {
                this.root = pid;
              },
              () => undefined, // not back yet: own CPU is unknown until it is
            )
            .then(() => this.measure(now));
        }
      }
      return Promise.resolve(this.measure(now));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  async close(): Promise<void> {
    for (const f of this.files.values()) f.close();
    this.files.clear();
  }

  /** One synchronous read of each member's stat; the fraction of the host since the last. */
  private measure(now: number): number {
    if (now >= this.nextScanAt) {
      this.rescan();
      this.nextScanAt = now + this.opts.rescanSeconds * 1000;
    }
    if (!this.files.has(this.root)) {
      this.nextScanAt = 0;
      throw new AugurError('PROCESS_GONE', `the process tree of ${this.root} is gone`);
    }
    let ticks = 0;
    let gone: number[] | undefined;
    for (const [pid, file] of this.files) {
      let total: number;
      try {
        total = parseProcessTicks(file.read());
      } catch (err) {
        (gone ??= []).push(pid);
        if (pid !== this.root) continue;
        for (const p of gone) this.forget(p);
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
    if (gone) for (const p of gone) this.forget(p);
    const seconds = (now - this.lastAt) / 1000;
    this.lastAt = now;
    if (!(seconds > 0)) return 0;
    return Math.min(1, ticks / USER_HZ / (seconds * this.opts.cores));
  }

  private forget(pid: number): void {
    this.files.get(pid)?.close();
    this.files.delete(pid);
    this.lastTicks.delete(pid);
  }

  /** Finds the tree's members again through /proc/<pid>/task/<tid>/children (every rescanSeconds). */
  private rescan(): void {
    const root = this.opts.procRoot;
    const members = new Set<number>([this.root]);
    const queue = [this.root];
    while (queue.length > 0) {
      const pid = queue.shift()!;
      let tids: string[];
      try {
        tids = readdirSync(`${root}/${pid}/task`);
      } catch (err) {
        if (pid === this.root && (err as NodeJS.ErrnoException).code === 'ENOENT') {
          // The root is gone: so is the tree (measure() says so, or it is found again by name).
          for (const p of [...this.files.keys()]) this.forget(p);
          return;
        }
        continue; // gone since, or not ours to list: the process alone
      }
      for (const tid of tids) {
        let text = '';
        const f = new ProcFile(`${root}/${pid}/task/${tid}/children`, 256);
        try {
          text = f.read();
        } catch {
          continue;
        } finally {
          f.close();
        }
        let at = 0;
        while (at < text.length) {
          const c = scanNumber(text, at);
          if (Number.isNaN(c)) break;
          at = scannedTo();
          if (c > 0 && !members.has(c)) {
            members.add(c);
            queue.push(c);
          }
        }
      }
    }
    for (const pid of [...this.files.keys()]) if (!members.has(pid)) this.forget(pid);
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

  sample(): Promise<number> {
    try {
      return Promise.resolve(this.measure());
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  private measure(): number {
    const usage = parseCgroupUsage(this.file.read());
    const now = this.now();
    const prev = this.last;
    const seconds = (now - this.lastAt) / 1000;
    this.last = usage;
    this.lastAt = now;
    if (Number.isNaN(prev) || !(seconds > 0) || usage < prev) return 0;
    return Math.min(1, (usage - prev) / 1e6 / (seconds * this.opts.cores));
  }

  async close(): Promise<void> {
    this.file.close();
  }
}
