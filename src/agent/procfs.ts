import { closeSync, openSync, readSync } from 'node:fs';
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

/** Character code of '0'; digits are 48..57. */
const ZERO = 48;

/**
 * Reads the whole number that starts at or after `pos` in `text` (skipping
 * spaces and tabs) into `numberEnd`, returning it; NaN when the next field is
 * not a number. Scanning by character code spares the substrings and arrays
 * that split() and regular expressions allocate on every tick.
 */
let numberEnd = 0;
export function scanNumber(text: string, pos: number): number {
  const n = text.length;
  let i = pos;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c !== 32 && c !== 9) break;
    i++;
  }
  let v = 0;
  let digits = 0;
  while (i < n) {
    const d = text.charCodeAt(i) - ZERO;
    if (d < 0 || d > 9) break;
    v = v * 10 + d;
    digits++;
    i++;
  }
  numberEnd = i;
  if (digits === 0) return NaN;
  // A field that goes on with something else (1.5, 12abc) is not a whole number.
  if (i < n) {
    const c = text.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 10) return NaN;
  }
  return v;
}

/** Where the last `scanNumber` stopped. */
export function scannedTo(): number {
  return numberEnd;
}

/**
 * Parses the aggregate `cpu` line of /proc/stat: user nice system idle iowait irq
 * softirq steal [guest guest_nice]. Guest time is already inside user and nice,
 * so only the first eight fields are summed; idle and iowait are not busy.
 */
export function parseProcStat(text: string, into: CpuTimes = { busy: 0, total: 0 }): CpuTimes {
  if (!text.startsWith('cpu '))
    throw new Error('/proc/stat does not start with an aggregate "cpu" line');
  const end = text.indexOf('\n');
  const line = end < 0 ? text.length : end;
  let total = 0;
  let idle = 0;
  let pos = 4;
  let fields = 0;
  for (; fields < 8; fields++) {
    while (pos < line && text.charCodeAt(pos) === 32) pos++;
    if (pos >= line) break;
    const v = scanNumber(text, pos);
    if (Number.isNaN(v)) throw new Error(`/proc/stat: cpu field ${fields + 1} is not a number`);
    pos = numberEnd;
    total += v;
    if (fields === 3 || fields === 4) idle += v;
  }
  if (fields < 4) throw new Error('/proc/stat: cpu line has fewer than 4 fields');
  into.busy = total - idle;
  into.total = total;
  return into;
}

