import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';
import { makeSample, RawAgentStream } from '../support/raw-agent.js';
import { ServeProcess } from '../support/serve-process.js';

/*
 * `augur serve` as a process that dies: SIGKILLed under ingest from real agents (every sample it
 * acknowledged must be there after a restart), and on a full disk (a clear error, and a non-zero
 * exit when it cannot save its state).
 */

const servers: ServeProcess[] = [];
/** `augur serve` processes inside a wrapper (which a kill of the wrapper would not reach). */
const wrapped: number[] = [];
const agents: Agent[] = [];
const streams: RawAgentStream[] = [];
const cleanups: Array<() => void> = [];
let plane: TestPlane | undefined;

afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  await Promise.all(agents.splice(0).map((a) => a.stop()));
  for (const pid of wrapped.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await Promise.all(servers.splice(0).map((s) => s.stop('SIGKILL')));
  await plane?.dispose();
  plane = undefined;
  for (const f of cleanups.splice(0)) f();
});

/** Keys of the test's control plane, as environment variables (so the child reads them too). */
const ENV = {
  AUGUR_FORECAST__LSTM__ENABLED: 'false',
  AUGUR_DASHBOARD__ENABLED: 'false',
  AUGUR_XDS__ENABLED: 'false',
  AUGUR_LPS__PERSIST_SAMPLES: '720',
  AUGUR_LOG_LEVEL: 'info',
};

/** `augur serve` on `dataDir` (kept for the restart), inside `wrap` if given. */
async function serve(
  dataDir: string,
  env: Record<string, string>,
  wrap?: string[],
): Promise<ServeProcess> {
  const s = await ServeProcess.start(
    [],
    { ...ENV, ...env },
    { dataDir, ...(wrap ? { wrap } : {}) },
  );
  servers.push(s);
  return s;
}

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function probeTarget(): Promise<string> {
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => server.close());
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * SIGKILLs `augur serve` while three real agents stream to it (with durable acks, state
 * checkpointed every second, so the kill finds a snapshot and a log), then restarts the LPS on
 * the same data dir and returns, per endpoint, the sequences the agent had seen acknowledged and
 * not found there.
 */
async function killUnderIngest(
  durableAcks: boolean,
): Promise<{ missing: number[][]; acked: number[] }> {
  const dataDir = tempDir('augur-crash-');
  const env = {
    AUGUR_LPS__DURABLE_ACKS: String(durableAcks),
    // Without durable acks, no checkpoint before the kill: one written between the last ack and
    // the kill (agents that sample together leave quiet gaps) would hold every acknowledged
    // sample, and the loss this run shows would then not happen.
    AUGUR_LPS__PERSIST_INTERVAL: durableAcks ? '1' : '60',
  };
  const lps = await serve(dataDir, env);
  const address = lps.grpcAddress;
  const target = await probeTarget();
  const ids = ['kill-a', 'kill-b', 'kill-c'];
  for (const id of ids) {
    agents.push(
      await Agent.start({
        lps: address,
        endpointId: id,
        service: 'shop',
        address: target,
        intervalSeconds: 0.05,
        probe: { kind: 'tcp', address: target },
        healthTimeoutSeconds: 0.5,
        bufferSize: 5000,
        backoff: { initialSeconds: 0.05, maxSeconds: 0.2 },
      }),
    );
  }
  // Past a checkpoint or two, with samples still arriving.
  await waitFor(
    () => agents.every((a) => a.stats().lastAcked >= 60),
    20_000,
    'every agent to have 60 samples acknowledged',
  );
  lps.child.kill('SIGKILL');
  await lps.exited;
  // Everything the LPS sent before it died has been read once the agents see the stream end.
  await waitFor(() => agents.every((a) => !a.stats().connected), 5000, 'the agents to notice');
  const acked = agents.map((a) => a.stats().lastAcked);
  await Promise.all(agents.splice(0).map((a) => a.stop()));

  plane = await startTestPlane(
    {
      lps: { durableAcks, persistSamples: 720 },
      forecast: { lstm: { enabled: false } },
      dashboard: { enabled: false },
      xds: { enabled: false },
    },
    dataDir,
  );
  const missing = ids.map((id, i) => {
    const have = new Set(plane!.lps.store.get(id)?.series.column('sequence') ?? []);
    return Array.from({ length: acked[i]! }, (_, k) => k + 1).filter((s) => !have.has(s));
  });
  return { missing, acked };
}

