import * as grpc from '@grpc/grpc-js';
import { appendFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ProbeHealth } from '../../src/gen/augur/v1/common.js';
import type { StateRecord } from '../../src/gen/augur/storage/v1/lps_state.js';
import {
  LoadPredictionClient,
  type ListEndpointsResponse,
} from '../../src/gen/augur/v1/load_prediction.js';
import type { AgentHello } from '../../src/gen/augur/v1/telemetry.js';
import { stateDir, segmentPath, SNAPSHOT_FILE } from '../../src/lps/persistence/files.js';
import { frame } from '../../src/lps/persistence/frames.js';
import { header, LOG_FORMAT, SNAPSHOT_FORMAT } from '../../src/lps/persistence/snapshot.js';
import { SAMPLE_COLUMNS, type StoredSample } from '../../src/lps/ring.js';
import { loadConfig } from '../../src/serve/config.js';
import { startControlPlane, type ControlPlane } from '../../src/serve/control-plane.js';
import { startTestPlane, type TestPlane } from '../support/control-plane.js';
import { RawAgentStream } from '../support/raw-agent.js';

/*
 * The LPS's state in its data dir, read back by a real `augur serve` (in this process). The crash
 * and full-disk cases, which need a process to kill, are in crash.test.ts.
 */

let plane: TestPlane | undefined;
const closers: Array<() => void> = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await plane?.dispose();
  plane = undefined;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

function agent(id: string): RawAgentStream {
  const s = new RawAgentStream(plane!.grpcAddress);
  closers.push(() => s.close());
  s.hello({ endpointId: id, port: 9001 });
  return s;
}

/** A control plane on `dataDir` whose log lines the test reads. */
async function startLogged(
  dataDir: string,
): Promise<{ plane: ControlPlane; lines: () => string[] }> {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const config = loadConfig({
    env: {},
    flags: { grpcListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', dataDir, logLevel: 'info' },
  });
  const logged = await startControlPlane({ config, logger: pino({ level: 'info' }, sink) });
  return { plane: logged, lines: () => lines };
}

function hello(id: string, over: Partial<AgentHello> = {}): AgentHello {
  return {
    endpointId: id,
    service: 'svc',
    address: '10.0.0.1',
    port: 8080,
    labels: {},
    agentVersion: '',
    capacity: { cpuCores: 2, memoryBytes: 1 << 30, networkBytesPerSecond: 1e9 },
    ...over,
  };
}

/** `n` good samples of an endpoint from sequence `from`, received a minute ago, 1 s apart. */
function rows(n: number, from = 1, over: Partial<StoredSample> = {}): StoredSample[] {
  const t0 = Date.now() - 60_000;
  return Array.from({ length: n }, (_, i) => ({
    timestamp: t0 + (from + i) * 1000,
    receivedAt: t0 + (from + i) * 1000 + 5,
    sequence: from + i,
    cpu: 0.3,
    memory: 0.4,
    network: 1000,
    networkCapacity: 1e9,
    responseTime: 0.01,
    healthy: 1,
    requestRate: 10,
    processCpu: NaN,
    completed: NaN,
    latencySum: NaN,
    span: NaN,
    ...over,
  }));
}

function samples(endpointId: string, list: StoredSample[]): StateRecord {
  const values = list.flatMap((r) => SAMPLE_COLUMNS.map((c) => r[c]));
  const rows = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => rows.writeDoubleLE(v, i * 8));
  return { samples: { endpointId, rows } };
}

function endpoint(h: AgentHello, lastSequence: number): StateRecord {
  const at = Date.now() - 30_000;
  return {
    endpoint: {
      hello: h,
      atMs: at,
      state: {
        intervalSeconds: 1,
        intervalPinned: false,
        draining: false,
        lastSequence,
        lastSeenMs: at,
        samplesStored: lastSequence,
      },
      owner: '',
    },
  };
}

async function freshDataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'augur-state-'));
  dirs.push(dir);
  mkdirSync(stateDir(dir), { recursive: true });
  return dir;
}