function meminfoKb(text: string, key: string): number | undefined {
  let start: number;
  if (text.startsWith(key) && text.charCodeAt(key.length) === 58) start = 0;
  else {
    const at = text.indexOf(`\n${key}:`);
    if (at < 0) return undefined;
    start = at + 1;
  }
  const v = scanNumber(text, start + key.length + 1);
  return Number.isNaN(v) ? undefined : v;
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
const seenInterfaces = new Set<string>();

export function parseNetDev(
  text: string,
  into: Map<string, NetCounters> = new Map(),
): Map<string, NetCounters> {
  const seen = seenInterfaces;
  seen.clear();
  let pos = 0;
  while (pos < text.length) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    const colon = text.indexOf(':', pos);
    if (colon > 0 && colon < end) {
      const name = text.slice(pos, colon).trim();
      if (name !== 'lo' && !name.includes('|')) {
        // Receive bytes is field 0, transmit bytes field 8.
        const rx = scanNumber(text, colon + 1);
        let tx = NaN;
        let at = numberEnd;
        for (let f = 1; f <= 8 && !Number.isNaN(rx); f++) {
          tx = scanNumber(text, at);
          at = numberEnd;
          if (Number.isNaN(tx)) break;
        }
        if (Number.isFinite(rx) && Number.isFinite(tx) && at <= end) {
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
 * A procfs file kept open and re-read from offset 0 each tick, synchronously:
 * procfs files are generated afresh by a read at offset 0, so this sees current
 * values with one pread(2) per file and tick: no open, fstat and close as
 * `readFile` does, and none of the thread-pool round trip and promise
 * machinery of `fs/promises`, which cost the agent more CPU than the read
 * itself (profiled; src/agent/README.md, "Cost"). A read of a small procfs or
 * cgroupfs file does not block: the kernel formats it from memory. Files are
 * read into a buffer that is reused; `head` files are read only as far as the
 * first `size` bytes.
 */
export class ProcFile {
  private fd = -1;
  private buf: Buffer;

  constructor(
    readonly path: string,
    size: number,
    private readonly head = false,
  ) {
    this.buf = Buffer.allocUnsafe(size);
  }

  /** The file's text now (latin1: procfs is ASCII). Throws what the read threw, and reopens next time. */
  read(): string {
    const n = this.readBytes(); // first: it may replace the buffer with a larger one
    return this.buf.toString('latin1', 0, n);
  }

  /** Reads the file into the buffer and returns its length there. */
  private readBytes(): number {
    try {
      if (this.fd < 0) this.fd = openSync(this.path, 'r');
      let n = 0;
      for (;;) {
        const want = this.buf.length - n;
        const got = readSync(this.fd, this.buf, n, want, n);
        n += got;
        // A short read is the end of a procfs (or regular) file.
        if (this.head || got < want) return n;
        const bigger = Buffer.allocUnsafe(this.buf.length * 2);
        this.buf.copy(bigger, 0, 0, n);
        this.buf = bigger;
      }
    } catch (err) {
      // Reopen next time: the file may have been replaced (fixtures) or the process gone.
      this.close();
      throw err;
    }
  }

  close(): void {
    const fd = this.fd;
    this.fd = -1;
    if (fd >= 0) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }
  }
}

export interface ProcSamplerOptions {
  /** Where procfs is mounted; tests point it at fixture files. */
  procRoot?: string;
  /** Monotonic clock in ms, for the network rate. */
  now?: () => number;
}

/**
 * Per-tick host load from procfs: three small synchronous reads of files kept
 * open, no child processes. CPU and network are rates over the time since the
 * previous `sample()` (the first measures from `prime()`).
 */
export class ProcSampler implements LoadSampler {
  // The aggregate cpu line comes first in /proc/stat, and MemTotal, MemFree,
  // MemAvailable, Buffers and Cached are the first lines of /proc/meminfo.
  private readonly stat: ProcFile;
  private readonly meminfo: ProcFile;
  private readonly netdev: ProcFile;
  private readonly now: () => number;
  private primed = false;
  private prevCpu: CpuTimes = { busy: 0, total: 0 };
  private curCpu: CpuTimes = { busy: 0, total: 0 };
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
    this.primeSync();
  }

  sample(): Promise<HostLoad> {
    try {
      return Promise.resolve(this.sampleSync());
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** The load since the previous sample, read and computed without yielding. */
  sampleSync(): HostLoad {
    if (!this.primed) this.primeSync();
    const stat = this.stat.read();
    const meminfo = this.meminfo.read();
    const netdev = this.readNetDev();
    const at = this.now();
    const cpu = parseProcStat(stat, this.curCpu);
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
      cpuUsage: cpuFraction(this.prevCpu, cpu),
      memoryUsage: 1 - mem.availableBytes / mem.totalBytes,
      networkIo: seconds > 0 ? bytes / seconds : 0,
    };
    this.curCpu = this.prevCpu;
    this.prevCpu = cpu;
    this.prevAt = at;
    const swap = this.prevNet;
    this.prevNet = this.curNet;
    this.curNet = swap;
    return load;
  }

  async close(): Promise<void> {
    this.stat.close();
    this.meminfo.close();
    this.netdev.close();
  }

  private primeSync(): void {
    parseProcStat(this.stat.read(), this.prevCpu);
    parseNetDev(this.readNetDev(), this.prevNet);
    this.prevAt = this.now();
    this.primed = true;
  }

  // Some sandboxes hide /proc/net; the network load is then reported as 0 bytes/s.
  private readNetDev(): string {
    try {
      return this.netdev.read();
    } catch {
      return '';
    }
  }
}
