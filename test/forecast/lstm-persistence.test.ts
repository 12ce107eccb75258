import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { LstmWorker } from '../../src/lps/forecast/lstm/client.js';
import type { LstmSpec } from '../../src/lps/forecast/lstm/model.js';
import { loadLstm, saveLstm } from '../../src/lps/forecast/lstm/persistence.js';
import { captureLogger } from '../support/logs.js';
import { engine, rows, spec } from './lstm-support.js';

const workers: LstmWorker[] = [];
async function startWorker(s: LstmSpec = spec): Promise<LstmWorker> {
  const w = await LstmWorker.start(s, engine, { niceness: 0 });
  workers.push(w);
  return w;
}
const dir = mkdtempSync(join(tmpdir(), 'augur-lstm-'));

afterEach(async () => {
  for (const w of workers.splice(0)) await w.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('LSTM persistence', () => {
  test('save, restart, load gives the same forecasts', async () => {
    const file = join(dir, 'model.json');
    const a = await startWorker();
    await a.append([{ id: 's', rows: rows(300) }]);
    await a.fit(2);
    const before = await a.predict([{ id: 's' }]);
    await saveLstm(a, file);
    await a.close();

    const { logger } = captureLogger();
    const b = await startWorker();
    const fresh = await b.predict([{ id: 's' }]);
    expect(Array.from(fresh).every(Number.isNaN)).toBe(true); // knows nothing before loading
    expect(await loadLstm(b, file, logger)).toBe(true);
    const after = await b.predict([{ id: 's' }]);
    expect(Array.from(after)).toEqual(Array.from(before));
    expect(Array.from(after).every(Number.isFinite)).toBe(true);
  }, 60_000);

  test('a corrupt or incompatible model file is reported and survived', async () => {
    const corrupt = join(dir, 'corrupt.json');
    writeFileSync(corrupt, '{"format":"augur-lstm","version":2,"weights":"AAAA');
    const { logger, lines } = captureLogger();
    const w = await startWorker();
    expect(await loadLstm(w, corrupt, logger)).toBe(false);
    expect(lines.join('')).toMatch(/corrupt or incompatible/);

    const other = join(dir, 'other.json');
    const small = await startWorker({ ...spec, window: 4 });
    await small.append([{ id: 's', rows: rows(100) }]);
    await small.fit(1);
    await saveLstm(small, other);
    expect(await loadLstm(w, other, logger)).toBe(false);
    expect(lines.join('')).toMatch(/this configuration needs/);

    // The worker still works after both failures.
    await w.append([{ id: 's', rows: rows(100) }]);
    await w.fit(1);
    const p = await w.predict([{ id: 's' }]);
    expect(Array.from(p).every(Number.isFinite)).toBe(true);
    expect(await loadLstm(w, join(dir, 'missing.json'), logger)).toBe(false);
  }, 60_000);
});
