import { describe, expect, it } from 'vitest';
import { readHostFacts } from '../../src/agent/host-facts.js';
import { createLoadSampler } from '../../src/agent/load-sampler.js';
import { ProcSampler } from '../../src/agent/procfs.js';
import { SystemInformationSampler } from '../../src/agent/si-sampler.js';

/**
 * The non-Linux path (systeminformation) exercised here on Linux, where
 * systeminformation also works: same units and ranges as the procfs path.
 */
describe('platform fallback', () => {
  it('picks procfs on Linux and systeminformation elsewhere', async () => {
    const linux = await createLoadSampler('linux');
    expect(linux).toBeInstanceOf(ProcSampler);
    await linux.close?.();
    expect(await createLoadSampler('darwin')).toBeInstanceOf(SystemInformationSampler);
  });

  it('samples load in the units of EndpointData through systeminformation', async () => {
    const sampler = new SystemInformationSampler();
    await sampler.sample();
    await new Promise((r) => setTimeout(r, 200));
    const load = await sampler.sample();
    expect(load.cpuUsage).toBeGreaterThanOrEqual(0);
    expect(load.cpuUsage).toBeLessThanOrEqual(1);
    expect(load.memoryUsage).toBeGreaterThan(0);
    expect(load.memoryUsage).toBeLessThan(1);
    expect(load.networkIo).toBeGreaterThanOrEqual(0);
  });

  it('reads host facts through systeminformation with the default link speed as fallback', async () => {
    const facts = await readHostFacts({ platform: 'darwin', defaultLinkMbps: 800 });
    expect(facts.cpuCores).toBeGreaterThanOrEqual(1);
    expect(facts.memoryBytes).toBeGreaterThan(64 * 1024 * 1024);
    if (facts.linkSpeedSource === 'default') expect(facts.networkBytesPerSecond).toBe(200e6);
    else expect(facts.networkBytesPerSecond).toBeGreaterThan(0);
  });
});
