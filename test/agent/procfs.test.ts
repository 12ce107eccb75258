import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ProcFile,
  ProcSampler,
  counterDelta,
  cpuFraction,
  parseMemInfo,
  parseNetDev,
  parseProcStat,
  scanNumber,
  scannedTo,
} from '../../src/agent/procfs.js';
import {
  linkMbpsToBytesPerSecond,
  readHostFacts,
  readSysfsLinkCapacity,
} from '../../src/agent/host-facts.js';

const STAT = (user: number, idle: number, iowait = 0, guest = 0) =>
  `cpu  ${user} 0 100 ${idle} ${iowait} 0 0 0 ${guest} 0\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 12345\n`;

const MEMINFO = `MemTotal:        8000000 kB
MemFree:          500000 kB
MemAvailable:    6000000 kB
Buffers:          100000 kB
Cached:          2000000 kB
`;

const NETDEV = (
  ethRx: number,
  ethTx: number,
  loRx = 999,
  wlanRx = 0,
) => `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: ${loRx}      29    0    0    0     0          0         0     ${loRx}      29    0    0    0     0       0          0
  eth0: ${ethRx}   100    0    0    0     0          0         0 ${ethTx}     50    0    0    0     0       0          0
 wlan0: ${wlanRx}  1    0    0    0     0          0         0        7       1    0    0    0     0       0          0
`;

describe('procfs parsing of fixture text', () => {
  it('sums the first eight cpu fields and counts idle and iowait as not busy', () => {
    // user 300, system 100, idle 500, iowait 100; guest 50 is already inside user.
    expect(parseProcStat(STAT(300, 500, 100, 50))).toEqual({ busy: 400, total: 1000 });
  });

  it('scans whole numbers by character without splitting, refusing what is not one', () => {
    expect(scanNumber('  42 7', 0)).toBe(42);
    expect(scannedTo()).toBe(4);
    expect(scanNumber('  42 7', scannedTo())).toBe(7);
    expect(scanNumber('x1', 0)).toBeNaN();
    expect(scanNumber('1.5', 0)).toBeNaN();
    expect(scanNumber('12abc', 0)).toBeNaN();
    expect(scanNumber('   ', 0)).toBeNaN();
    expect(() => parseProcStat('cpu  1 2 x 4\n')).toThrow(/field 3/);
    expect(() => parseProcStat('cpu  1 2\n')).toThrow(/fewer than 4/);
  });

  it('rejects text that is not /proc/stat', () => {
    expect(() => parseProcStat('intr 1 2 3\n')).toThrow(/cpu/);
  });

  it('computes the busy fraction of a delta and guards against no time passing', () => {
    const a = parseProcStat(STAT(300, 500));
    const b = parseProcStat(STAT(400, 800)); // +100 busy of +400 total
    expect(cpuFraction(a, b)).toBeCloseTo(0.25, 10);
    expect(cpuFraction(b, b)).toBe(0);
    expect(cpuFraction(b, a)).toBe(0); // counters went back (a reset): no nonsense negative usage
  });

  it('reads memory use as 1 - MemAvailable/MemTotal', () => {
    const m = parseMemInfo(MEMINFO);
    expect(m.totalBytes).toBe(8000000 * 1024);
    expect(1 - m.availableBytes / m.totalBytes).toBeCloseTo(0.25, 10);
  });

  it('estimates MemAvailable on old kernels from MemFree + Buffers + Cached', () => {
    const old = MEMINFO.split('\n')
      .filter((l) => !l.startsWith('MemAvailable'))
      .join('\n');
    expect(parseMemInfo(old).availableBytes).toBe((500000 + 100000 + 2000000) * 1024);
    expect(() => parseMemInfo('Foo: 1 kB\n')).toThrow(/MemTotal/);
  });

  it('parses /proc/net/dev without loopback and reuses the map it is given', () => {
    const map = parseNetDev(NETDEV(1000, 2000, 5, 3));
    expect([...map.keys()].sort()).toEqual(['eth0', 'wlan0']);
    expect(map.get('eth0')).toEqual({ rx: 1000, tx: 2000 });
    const eth0 = map.get('eth0');
    parseNetDev(NETDEV(1500, 2600).replace(/ wlan0:.*\n/, ''), map);
    expect(map.get('eth0')).toBe(eth0); // same object, updated in place
    expect(map.get('eth0')).toEqual({ rx: 1500, tx: 2600 });
    expect(map.has('wlan0')).toBe(false); // interfaces that vanished are dropped
  });

  it('handles 32-bit counter wrap and counter resets', () => {
    expect(counterDelta(100, 350)).toBe(250);
    // A 32-bit counter near its top wraps: 2^32 - 100 -> 50 is 150 bytes.
    expect(counterDelta(2 ** 32 - 100, 50)).toBe(150);
    // A counter well below the wrap point that goes down was reset: count from zero.
    expect(counterDelta(5000, 1200)).toBe(1200);
    // A 64-bit counter above 2^32 that goes down is a reset too.
    expect(counterDelta(2 ** 40, 10)).toBe(10);
  });
});