async function listEndpoints(address: string): Promise<ListEndpointsResponse> {
  const client = new LoadPredictionClient(address, grpc.credentials.createInsecure());
  try {
    return await new Promise((resolve, reject) =>
      client.listEndpoints({ service: '' }, (err, res) => (err ? reject(err) : resolve(res!))),
    );
  } finally {
    client.close();
  }
}

describe('LPS state across restarts', () => {
  it('remembers endpoints and last sequences across a restart, so replays are not double-counted', async () => {
    plane = await startTestPlane();
    const dataDir = plane.dataDir;
    const a = agent('a');
    for (let seq = 1; seq <= 10; seq++) a.sample({ sequence: seq });
    await a.waitMessage((m) => m.ack?.lastSequence === 10);
    a.close();
    await plane.stop();
    plane = await startTestPlane({}, dataDir);
    const restored = plane.lps.store.get('a')!;
    expect(restored.lastSequence).toBe(10);
    expect(restored.series.size).toBe(10);
    const again = agent('a');
    await again.waitMessage((m) => m.ack?.lastSequence === 10);
    for (let seq = 8; seq <= 12; seq++) again.sample({ sequence: seq });
    await again.waitMessage((m) => m.ack?.lastSequence === 12);
    expect(plane.lps.store.get('a')!.samplesStored).toBe(12);
  });

  it('acknowledges only what is in the log, and restores it without a snapshot', async () => {
    // No checkpoint but the one at start: what comes after lives in the log alone.
    plane = await startTestPlane({ lps: { persistInterval: 0 } });
    const dataDir = plane.dataDir;
    const a = agent('a');
    for (let seq = 1; seq <= 30; seq++) a.sample({ sequence: seq, cpuUsage: seq / 100 });
    await a.waitMessage((m) => m.ack?.lastSequence === 30);
    const segments = readdirSync(stateDir(dataDir)).filter((f) => f.startsWith('log-'));
    expect(segments).toHaveLength(1);
    // Restart as a crash would leave it: the snapshot at start, then the log.
    const { recover } = await import('../../src/lps/persistence/recovery.js');
    const { EndpointStore } = await import('../../src/lps/store.js');
    const store = new EndpointStore(plane.config.lps);
    const { silentLogger } = await import('../../src/common/logger.js');
    const found = await recover(stateDir(dataDir), store, plane.config.lps, silentLogger);
    expect(found.samples).toBe(30);
    // The ring keeps its newest samples exactly, older ones as Float32 (src/lps/ring.ts).
    expect(Array.from(store.get('a')!.series.column('cpu'))).toEqual(
      Array.from({ length: 30 }, (_, i) => (i >= 26 ? (i + 1) / 100 : Math.fround((i + 1) / 100))),
    );
  });

  it('refuses a damaged-but-readable state record by record, keeps the good ones, and serves them', async () => {
    const dataDir = await freshDataDir();
    const dir = stateDir(dataDir);
    const bad = (over: Partial<StoredSample>) => rows(1, 6, over);
    writeFileSync(
      join(dir, SNAPSHOT_FILE),
      Buffer.concat(
        [
          header(SNAPSHOT_FORMAT, 1),
          endpoint(hello('good'), 8),
          samples('good', [
            ...rows(5),
            ...bad({ cpu: 7 }), // out of range: refused, the row after it kept
            ...rows(2, 7),
          ]),
          endpoint(hello('spaced', { address: 'undefined host' }), 1), // not an address
          endpoint(hello('portless', { port: 0 }), 1),
          endpoint(hello('bad id!'), 1),
          samples('nobody', rows(3)), // no valid record introduced it
          endpoint(hello('nan-cpu'), 2),
          samples('nan-cpu', [...rows(1), ...rows(1, 2, { cpu: NaN })]),
          endpoint(hello('future'), 1),
          samples('future', rows(1, 1, { receivedAt: Date.now() + 86_400_000 })),
          { interval: { endpointIds: ['good'], seconds: -3 } },
        ].map(frame),
      ),
    );
    // A log segment after the snapshot, its last write cut short.
    const logFile = segmentPath(dir, 1);
    writeFileSync(
      logFile,
      Buffer.concat(
        [
          header(LOG_FORMAT, 1),
          samples('good', rows(2, 9)),
          { goodbye: { endpointId: 'good', atMs: Date.now() } },
        ].map(frame),
      ),
    );
    const torn = frame(samples('good', rows(1, 11)));
    appendFileSync(logFile, torn.subarray(0, torn.length - 5));

    const { plane: started, lines } = await startLogged(dataDir);
    plane = { ...started, dataDir, dispose: () => started.stop() };
    const store = started.lps.store;
    expect(
      store
        .all()
        .map((r) => r.id)
        .sort(),
    ).toEqual(['future', 'good', 'nan-cpu']);
    expect(Array.from(store.get('good')!.series.column('sequence'))).toEqual([
      1, 2, 3, 4, 5, 7, 8, 9, 10,
    ]);
    expect(store.get('good')!.draining).toBe(true);
    expect(store.get('nan-cpu')!.series.size).toBe(1);
    expect(store.get('future')!.series.size).toBe(0);

    const refusals = lines()
      .map((l) => JSON.parse(l) as { msg: string; reason?: string; endpoint?: string })
      .filter((l) => l.msg.startsWith('refused a record'));
    expect(refusals.map((r) => `${r.endpoint}: ${r.reason}`)).toEqual([
      'good: sample 6: cpu_usage: cpu_usage must be in [0, 1], got 7',
      'spaced: address: address must be an IP or host name, got "undefined host"',
      'portless: port: port must be in [1, 65535], got 0',
      'bad id!: endpoint_id: endpoint_id must be 1-128 characters of [A-Za-z0-9._:-], got "bad id!"',
      'nobody: samples of an endpoint no valid record introduced',
      'nan-cpu: sample 2: cpu_usage: cpu_usage must be a finite number, got NaN',
      expect.stringMatching(/^future: received_at \d+ is not a past time$/),
      'good: interval -3 s is outside [0.1, 300]',
    ]);
    expect(lines().some((l) => l.includes('log segment ends early'))).toBe(true);

    // What was kept is served: no INTERNAL for a record that could not be encoded.
    const listed = await listEndpoints(started.grpcAddress);
    expect(listed.endpoints.map((e) => e.endpointId)).toEqual(['future', 'good', 'nan-cpu']);
    expect(listed.endpoints[1]!.latest).toMatchObject({
      sequence: 10,
      health: ProbeHealth.PROBE_HEALTH_SERVING,
    });
  });

  it('sets an unreadable snapshot aside and replays the log', async () => {
    const dataDir = await freshDataDir();
    const dir = stateDir(dataDir);
    writeFileSync(
      join(dir, SNAPSHOT_FILE),
      '{"format": "augur.lps.endpoints/1", "endpoints": [tru',
    );
    writeFileSync(
      segmentPath(dir, 3),
      Buffer.concat(
        [
          header(LOG_FORMAT, 3),
          {
            endpoint: { hello: hello('a'), atMs: Date.now() - 1000, state: undefined, owner: '' },
          },
          samples('a', rows(4)),
        ].map(frame),
      ),
    );
    plane = await startTestPlane({}, dataDir);
    expect(plane.lps.store.get('a')!.lastSequence).toBe(4);
    expect(readdirSync(dir).some((f) => f.startsWith(`${SNAPSHOT_FILE}.corrupt-`))).toBe(true);
  });

  it('refuses to start on a data dir it cannot write, naming it', async () => {
    const base = await freshDataDir();
    const blocker = join(base, 'a-file');
    writeFileSync(blocker, 'not a directory');
    const err = await startTestPlane({}, join(blocker, 'state')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DATA_DIR_UNWRITABLE' });
    expect((err as Error).message).toContain(join(blocker, 'state'));
    expect(existsSync(join(blocker, 'state'))).toBe(false);
  });
});
