import { readdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { parseMemInfo } from './procfs.js';

/** What the host can give, sent once in the agent's hello as its `Capacity`. */
export interface HostFacts {
  /** Logical CPUs; CPU usage is a fraction of all of them. */
  cpuCores: number;
  /** Physical memory, bytes. */
  memoryBytes: number;
  /** Link capacity, bytes per second, receive plus transmit. */
  networkBytesPerSecond: number;
  /** Where the link capacity came from: the kernel, systeminformation, or the default. */
  linkSpeedSource: 'sysfs' | 'systeminformation' | 'default';
}

export interface HostFactsOptions {
  /** Link speed used when the platform does not tell it, Mbit/s. Default 1000. */
  defaultLinkMbps?: number;
  platform?: NodeJS.Platform;
  /** Where sysfs and procfs are mounted; tests point them at fixtures. */
  sysRoot?: string;
  procRoot?: string;
}

/** Mbit/s of a full-duplex link to bytes per second of receive plus transmit. */
export function linkMbpsToBytesPerSecond(mbps: number, fullDuplex = true): number {
  return ((mbps * 1e6) / 8) * (fullDuplex ? 2 : 1);
}

/**
 * Sums the link speeds the kernel reports in /sys/class/net/<if>/speed (Mbit/s,
 * -1 or unreadable when unknown, as for loopback and most virtual devices).
 * Interfaces backed by a device are preferred: when any exists, virtual ones
 * (bridges, veth pairs, which report nominal speeds) are left out.
 * Returns undefined when no interface has a usable speed.
 */
export async function readSysfsLinkCapacity(sysRoot = '/sys'): Promise<number | undefined> {
  const dir = `${sysRoot}/class/net`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return undefined;
  }
  const physical: number[] = [];
  const virtual: number[] = [];
  for (const name of names) {
    if (name === 'lo') continue;
    const speed = Number((await readFile(`${dir}/${name}/speed`, 'latin1').catch(() => '')).trim());
    if (!Number.isFinite(speed) || speed <= 0) continue;
    const duplex = (await readFile(`${dir}/${name}/duplex`, 'latin1').catch(() => 'full')).trim();
    const bytes = linkMbpsToBytesPerSecond(speed, duplex !== 'half');
    (existsSync(`${dir}/${name}/device`) ? physical : virtual).push(bytes);
  }
  const chosen = physical.length > 0 ? physical : virtual;
  return chosen.length > 0 ? chosen.reduce((a, b) => a + b, 0) : undefined;
}

/**
 * Static facts of the host, read once at start. On Linux from procfs and sysfs
 * (no child processes); elsewhere through systeminformation, loaded only there.
 */
export async function readHostFacts(options: HostFactsOptions = {}): Promise<HostFacts> {
  const platform = options.platform ?? process.platform;
  const fallbackLink = linkMbpsToBytesPerSecond(options.defaultLinkMbps ?? 1000);
  const cpuCores = Math.max(1, cpus().length);
  if (platform === 'linux') {
    const procRoot = options.procRoot ?? '/proc';
    const memoryBytes = await readFile(`${procRoot}/meminfo`, 'latin1').then(
      (t) => parseMemInfo(t).totalBytes,
      () => totalmem(),
    );
    const link = await readSysfsLinkCapacity(options.sysRoot);
    return {
      cpuCores,
      memoryBytes,
      networkBytesPerSecond: link ?? fallbackLink,
      linkSpeedSource: link === undefined ? 'default' : 'sysfs',
    };
  }
  const { default: si } = await import('systeminformation');
  const ifaces = await si.networkInterfaces().catch(() => []);
  let link = 0;
  for (const i of Array.isArray(ifaces) ? ifaces : [ifaces]) {
    if (!i.internal && !i.virtual && i.speed && i.speed > 0)
      link += linkMbpsToBytesPerSecond(i.speed);
  }
  return {
    cpuCores,
    memoryBytes: totalmem(),
    networkBytesPerSecond: link > 0 ? link : fallbackLink,
    linkSpeedSource: link > 0 ? 'systeminformation' : 'default',
  };
}
