import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { lpsConfigSchema } from '../../src/lps/config.js';
import { Lps } from '../../src/lps/lps.js';

/** Builds an LPS with the given limits and returns what it logged while being built. */
function linesLoggedBy(limits: Record<string, number>): Array<{ level: number; msg: string }> {
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
        done();
      },
    }),
  );
  // Built, never started: the data dir is not touched (start() opens it).
  new Lps({
    config: lpsConfigSchema.parse(limits),
    dataDir: join(tmpdir(), 'augur-never-opened'),
    registry: new Registry(),
    logger,
  });
  return lines;
}

describe('LPS limits that contradict each other', () => {
  it('warns, naming both settings, when lps.maxStreams is below lps.maxEndpoints', () => {
    const warnings = linesLoggedBy({ maxEndpoints: 8000, maxStreams: 6000 }).filter(
      (l) => l.level === 40,
    );
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toContain('lps.maxStreams (6000) is below lps.maxEndpoints (8000)');
  });

  it('says nothing at the defaults (6,000 streams for 5,000 endpoints)', () => {
    expect(linesLoggedBy({}).filter((l) => l.level >= 40)).toEqual([]);
  });
});
