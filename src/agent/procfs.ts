import { open, type FileHandle } from 'node:fs/promises';
import type { HostLoad, LoadSampler } from './load-sampler.js';

/** Cumulative CPU time of all cores, in clock ticks (USER_HZ), from the `cpu` line of /proc/stat. */
export interface CpuTimes {
  busy: number;
  total: number;
}

/** Physical memory from /proc/meminfo, bytes. */
export interface MemInfo {
  totalBytes: number;
  availableBytes: number;
}

/** Cumulative byte counters of one network interface from /proc/net/dev. */
export interface NetCounters {
  rx: number;
  tx: number;
}

/**
 * Parses the aggregate `cpu` line of /proc/stat: user nice system idle iowait irq
 * softirq steal [guest guest_nice]. Guest time is already inside user and nice,
 * so only the first eight fields are summed; idle and iowait are not busy.
 */
export function parseProcStat(text: string): CpuTimes {
  if (!text.startsWith('cpu '))
    throw new Error('/proc/stat does not start with an aggregate "cpu" line');
  const end = text.indexOf('\n');
  const fields = text
    .slice(4, end < 0 ? undefined : end)
    .trim()
    .split(/\s+/);
  let total = 0;
  let idle = 0;
  for (let i = 0; i < 8 && i < fields.length; i++) {
    const v = Number(fields[i]);
    if (!Number.isFinite(v)) throw new Error(`/proc/stat: cpu field ${i + 1} is not a number`);
    total += v;
    if (i === 3 || i === 4) idle += v;
  }
  if (fields.length < 4) throw new Error('/proc/stat: cpu line has fewer than 4 fields');
  return { busy: total - idle, total };
}

function meminfoKb(text: string, key: string): number | undefined {
  const at = text.indexOf(`\n${key}:`);
  const start = text.startsWith(`${key}:`) ? 0 : at < 0 ? -1 : at + 1;
  if (start < 0) return undefined;
  const m = /^\S+:\s+(\d+)/.exec(text.slice(start, start + 64));
  return m ? Number(m[1]) : undefined;
}

/**
 * Parses /proc/meminfo. Kernels before 3.14 have no MemAvailable; there the
 * usual estimate MemFree + Buffers + Cached stands in.
 */
export function parseMemInfo(text: string): MemInfo {
  const total = meminfoKb(text, 'MemTotal');
  if (total === undefined || total <= 0) throw new Error('/proc/meminfo has no MemTotal');
  let available = meminfoKb(text, 'MemAvailable');
  if (available === undefined) {
    available =
      (meminfoKb(text, 'MemFree') ?? 0) +
      (meminfoKb(text, 'Buffers') ?? 0) +
      (meminfoKb(text, 'Cached') ?? 0);
  }
  return { totalBytes: total * 1024, availableBytes: Math.min(available, total) * 1024 };
}

/**
 * Parses /proc/net/dev into `into` (reused between ticks to spare allocations),
 * skipping the loopback interface and the two header lines. Interfaces absent
 * from `text` are removed from `into`.
 */
export function parseNetDev(
  text: string,
  into: Map<string, NetCounters> = new Map(),
): Map<string, NetCounters> {
  const seen = new Set<string>();
  let pos = 0;
  while (pos < text.length) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    const colon = text.indexOf(':', pos);
    if (colon > 0 && colon < end) {
      const name = text.slice(pos, colon).trim();
      if (name !== 'lo' && !name.includes('|')) {
        const f = text
          .slice(colon + 1, end)
          .trim()
          .split(/\s+/);
        // Receive bytes is field 0, transmit bytes field 8.
        const rx = Number(f[0]);
        const tx = Number(f[8]);
        if (Number.isFinite(rx) && Number.isFinite(tx)) {
          const c = into.get(name);
          if (c) {
            c.rx = rx;
            c.tx = tx;
          } else into.set(name, { rx, tx });
          seen.add(name);
        }
      }
    }
    pos = end + 1;
  }
  for (const name of into.keys()) if (!seen.has(name)) into.delete(name);
  return into;
}

const TWO_32 = 2 ** 32;

/**
 * Growth of a cumulative counter between two reads. A counter that went down
 * either wrapped (32-bit counters on 32-bit kernels) or was reset (the interface
 * was recreated). A wrap is assumed only when the old value was in the upper half
 * of the 32-bit range, where a wrap within one tick is plausible; otherwise the
 * counter restarted from zero and its new value is the growth.
 */
export function counterDelta(prev: number, cur: number): number {
  if (cur >= prev) return cur - prev;
  if (prev < TWO_32 && prev >= TWO_32 / 2) return TWO_32 - prev + cur;
  return cur;
}

