import si from 'systeminformation';
import { counterDelta } from './procfs.js';
import type { HostLoad, LoadSampler } from './load-sampler.js';

/**
 * Per-tick load through systeminformation, for platforms without procfs. It
 * spawns helper processes for some values (about 9 % of a core at 1 Hz measured
 * on Linux), which is why Linux uses `ProcSampler` instead.
 */
export class SystemInformationSampler implements LoadSampler {
  private prev = new Map<string, { rx: number; tx: number }>();
  private prevAt = 0;

  async sample(): Promise<HostLoad> {
    const [load, mem, net] = await Promise.all([si.currentLoad(), si.mem(), si.networkStats('*')]);
    const at = performance.now();
    let bytes = 0;
    const next = new Map<string, { rx: number; tx: number }>();
    for (const n of net) {
      if (n.iface === 'lo' || n.iface.startsWith('lo0')) continue;
      const p = this.prev.get(n.iface);
      if (p) bytes += counterDelta(p.rx, n.rx_bytes) + counterDelta(p.tx, n.tx_bytes);
      next.set(n.iface, { rx: n.rx_bytes, tx: n.tx_bytes });
    }
    const seconds = this.prevAt > 0 ? (at - this.prevAt) / 1000 : 0;
    this.prev = next;
    this.prevAt = at;
    return {
      cpuUsage: Math.min(1, Math.max(0, load.currentLoad / 100)),
      memoryUsage: mem.total > 0 ? Math.min(1, Math.max(0, 1 - mem.available / mem.total)) : 0,
      networkIo: seconds > 0 ? bytes / seconds : 0,
    };
  }
}
