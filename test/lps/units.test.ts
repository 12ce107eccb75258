import { describe, expect, it } from 'vitest';
import { SampleRing, type StoredSample } from '../../src/lps/ring.js';
import { loadConfig } from '../../src/serve/config.js';
import { parseHostPort } from '../../src/common/address.js';
import { parseDurationSeconds } from '../../src/common/duration.js';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const sample = (seq: number): StoredSample => ({
  timestamp: seq * 1000,
  receivedAt: seq * 1000,
  sequence: seq,
  cpu: seq / 100,
  memory: 0,
  network: 0,
  networkCapacity: 0,
  responseTime: 0,
  healthy: 1,
  requestRate: 0,
  processCpu: NaN,
  completed: NaN,
  latencySum: NaN,
  span: NaN,
});

describe('SampleRing', () => {
  it('keeps the newest samples up to its capacity, oldest first', () => {
    const ring = new SampleRing(4);
    for (let i = 1; i <= 6; i++) ring.push(sample(i));
    expect(ring.size).toBe(4);
    expect(Array.from(ring.column('sequence'))).toEqual([3, 4, 5, 6]);
    expect(Array.from(ring.column('sequence', 2))).toEqual([5, 6]);
    expect(ring.at('sequence')).toBe(6);
    expect(ring.at('sequence', 3)).toBe(3);
    expect(ring.at('sequence', 4)).toBeNaN();
    expect(ring.toArray().map((s) => s.sequence)).toEqual([3, 4, 5, 6]);
  });
});

describe('configuration', () => {
  it('applies defaults < file < environment < flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'augur-cfg-'));
    const file = join(dir, 'augur.yaml');
    writeFileSync(
      file,
      'grpcListen: 0.0.0.0:1\nhttpListen: 0.0.0.0:2\nlps:\n  staleAfterIntervals: 7\n  ringSize: 100\n',
    );
    const config = loadConfig({
      file,
      env: { AUGUR_HTTP_LISTEN: '0.0.0.0:3', AUGUR_LPS__RING_SIZE: '200', AUGUR_DATA_DIR: '/env' },
      flags: { dataDir: '/flag' },
    });
    expect(config.grpcListen).toBe('0.0.0.0:1');
    expect(config.httpListen).toBe('0.0.0.0:3');
    expect(config.lps.staleAfterIntervals).toBe(7);
    expect(config.lps.ringSize).toBe(200);
    expect(config.dataDir).toBe('/flag');
    expect(config.lps.defaultInterval).toBe(1);
  });

  it('names the path of an invalid or unknown value', () => {
    expect(() => loadConfig({ env: { AUGUR_LPS__RING_SIZE: 'lots' } })).toThrow(/lps\.ringSize/);
    expect(() => loadConfig({ env: {}, flags: { lps: { stale: 3 } } })).toThrow(/stale/);
  });

  it('reports a config file that is not YAML', () => {
    const dir = mkdtempSync(join(tmpdir(), 'augur-cfg-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'grpcListen: [unclosed');
    expect(() => loadConfig({ file, env: {} })).toThrow(/not valid YAML/);
  });
});

describe('parsers', () => {
  it('parses host:port forms and rejects bad ones', () => {
    expect(parseHostPort('127.0.0.1:18000')).toEqual({ host: '127.0.0.1', port: 18000 });
    expect(parseHostPort('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseHostPort(':9')).toEqual({ host: '0.0.0.0', port: 9 });
    expect(() => parseHostPort('localhost')).toThrow(/HOST:PORT/);
    expect(() => parseHostPort('h:70000')).toThrow(/above 65535/);
  });

  it('parses durations with and without units', () => {
    expect(parseDurationSeconds('5')).toBe(5);
    expect(parseDurationSeconds('250ms')).toBeCloseTo(0.25);
    expect(parseDurationSeconds('2m')).toBe(120);
    expect(() => parseDurationSeconds('soon')).toThrow(/not a duration/);
    expect(() => parseDurationSeconds(-1)).toThrow(/>= 0/);
  });
});

describe('augur.example.yaml', () => {
  it('lists every configuration key with its default (regenerate with npm run config:example)', async () => {
    const { exampleConfigText } = await import('../../scripts/config-example.js');
    const { readFileSync } = await import('node:fs');
    const file = readFileSync(new URL('../../augur.example.yaml', import.meta.url), 'utf8');
    expect(file).toBe(exampleConfigText());
    const { parse } = await import('yaml');
    expect(loadConfig({ env: {}, flags: parse(file) as Record<string, unknown> })).toEqual(
      loadConfig({ env: {} }),
    );
  });
});