describe('augur serve killed under ingest', () => {
  it('keeps every sample it acknowledged (SIGKILL, then a restart on the same data dir)', async () => {
    const { missing, acked } = await killUnderIngest(true);
    for (const a of acked) expect(a).toBeGreaterThanOrEqual(60);
    expect(missing).toEqual([[], [], []]);
  }, 60_000);

  it('loses acknowledged samples with lps.durableAcks off (what the check above would catch)', async () => {
    const { missing } = await killUnderIngest(false);
    expect(missing.flat().length).toBeGreaterThan(0);
  }, 60_000);
});

/** A small full file system for the data dir: a tmpfs in a user namespace where the kernel allows it. */
function tmpfsAvailable(): boolean {
  const r = spawnSync('unshare', ['--user', '--map-root-user', '--mount', 'true'], {
    stdio: 'ignore',
  });
  return r.status === 0;
}

describe('augur serve on a full disk', () => {
  it('reports the write errors, stops acknowledging, and exits non-zero with the reason', async () => {
    const dataDir = tempDir('augur-full-');
    const tmpfs = tmpfsAvailable();
    // Without a tmpfs, the kernel is made to refuse large files instead (RLIMIT_FSIZE: EFBIG).
    const script = tmpfs
      ? 'mount -t tmpfs -o size=256k tmpfs "$0" || exit 90; "$@"; code=$?; echo "LEFT $(ls -A "$0/lps" | tr "\\n" " ")"; exit $code'
      : 'ulimit -f 128; exec "$@"';
    const command = tmpfs
      ? ['unshare', '--user', '--map-root-user', '--mount', 'sh', '-c', script, dataDir]
      : ['sh', '-c', script, 'sh'];
    const lps = await serve(dataDir, {}, command);
    const address = lps.grpcAddress;
    const pid = Number(lps.lines.find((l) => typeof l.pid === 'number')!.pid);
    wrapped.push(pid);

    // 20 endpoints, 200 samples each: more than the disk (or the file size limit) holds.
    const batch = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) =>
        makeSample({ sequence: from + i, timestamp: new Date(Date.now() - (n - i) * 100) }),
      );
    for (let e = 0; e < 20; e++) {
      const s = new RawAgentStream(address);
      streams.push(s);
      s.hello({ endpointId: `full-${e}`, port: 9000 + e });
      s.send({ batch: { samples: batch(1, 200) } });
    }
    await waitFor(
      () => lps.lines.some((l) => l.msg?.startsWith('cannot write the sample log')),
      20_000,
      'the sample log to fail',
    );
    const failure = lps.lines.find((l) => l.msg?.startsWith('cannot write the sample log'))!;
    expect(failure.code).toBe(tmpfs ? 'ENOSPC' : 'EFBIG');
    expect(failure.level).toBe(50); // error

    if (tmpfs) {
      // Reported at start: the data dir has far less room than lps.minFreeBytes asks for.
      expect(lps.lines.some((l) => String(l.msg).includes('under lps.minFreeBytes'))).toBe(true);
      // Nothing more is acknowledged while the disk is full.
      const last = streams[0]!.received.filter((m) => m.ack).pop()?.ack?.lastSequence ?? 0;
      streams[0]!.send({ batch: { samples: batch(201, 5) } });
      await new Promise((r) => setTimeout(r, 500));
      const after = streams[0]!.received.filter((m) => m.ack).pop()?.ack?.lastSequence ?? 0;
      expect(after).toBe(last);
      expect(last).toBeLessThan(205);
    }

    process.kill(pid, 'SIGTERM');
    const code = await lps.exited;
    expect(code).not.toBe(0);
    const failed = lps.lines.find((l) => l.msg === 'shutdown failed');
    expect(failed, lps.log()).toBeDefined();
    const reason = JSON.stringify(failed);
    expect(reason).toContain("could not save the LPS's state in");
    expect(reason).toMatch(tmpfs ? /no space left on device/i : /file too large/i);
    // No half-written snapshot is left behind.
    const left = tmpfs
      ? lps.lines.find((l) => l.msg?.startsWith('LEFT'))?.msg
      : readdirSync(join(dataDir, 'lps')).join(' ');
    expect(left).toBeDefined();
    expect(left).not.toContain('.tmp');
  }, 60_000);
});
