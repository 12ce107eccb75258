import { describe, expect, it } from 'vitest';
import { lpsConfigSchema } from '../../src/lps/config.js';
import { EndpointStore } from '../../src/lps/store.js';
import { makeSample } from '../support/raw-agent.js';

/*
 * A new owner that already stored an agent's newer samples itself merges the older ones it reads
 * from the service's stream: each sequence once, in order, checked as the wire's are.
 */
describe('EndpointStore.backfill', () => {
  it('merges older samples by sequence, once each, and refuses bad ones', () => {
    const store = new EndpointStore(lpsConfigSchema.parse({ ringSize: 16 }));
    const now = Date.now();
    const record = store.upsertFromHello(
      {
        endpointId: 'e',
        service: 's',
        address: '127.0.0.1',
        port: 1,
        labels: {},
        agentVersion: 't',
      },
      now,
    );
    const sample = (sequence: number, cpu = 0.1) =>
      makeSample({
        endpointId: 'e',
        sequence,
        cpuUsage: cpu,
        timestamp: new Date(now - 1000 + sequence),
      });
    for (let q = 14; q <= 20; q++) expect(store.accept(record, sample(q), now)).toBe('stored');
    const older = [...Array.from({ length: 13 }, (_, i) => sample(i + 1)), sample(15), sample(5)];
    // One bad value among them: refused, not stored.
    older.push({ ...sample(0), sequence: 0 });
    older[2] = { ...sample(3), cpuUsage: 7 };
    const added = store.backfill(
      record,
      older.map((s) => ({ sample: s, atMs: now })),
    );
    expect(added).toBe(9);
    expect(record.samplesStored).toBe(16);
    expect(record.lastSequence).toBe(20);
    const sequences = record.series.toArray().map((s) => s.sequence);
    // The ring keeps its newest 16, in sequence order (1, 2 and 4 fall off; 3 was refused).
    expect(sequences).toEqual(Array.from({ length: 16 }, (_, i) => i + 5));
    expect(
      store.backfill(
        record,
        older.map((s) => ({ sample: s, atMs: now })),
      ),
    ).toBe(0);
  });
});