/** Busy fraction of all cores between two reads, in [0,1]; 0 when no time passed. */
export function cpuFraction(prev: CpuTimes, cur: CpuTimes): number {
  const total = cur.total - prev.total;
  const busy = cur.busy - prev.busy;
  if (total <= 0 || busy <= 0) return 0;
  return Math.min(1, busy / total);
}

/**
 * A procfs file kept open and re-read from offset 0 each tick: procfs files are
 * generated afresh by a read at offset 0, so this sees current values while
 * sparing the open, fstat and close that `readFile` does each time (measured:
 * two thirds of the agent's per-tick file cost). Files are read into a buffer
 * that is reused; `head` files are read only as far as the first `size` bytes.
 */
export class ProcFile {
  private handle: FileHandle | undefined;
  private buf: Buffer;

  constructor(
    readonly path: string,
    size: number,
    private readonly head = false,
  ) {
    this.buf = Buffer.allocUnsafe(size);
  }

  async read(): Promise<string> {
    try {
      this.handle ??= await open(this.path, 'r');
      let n = 0;
      for (;;) {
        const want = this.buf.length - n;
        const { bytesRead } = await this.handle.read(this.buf, n, want, n);
        n += bytesRead;
        // A short read is the end of a procfs (or regular) file.
        if (this.head || bytesRead < want) break;
        const bigger = Buffer.allocUnsafe(this.buf.length * 2);
        this.buf.copy(bigger, 0, 0, n);
        this.buf = bigger;
      }
      return this.buf.toString('latin1', 0, n);
    } catch (err) {
      // Reopen next time: the file may have been replaced (fixtures) or the handle broken.
      await this.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    await h?.close().catch(() => undefined);
  }
}

export interface ProcSamplerOptions {
  /** Where procfs is mounted; tests point it at fixture files. */
  procRoot?: string;
  /** Monotonic clock in ms, for the network rate. */
  now?: () => number;
}

/**
 * Per-tick host load from procfs: three small reads of files kept open, no
 * child processes. CPU and network are rates over the time since the previous
 * `sample()` (the first measures from `prime()`).
 */
export class ProcSampler implements LoadSampler {
  // The aggregate cpu line comes first in /proc/stat, and MemTotal, MemFree,
  // MemAvailable, Buffers and Cached are the first lines of /proc/meminfo.
  private readonly stat: ProcFile;
  private readonly meminfo: ProcFile;
  private readonly netdev: ProcFile;
  private readonly now: () => number;
  private prevCpu: CpuTimes | undefined;
  private prevNet = new Map<string, NetCounters>();
  private curNet = new Map<string, NetCounters>();
  private prevAt = 0;

  constructor(options: ProcSamplerOptions = {}) {
    const root = options.procRoot ?? '/proc';
    this.stat = new ProcFile(`${root}/stat`, 1024, true);
    this.meminfo = new ProcFile(`${root}/meminfo`, 1024, true);
    this.netdev = new ProcFile(`${root}/net/dev`, 8192);
    this.now = options.now ?? (() => performance.now());
  }

  /** Takes the reference reading the first sample's rates are measured from. */
  async prime(): Promise<void> {
    const [stat, netdev] = await Promise.all([this.stat.read(), this.readNetDev()]);
    this.prevCpu = parseProcStat(stat);
    parseNetDev(netdev, this.prevNet);
    this.prevAt = this.now();
  }

  async sample(): Promise<HostLoad> {
    if (!this.prevCpu) await this.prime();
    const [stat, meminfo, netdev] = await Promise.all([
      this.stat.read(),
      this.meminfo.read(),
      this.readNetDev(),
    ]);
    const at = this.now();
    const cpu = parseProcStat(stat);
    const mem = parseMemInfo(meminfo);
    parseNetDev(netdev, this.curNet);

    let bytes = 0;
    for (const [name, c] of this.curNet) {
      const p = this.prevNet.get(name);
      // An interface that appeared since the last tick has no baseline yet.
      if (p) bytes += counterDelta(p.rx, c.rx) + counterDelta(p.tx, c.tx);
    }
    const seconds = (at - this.prevAt) / 1000;
    const load: HostLoad = {
      cpuUsage: cpuFraction(this.prevCpu!, cpu),
      memoryUsage: 1 - mem.availableBytes / mem.totalBytes,
      networkIo: seconds > 0 ? bytes / seconds : 0,
    };
    this.prevCpu = cpu;
    this.prevAt = at;
    const swap = this.prevNet;
    this.prevNet = this.curNet;
    this.curNet = swap;
    return load;
  }

  async close(): Promise<void> {
    await Promise.all([this.stat.close(), this.meminfo.close(), this.netdev.close()]);
  }

  // Some sandboxes hide /proc/net; the network load is then reported as 0 bytes/s.
  private readNetDev(): Promise<string> {
    return this.netdev.read().catch(() => '');
  }
}
