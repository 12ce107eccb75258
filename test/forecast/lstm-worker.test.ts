import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { afterEach, describe, expect, test } from 'vitest';
import { formatHostPort } from '../../src/common/address.js';
import { GrpcHost } from '../../src/common/grpc-host.js';
import { LstmWorker } from '../../src/lps/forecast/lstm/client.js';
import { LstmWalkForward } from '../../src/lps/forecast/lstm/walk-forward.js';
import { engine, rows, spec } from './lstm-support.js';

const workers: LstmWorker[] = [];
afterEach(async () => {
  for (const w of workers.splice(0)) await w.close();
});

describe('LSTM worker', () => {
  test('trains in the worker while a gRPC server on loopback keeps answering', async () => {
    const host = new GrpcHost({ listen: '127.0.0.1:0' });
    host.health.setStatus('', 'SERVING');
    const address = formatHostPort(await host.start());
    const Health = grpc.makeGenericClientConstructor(healthService, 'Health');
    const client = new Health(address, grpc.credentials.createInsecure());
    const check = () =>
      new Promise<string>((resolve, reject) =>
        client.makeUnaryRequest(
          '/grpc.health.v1.Health/Check',
          (x: object) => Buffer.from(JSON.stringify(x)),
          (b: Buffer) => b.toString(),
          {},
          (err: grpc.ServiceError | null, res?: string) => (err ? reject(err) : resolve(res ?? '')),
        ),
      );
    try {
      const w = await LstmWorker.start(spec, engine, { niceness: 0 });
      workers.push(w);
      await w.append([{ id: 's', rows: rows(400) }]);
      let done = false;
      const fit = w.fit(3).then((r) => ((done = true), r));
      let answered = 0;
      let predicted = 0;
      while (!done) {
        await check().catch(() => undefined);
        answered++;
        if (answered % 5 === 0) await w.predict([{ id: 's' }]).then(() => predicted++);
      }
      const result = await fit;
      expect(result.windows).toBeGreaterThan(200);
      // The serving thread answered while the model trained, and so did the worker's inference.
      expect(answered).toBeGreaterThan(10);
      expect(predicted).toBeGreaterThan(1);
    } finally {
      client.close();
      await host.stop();
    }
  }, 60_000);

  test('tells its OS thread id: a thread of this process, not the serving one, whose CPU grows as it fits', async () => {
    const w = await LstmWorker.start(spec, engine, { niceness: 0 });
    workers.push(w);
    expect(w.tid).toBeDefined();
    expect(w.tid).not.toBe(process.pid);
    const cpu = () => {
      const stat = readFileSync(`/proc/self/task/${w.tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(f[11]) + Number(f[12]);
    };
    const before = cpu();
    await w.append([{ id: 's', rows: rows(400) }]);
    await w.fit(3);
    expect(cpu()).toBeGreaterThan(before);
  });

  test('the rows kept to train on are shared out: an even share of maxTotalRows, within its bounds', async () => {
    // spec: window 6, horizon 3, so a series keeps at least 2 × (6 + 3) = 18 rows.
    const w = await LstmWorker.start(
      spec,
      { ...engine, maxRows: 100, maxTotalRows: 120 },
      { niceness: 0 },
    );
    workers.push(w);
    /** Rows series `id` holds: the newest end row a forecast can be asked for, plus one. */
    const held = async (id: string): Promise<number> => {
      const ends = Array.from({ length: 120 }, (_, end) => ({ id, end }));
      const out = await w.predict(ends);
      const per = out.length / ends.length;
      let n = 0;
      for (let end = 0; end < ends.length; end++)
        if (Number.isFinite(out[end * per + per - 1]!)) n = end + 1;
      return n;
    };
    await w.append([{ id: 'a', rows: rows(150) }]);
    // Alone, a series keeps maxRows (its share, 120, is more).
    expect(await held('a')).toBe(100);
    await w.append([
      { id: 'b', rows: rows(10) },
      { id: 'c', rows: rows(10) },
    ]);
    // Three series: 40 rows each; `a` is cut to its share as the others arrive.
    expect(await held('a')).toBe(40);
    await w.append([{ id: 'a', rows: rows(1, 150) }]);
    expect(await held('a')).toBe(40);
    // Thirteen series: the share (9) is below the floor, so each keeps 18.
    await w.append(Array.from({ length: 10 }, (_, i) => ({ id: `x${i}`, rows: rows(5) })));
    expect(await held('a')).toBe(18);
    // Two series again: the share grows back to 60; `a` keeps its 18 rows and has room for more.
    await w.forget(['c', ...Array.from({ length: 10 }, (_, i) => `x${i}`)]);
    expect(await held('a')).toBe(18);
    await w.append([{ id: 'a', rows: rows(50, 152) }]);
    expect(await held('a')).toBe(60);
    await w.append([{ id: 'b', rows: rows(30) }]);
    expect(await held('b')).toBe(40);
  });

  test('a forecast is the same whether its series is asked alone or among 5,000', async () => {
    const w = await LstmWorker.start(spec, engine, { niceness: 0 });
    workers.push(w);
    // Each window runs through the forward pass with the same scratch state: nothing of one
    // series' run may leak into the next.
    const ids = Array.from({ length: 5000 }, (_, i) => `s${i}`);
    await w.append(ids.map((id, i) => ({ id, rows: rows(12, i) })));
    const all = await w.predict(ids.map((id) => ({ id })));
    const per = all.length / ids.length;
    for (const i of [0, 4095, 4096, 4999]) {
      const alone = await w.predict([{ id: ids[i]! }]);
      expect(Array.from(alone).every(Number.isFinite)).toBe(true);
      expect(Array.from(all.subarray(i * per, (i + 1) * per))).toEqual(Array.from(alone));
    }
  });

  test('forecasts are written into a buffer handed back where it has room, and into a new one where not', async () => {
    const w = await LstmWorker.start(spec, engine, { niceness: 0 });
    workers.push(w);
    const ids = ['a', 'b', 'c'];
    await w.append(ids.map((id, i) => ({ id, rows: rows(12, i) })));
    const fresh = Array.from(await w.predictIds(ids));
    const per = fresh.length / ids.length;
    expect(fresh.every(Number.isFinite)).toBe(true);
    // Room for all three: written into it, a view of its start; the buffer comes back whole.
    const given = new Float32Array(10 * per).fill(7);
    const again = await w.predictIds(ids.slice(0, 2), given);
    expect(given.length).toBe(0); // transferred to the worker
    expect(again.length).toBe(2 * per);
    expect(again.byteOffset).toBe(0);
    expect(again.buffer.byteLength).toBe(10 * per * 4);
    expect(Array.from(again)).toEqual(fresh.slice(0, 2 * per));
    // Too small: a new buffer, of the result's size.
    const bigger = await w.predictIds(ids, new Float32Array(per));
    expect(bigger.buffer.byteLength).toBe(3 * per * 4);
    expect(Array.from(bigger)).toEqual(fresh);
  });

  test('walk-forward LSTM never looks ahead: changing the future leaves earlier forecasts unchanged', async () => {
    const n = 300;
    const k = 250;
    const base = Array.from({ length: n }, (_, i) => rows(n)[i * 3]!);
    const changed = base.map((v, i) => (i >= k ? v * 4 + 2 : v));
    const wf = () =>
      new LstmWalkForward({
        window: 6,
        units: 4,
        firstFit: 150,
        refitEvery: 60,
        initialEpochs: 2,
        fineTuneEpochs: 1,
        maxTrainWindows: 128,
        batchSize: 32,
      });
    const [a] = await wf().run([{ name: 'a', values: base }], 3);
    const [b] = await wf().run([{ name: 'b', values: changed }], 3);
    const H = 3;
    expect(Number.isNaN(a![149 * H]!)).toBe(true); // nothing before the first fit
    expect(Number.isFinite(a![150 * H]!)).toBe(true);
    expect(Array.from(a!.subarray(0, k * H))).toEqual(Array.from(b!.subarray(0, k * H)));
    expect(a![k * H]).not.toEqual(b![k * H]); // the check can fail
  }, 60_000);
});