describe('ProcSampler over fixture files', () => {
  let dir: string;
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('turns deltas between ticks into rates, across a counter wrap', async () => {
    dir = await mkdtemp(join(tmpdir(), 'augur-procfs-'));
    await mkdir(join(dir, 'net'));
    const write = (stat: string, net: string) =>
      Promise.all([
        writeFile(join(dir, 'stat'), stat),
        writeFile(join(dir, 'meminfo'), MEMINFO),
        writeFile(join(dir, 'net', 'dev'), net),
      ]);
    let clock = 0;
    const sampler = new ProcSampler({ procRoot: dir, now: () => clock });

    await write(STAT(300, 500), NETDEV(2 ** 32 - 1000, 0));
    await sampler.prime();

    clock = 2000; // 2 s later
    await write(STAT(400, 800), NETDEV(3000, 4000, 10 ** 9));
    const s1 = await sampler.sample();
    expect(s1.cpuUsage).toBeCloseTo(0.25, 10);
    expect(s1.memoryUsage).toBeCloseTo(0.25, 10);
    // eth0 rx wrapped: 1000 + 3000 bytes; tx 4000; loopback ignored; over 2 s.
    expect(s1.networkIo).toBeCloseTo((4000 + 4000) / 2, 10);

    clock = 3000;
    await write(STAT(1400, 800), NETDEV(4000, 4000));
    const s2 = await sampler.sample();
    expect(s2.cpuUsage).toBe(1);
    expect(s2.networkIo).toBeCloseTo(1000, 10);
    await sampler.close();
  });
});

describe('ProcFile', () => {
  let dir: string;
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('re-reads a kept-open file from the start, growing its buffer for whole files', async () => {
    dir = await mkdtemp(join(tmpdir(), 'augur-procfile-'));
    const path = join(dir, 'dev');
    await writeFile(path, NETDEV(1, 2));
    const whole = new ProcFile(path, 16);
    const head = new ProcFile(path, 16, true);
    try {
      expect(whole.read()).toBe(NETDEV(1, 2));
      expect(head.read()).toBe(NETDEV(1, 2).slice(0, 16));
      await writeFile(path, NETDEV(3, 4)); // same inode, new content
      expect(whole.read()).toBe(NETDEV(3, 4));
    } finally {
      whole.close();
      head.close();
    }
  });

  it('sees fresh values from procfs on every read of the same handle', async () => {
    dir = await mkdtemp(join(tmpdir(), 'augur-procfile-'));
    const stat = new ProcFile('/proc/stat', 1024, true);
    try {
      const a = parseProcStat(stat.read());
      const until = performance.now() + 100;
      while (performance.now() < until) Math.sqrt(Math.random());
      const b = parseProcStat(stat.read());
      expect(b.busy).toBeGreaterThan(a.busy);
    } finally {
      stat.close();
    }
  });
});

describe('procfs on this machine', () => {
  it('parses the real /proc files and samples plausible values', async () => {
    const [stat, mem, net] = await Promise.all([
      readFile('/proc/stat', 'latin1'),
      readFile('/proc/meminfo', 'latin1'),
      readFile('/proc/net/dev', 'latin1'),
    ]);
    const cpu = parseProcStat(stat);
    expect(cpu.total).toBeGreaterThan(0);
    expect(cpu.busy).toBeGreaterThan(0);
    expect(cpu.busy).toBeLessThanOrEqual(cpu.total);
    expect(parseMemInfo(mem).totalBytes).toBeGreaterThan(64 * 1024 * 1024);
    expect(parseNetDev(net).has('lo')).toBe(false);

    const sampler = new ProcSampler();
    await sampler.prime();
    // Burn CPU for a moment so the delta is not zero.
    const until = performance.now() + 150;
    while (performance.now() < until) Math.sqrt(Math.random());
    const load = await sampler.sample();
    expect(load.cpuUsage).toBeGreaterThan(0);
    expect(load.cpuUsage).toBeLessThanOrEqual(1);
    expect(load.memoryUsage).toBeGreaterThan(0);
    expect(load.memoryUsage).toBeLessThan(1);
    expect(load.networkIo).toBeGreaterThanOrEqual(0);
    await sampler.close();
  });
});

describe('host facts', () => {
  let dir: string;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('reads the link speed from sysfs, preferring device-backed interfaces', async () => {
    dir = await mkdtemp(join(tmpdir(), 'augur-sysfs-'));
    const iface = async (name: string, speed: string, duplex: string, device: boolean) => {
      await mkdir(join(dir, 'class/net', name), { recursive: true });
      await writeFile(join(dir, 'class/net', name, 'speed'), speed);
      await writeFile(join(dir, 'class/net', name, 'duplex'), duplex);
      if (device) await mkdir(join(dir, 'class/net', name, 'device'));
    };
    await iface('lo', '-1', 'unknown', false);
    await iface('veth0', '10000', 'full', false);
    await iface('eth0', '1000', 'full', true);
    await iface('eth1', '100', 'half', true);
    expect(await readSysfsLinkCapacity(dir)).toBe(
      linkMbpsToBytesPerSecond(1000) + linkMbpsToBytesPerSecond(100, false),
    );
  });

  it('falls back to the configured link speed when sysfs knows none', async () => {
    dir = await mkdtemp(join(tmpdir(), 'augur-sysfs-'));
    await mkdir(join(dir, 'class/net/lo'), { recursive: true });
    await writeFile(join(dir, 'class/net/lo/speed'), '-1');
    const facts = await readHostFacts({ sysRoot: dir, defaultLinkMbps: 400 });
    expect(facts.linkSpeedSource).toBe('default');
    expect(facts.networkBytesPerSecond).toBe(100e6);
    expect(facts.cpuCores).toBeGreaterThanOrEqual(1);
    expect(facts.memoryBytes).toBe(
      parseMemInfo(await readFile('/proc/meminfo', 'latin1')).totalBytes,
    );
  });
});
