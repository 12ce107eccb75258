import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { EndpointState } from '../../src/lps/types.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';

/** Log lines as parsed JSON, newest last. */
class LogLines extends Writable {
  readonly lines: Array<Record<string, unknown> & { msg: string }> = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const line of chunk.toString().split('\n'))
      if (line.trim()) this.lines.push(JSON.parse(line) as { msg: string });
    done();
  }
  find(pattern: RegExp): (Record<string, unknown> & { msg: string }) | undefined {
    return this.lines.find((l) => pattern.test(l.msg));
  }
}

const lpsLog = new LogLines();
const agentLog = new LogLines();
let plane: TestPlane;
let health: Server;
let healthStatus = 200;
const children: ChildProcess[] = [];
const agents: Agent[] = [];

beforeAll(async () => {
  plane = await startTestPlane(
    { logLevel: 'info', lps: { scoreInterval: 0.1, defaultInterval: 0.2, staleAfterIntervals: 3 } },
    undefined,
    pino({ level: 'info' }, lpsLog),
  );
  health = createServer((_req, res) => {
    res.writeHead(healthStatus);
    res.end();
  });
  await new Promise<void>((r) => health.listen(0, '127.0.0.1', r));
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const a of agents) await a.stop();
  await plane?.dispose();
  await new Promise((r) => health?.close(r));
});

const stateOf = (id: string) => {
  const r = plane.lps.store.get(id);
  return r ? plane.lps.store.stateOf(r, Date.now()) : undefined;
};

describe('logs that say what happened to an endpoint', () => {
  it('a failing health probe: the agent says why, the LPS says the endpoint fails and gets no traffic', async () => {
    const port = (health.address() as { port: number }).port;
    const agent = await Agent.start({
      lps: plane.grpcAddress,
      endpointId: 'probe-1',
      service: 'logs',
      address: `127.0.0.1:${port}`,
      probe: { kind: 'http', url: `http://127.0.0.1:${port}/healthz` },
      intervalSeconds: 0.2,
      logger: pino({ level: 'info' }, agentLog),
    });
    agents.push(agent);
    await waitFor(() => agentLog.find(/^connected to the LPS/), 20_000, 'the agent to connect');
    await waitFor(
      () => lpsLog.find(/^endpoint probe-1 of service logs is active/),
      20_000,
      'the LPS to log the endpoint active',
    );
    expect(lpsLog.find(/^agent of probe-1 connected/)).toBeDefined();

    healthStatus = 404;
    const agentLine = await waitFor(
      () => agentLog.find(/^health probe failing/),
      20_000,
      'the agent to log the failing probe',
    );
    expect(agentLine.msg).toBe(
      'health probe failing: HTTP status 404; the LPS gives this endpoint no traffic while it fails',
    );
    const lpsLine = await waitFor(
      () => lpsLog.find(/^endpoint probe-1 is failing/),
      20_000,
      'the LPS to log the endpoint failing',
    );
    expect(lpsLine).toMatchObject({ endpoint: 'probe-1', state: 'failing', previous: 'active' });
    // Once per change, not once per tick.
    await waitFor(() => (agent.stats().ticks ?? 0) > 5, 20_000, 'more ticks');
    expect(agentLog.lines.filter((l) => /^health probe failing/.test(l.msg))).toHaveLength(1);

    healthStatus = 200;
    await waitFor(() => agentLog.find(/^health probe passing again/), 20_000, 'recovery');
    await waitFor(
      () => lpsLog.find(/^endpoint probe-1 is active again \(was failing\)/),
      20_000,
      'active again',
    );
  });

  it('a killed agent leaves its endpoint stale (not draining), and the LPS says so', async () => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'agent',
        '--lps',
        plane.grpcAddress,
        '--endpoint-id',
        'killed-1',
        '--service',
        'logs',
        '--address',
        '127.0.0.1:9',
        '--interval',
        '0.2',
      ],
      { stdio: 'ignore' },
    );
    children.push(child);
    await waitFor(
      () => (plane.lps.store.get('killed-1')?.samplesStored ?? 0) > 0,
      30_000,
      'the agent to report',
    );
    child.kill('SIGKILL');
    await waitFor(
      () => lpsLog.find(/^agent of killed-1 disconnected without a goodbye/),
      20_000,
      'the LPS to see the stream lost',
    );
    const stale = await waitFor(
      () => lpsLog.find(/^endpoint killed-1 is stale: no sample for/),
      20_000,
      'the LPS to log the endpoint stale',
    );
    expect(stale.msg).toMatch(/its agent is not connected\): it gets no traffic$/);
    expect(stateOf('killed-1')).toBe(EndpointState.ENDPOINT_STATE_STALE);
    expect(lpsLog.find(/^endpoint killed-1 is draining/)).toBeUndefined();
  });

  it('a stopped agent says goodbye: draining', async () => {
    const agent = await Agent.start({
      lps: plane.grpcAddress,
      endpointId: 'leaving-1',
      service: 'logs',
      address: '127.0.0.1:9',
      probe: { kind: 'none' },
      intervalSeconds: 0.2,
    });
    await waitFor(
      () => lpsLog.find(/^endpoint leaving-1 of service logs is active/),
      20_000,
      'active',
    );
    await agent.stop();
    await waitFor(
      () => lpsLog.find(/^endpoint leaving-1 is draining: its agent said goodbye/),
      20_000,
      'draining',
    );
    expect(lpsLog.find(/^agent of leaving-1 disconnected: goodbye/)).toBeDefined();
  });
});
