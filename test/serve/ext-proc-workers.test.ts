import { afterEach, describe, expect, it } from 'vitest';
import { ExtProcClient, overrideHosts } from '../../src/rrm/ext-proc/client.js';
import { waitFor } from '../support/control-plane.js';
import { RawAgentStream } from '../support/raw-agent.js';
import { ServeProcess } from '../support/serve-process.js';

/*
 * `rrm.extProcWorkers`: `augur serve` as a real process whose ext_proc fast path is served by two
 * worker processes sharing one port. Real agents report three endpoints; ext_proc clients (one
 * HTTP/2 connection each, as Envoy's worker threads hold theirs) are answered by both workers
 * from the LPS's lists; a worker killed with SIGKILL is replaced and the port keeps answering;
 * SIGTERM stops the primary and every worker.
 */

const ENDPOINTS = ['w-1', 'w-2', 'w-3'];

const servers: ServeProcess[] = [];
const cleanups: Array<() => void> = [];
afterEach(async () => {
  for (const f of cleanups.splice(0)) f();
  await Promise.all(servers.splice(0).map((s) => s.stop('SIGKILL')));
});

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Decisions per worker, from the primary's /metrics (every worker's series carries `worker`). */
async function decisionsByWorker(httpUrl: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const byWorker = new Map<string, number>();
  for (const m of text.matchAll(/^augur_rrm_decisions_total\{([^}]*)\} (\S+)$/gm)) {
    const worker = /worker="(\d+)"/.exec(m[1]!)?.[1] ?? 'primary';
    byWorker.set(worker, (byWorker.get(worker) ?? 0) + Number(m[2]));
  }
  return byWorker;
}

/** One request on a new connection; the endpoints the answer names. */
async function ask(address: string): Promise<string[]> {
  const client = new ExtProcClient(address);
  try {
    const stream = await client.start(
      {
        headers: [
          [':method', 'GET'],
          [':path', '/'],
          [':authority', 'svc'],
        ],
        endOfStream: true,
        clusterName: 'svc',
      },
      // Generous: on a loaded CI machine a worker just started may take seconds to answer.
      20_000,
    );
    stream.end();
    return overrideHosts(stream.answer);
  } finally {
    client.close();
  }
}

describe('the ext_proc fast path on worker processes', () => {
  it('answers from every worker, replaces a killed one, and stops with the primary', async () => {
    const serve = await ServeProcess.start(
      ['--ext-proc-listen', '127.0.0.1:0', '--ext-proc-workers', '2'],
      {
        AUGUR_FORECAST__LSTM__ENABLED: 'false',
        AUGUR_DASHBOARD__ENABLED: 'false',
        AUGUR_XDS__ENABLED: 'false',
        AUGUR_RRM__DEFAULT_SERVICE: 'svc',
        AUGUR_LOG_LEVEL: 'info',
      },
      { ready: (l) => typeof l.extProc === 'string' },
    );
    servers.push(serve);
    const { grpcAddress, httpUrl } = serve;
    const extProc = serve.lines.find((l) => typeof l.extProc === 'string')!.extProc as string;
    const workerPids = (): Map<number, number> =>
      new Map(
        serve.lines
          .filter((l) => typeof l.worker === 'number' && /listening on/.test(l.msg ?? ''))
          .map((l) => [l.worker as number, l.pid as number]),
      );
    expect([...workerPids().keys()].sort()).toEqual([1, 2]);
    expect(workerPids().get(1)).not.toBe(workerPids().get(2));
    expect(serve.lines.find((l) => /served by 2 worker processes/.test(l.msg ?? ''))).toBeDefined();

    // Three endpoints, kept fresh by their agents.
    const agents = ENDPOINTS.map((id, i) => {
      const a = new RawAgentStream(grpcAddress);
      a.hello({ endpointId: id, service: 'svc', port: 9001 + i });
      return a;
    });
    let sequence = 0;
    const feed = (): void => {
      sequence++;
      for (const [i, a] of agents.entries())
        a.sample({ endpointId: ENDPOINTS[i]!, sequence, cpuUsage: 0.2 + 0.2 * i });
    };
    feed();
    const feeder = setInterval(feed, 300);
    cleanups.push(() => {
      clearInterval(feeder);
      for (const a of agents) a.close();
    });
    const listed = new Set(ENDPOINTS.map((_, i) => `127.0.0.1:${9001 + i}`));

    // New connections go to both workers; each answers from the LPS's list.
    await waitFor(
      async () => {
        const hosts = await ask(extProc);
        // Empty until the worker has the list (it has no endpoint to name before).
        for (const h of hosts) expect(listed.has(h), `${h} is not a listed endpoint`).toBe(true);
        if (hosts.length === 0) return false;
        const byWorker = await decisionsByWorker(httpUrl);
        return (byWorker.get('1') ?? 0) > 0 && (byWorker.get('2') ?? 0) > 0;
      },
      60_000,
      'answers from both workers',
    );

    // A worker killed outright is replaced; the shared port keeps answering meanwhile.
    const victim = workerPids().get(1)!;
    process.kill(victim, 'SIGKILL');
    await waitFor(
      () => workerPids().get(1) !== victim && !alive(victim),
      30_000,
      'worker 1 to be replaced',
    );
    const metrics = await (await fetch(`${httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/^augur_rrm_ext_proc_worker_restarts_total 1$/m);
    // The new worker answers from the list once its Watch stream has delivered it; node:cluster
    // hands new connections to the workers in turn, so two answers in a row cover both.
    await waitFor(
      async () => (await ask(extProc)).length > 0 && (await ask(extProc)).length > 0,
      30_000,
      'both workers to answer from the list after the replacement',
    );
    for (let i = 0; i < 6; i++) {
      const hosts = await ask(extProc);
      expect(hosts.length).toBeGreaterThan(0);
      for (const h of hosts) expect(listed.has(h)).toBe(true);
    }

    // SIGTERM: the primary stops its workers and exits 0.
    const pids = [...workerPids().values()];
    serve.child.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
    await waitFor(() => pids.every((p) => !alive(p)), 10_000, 'every worker to be gone');
  });
});
