import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CgroupCpu,
  findProcessByName,
  parseCgroupUsage,
  parseProcessTicks,
  ProcessTreeCpu,
} from '../../src/agent/own-cpu.js';
import { parseSelector, PrometheusRequests, sumSeries } from '../../src/agent/request-metrics.js';
import { EndpointSignalsSampler } from '../../src/agent/signals.js';
import { silentLogger } from '../../src/common/logger.js';
import { AugurError } from '../../src/common/errors.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A /proc/<pid>/stat line with utime and stime (fields 14, 15) and a parent pid. */
const statLine = (pid: number, name: string, ppid: number, utime: number, stime: number) =>
  `${pid} (${name}) S ${ppid} ${pid} ${pid} 0 -1 4194304 100 0 0 0 ${utime} ${stime} 0 0 20 0 1 0 100 0 0\n`;

async function fixtureProc(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'augur-proc-'));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  return root;
}

async function proc(
  root: string,
  pid: number,
  name: string,
  ppid: number,
  ticks: [number, number],
  children: number[] = [],
) {
  await mkdir(join(root, String(pid), 'task', String(pid)), { recursive: true });
  await writeFile(join(root, String(pid), 'stat'), statLine(pid, name, ppid, ...ticks));
  await writeFile(
    join(root, String(pid), 'task', String(pid), 'children'),
    children.map((c) => `${c} `).join(''),
  );
}

describe("the endpoint's own CPU", () => {
  it('reads utime + stime after the last ")" (command names may hold spaces and parentheses)', () => {
    expect(parseProcessTicks(statLine(7, 'my (odd) name', 1, 150, 50))).toBe(200);
    expect(() => parseProcessTicks('garbage')).toThrow(/stat/);
    expect(parseCgroupUsage('usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n')).toBe(1234);
    expect(() => parseCgroupUsage('nr_periods 0\n')).toThrow(/usage_usec/);
    expect(parseCgroupUsage('nr_periods 0\nusage_usec 77\n')).toBe(77);
    expect(() => parseCgroupUsage('usage_usec x\n')).toThrow(/usage_usec/);
    // A truncated line (the process went away mid-read) is an error, not a zero.
    expect(() => parseProcessTicks('7 (a) S 1 7 7 0 -1 4194304 100 0 0 0')).toThrow(/utime/);
  });

  it("reads this process's own /proc/self/stat as the kernel counts it", () => {
    const until = performance.now() + 100;
    while (performance.now() < until) Math.sqrt(Math.random());
    const ticks = parseProcessTicks(readFileSync('/proc/self/stat', 'latin1'));
    const { user, system } = process.cpuUsage();
    // Clock ticks of 10 ms against microseconds: the same CPU time, give or take a few ticks.
    expect(Math.abs(ticks * 10_000 - (user + system))).toBeLessThan(50_000);
  });

  it('a process tree: the sum of its members, each by its own delta, as a fraction of all cores', async () => {
    const root = await fixtureProc();
    await proc(root, 100, 'server', 1, [1000, 0], [101]);
    await proc(root, 101, 'worker', 100, [500, 0]);
    let now = 0;
    const tree = await ProcessTreeCpu.start({
      pid: 100,
      cores: 4,
      procRoot: root,
      now: () => now,
      rescanSeconds: 0,
    });
    cleanups.push(() => tree.close());
    // 2 s later: +100 ticks on the server, +300 on the worker = 4 CPU-seconds of 8
    now += 2000;
    await proc(root, 100, 'server', 1, [1100, 0], [101]);
    await proc(root, 101, 'worker', 100, [700, 100]);
    expect(await tree.sample()).toBeCloseTo(0.5, 12);
    // the worker exits and a new one starts with CPU from before: counted from now on only
    now += 1000;
    await unlink(join(root, '101', 'stat'));
    await proc(root, 100, 'server', 1, [1140, 0], [102]);
    await proc(root, 102, 'worker', 100, [9999, 0]);
    expect(await tree.sample()).toBeCloseTo(0.4 / 4, 12);
    now += 1000;
    await proc(root, 102, 'worker', 100, [10039, 0]);
    expect(await tree.sample()).toBeCloseTo(0.4 / 4, 12);
  });

  it('a process that does not exist is an error that names it; one that goes away too', async () => {
    const root = await fixtureProc();
    const missing = await ProcessTreeCpu.start({ pid: 4242, cores: 2, procRoot: root }).catch(
      (e: unknown) => e,
    );
    expect(missing).toBeInstanceOf(AugurError);
    expect((missing as Error).message).toMatch(/process 4242/);
    await proc(root, 300, 'api', 1, [10, 0]);
    const tree = await ProcessTreeCpu.start({
      pid: 300,
      cores: 2,
      procRoot: root,
      rescanSeconds: 0,
    });
    cleanups.push(() => tree.close());
    await rm(join(root, '300'), { recursive: true });
    await expect(tree.sample()).rejects.toThrow(/tree of 300 is gone/);
  });

  it('--process-name finds the root of the tree by name, and finds it again after a restart', async () => {
    const root = await fixtureProc();
    await proc(root, 10, 'api', 1, [100, 0], [11]);
    await proc(root, 11, 'api', 10, [100, 0]); // a forked worker with the same name
    await proc(root, 20, 'db', 1, [100, 0]);
    expect(await findProcessByName('api', root)).toBe(10);
    await expect(findProcessByName('nope', root)).rejects.toThrow(/no process named "nope"/);
    await proc(root, 30, 'api', 1, [0, 0]);
    await expect(findProcessByName('api', root)).rejects.toThrow(/2 process trees named "api"/);
    await rm(join(root, '30'), { recursive: true });

    let now = 0;
    const tree = await ProcessTreeCpu.start({
      pid: 10,
      cores: 1,
      procRoot: root,
      now: () => now,
      rescanSeconds: 0,
      find: () => findProcessByName('api', root),
    });
    cleanups.push(() => tree.close());
    await rm(join(root, '10'), { recursive: true });
    await rm(join(root, '11'), { recursive: true });
    now += 1000;
    await expect(tree.sample()).rejects.toThrow(/gone/); // unknown for this tick
    await proc(root, 40, 'api', 1, [500, 0]);
    now += 1000;
    await expect(tree.sample()).resolves.toBe(0); // found again; a baseline first
    now += 1000;
    await proc(root, 40, 'api', 1, [550, 0]);
    expect(await tree.sample()).toBeCloseTo(0.5, 12);
    expect(tree.pid).toBe(40);
  });

  it("a cgroup v2's usage_usec", async () => {
    const dir = await fixtureProc();
    await writeFile(join(dir, 'cpu.stat'), 'usage_usec 1000000\n');
    let now = 0;
    const cg = await CgroupCpu.start({ path: dir, cores: 2, now: () => now });
    cleanups.push(() => cg.close());
    now += 1000;
    await writeFile(join(dir, 'cpu.stat'), 'usage_usec 2500000\n');
    expect(await cg.sample()).toBeCloseTo(0.75, 12);
    await expect(CgroupCpu.start({ path: join(dir, 'nope'), cores: 2 })).rejects.toThrow(
      /--cgroup/,
    );
  });

  it('this machine: a busy child process shows in its own CPU, bounded by the host', async () => {
    const child = spawn(process.execPath, [
      '-e',
      'const end = Date.now() + 20000; while (Date.now() < end);',
    ]);
    cleanups.push(async () => {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('close', r));
    });
    const tree = await ProcessTreeCpu.start({ pid: child.pid!, cores: cpus().length });
    cleanups.push(() => tree.close());
    // Wait (with a deadline) until it has burnt some CPU: on a loaded machine it may get little.
    const deadline = Date.now() + 10_000;
    let used = 0;
    while (used === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      used = await tree.sample();
    }
    expect(used).toBeGreaterThan(0);
    expect(used).toBeLessThanOrEqual(1 / cpus().length + 0.05); // one thread: at most one core
  });
});

describe('completed requests from Prometheus metrics', () => {
  async function metricsServer(body: () => string): Promise<string> {
    const s: Server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(body());
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
    return `http://127.0.0.1:${(s.address() as AddressInfo).port}/metrics`;
  }

  it('selectors: a name with label matchers; bad ones are refused with the flag named', () => {
    expect(parseSelector('http_requests_total{code=~"2..",job!="x"}', '--requests-metric')).toEqual(
      {
        name: 'http_requests_total',
        labels: [
          { label: 'code', op: '=~', value: '2..' },
          { label: 'job', op: '!=', value: 'x' },
        ],
      },
    );
    expect(() => parseSelector('9bad', '--requests-metric')).toThrow(/--requests-metric "9bad"/);
    expect(() => parseSelector('a{b=c}', '--latency-metric')).toThrow(/label matchers/);
  });

  it('sums the matching series, and only the exact name', () => {
    const text = [
      '# HELP http_requests_total Requests.',
      'http_requests_total{code="200",path="/a"} 10',
      'http_requests_total{code="500",path="/a"} 3',
      'http_requests_total{code="200",path="/b"} 5 1700000000000',
      'http_requests_total_created{code="200"} 1.7e9',
      'other 99',
    ].join('\n');
    expect(sumSeries(text, parseSelector('http_requests_total', 'x'))).toBe(18);
    expect(sumSeries(text, parseSelector('http_requests_total{code="200"}', 'x'))).toBe(15);
    expect(sumSeries(text, parseSelector('http_requests_total{code=~"5.."}', 'x'))).toBe(3);
    expect(sumSeries(text, parseSelector('http_requests_total{code!~"5.."}', 'x'))).toBe(15);
    expect(sumSeries(text, parseSelector('http_requests_total{path!="/a"}', 'x'))).toBe(5);
    expect(sumSeries(text, parseSelector('missing', 'x'))).toBeUndefined();
  });

  it('takes only lines that start with the name: first and last line, CRLF, escaped label values', () => {
    const text = [
      'rq_total{path="/a"} 1',
      '# TYPE rq_total counter',
      'other{of="rq_total",x="1"} 100',
      'other_rq_total 1000',
      'rq_total_created 1.7e9',
      'rq_total{path="/b \\\"q\\\""} 2\r',
      'rq_total 4',
    ].join('\n');
    expect(sumSeries(text, parseSelector('rq_total', 'x'))).toBe(7);
    expect(sumSeries(text, parseSelector('rq_total{path="/b \\"q\\""}', 'x'))).toBe(2);
    expect(sumSeries(text, parseSelector('rq_total{path=""}', 'x'))).toBe(4);
    expect(sumSeries(text, parseSelector('other', 'x'))).toBe(100);
    expect(sumSeries('', parseSelector('rq_total', 'x'))).toBeUndefined();
  });

  it('counts the increase since the last scrape (a reset counts from zero), latency from a histogram', async () => {
    let count = 100;
    let sum = 5;
    const url = await metricsServer(
      () =>
        `rq_seconds_bucket{le="0.1"} ${count}\nrq_seconds_count ${count}\nrq_seconds_sum ${sum}\n`,
    );
    const source = new PrometheusRequests({ url, latency: 'rq_seconds' });
    expect(await source.sample()).toBeUndefined(); // nothing to count from yet
    count = 130;
    sum = 6.5;
    expect(await source.sample()).toEqual({ completed: 30, latencySum: 1.5 });
    expect(await source.sample()).toEqual({ completed: 0, latencySum: 0 }); // a real zero
    count = 7; // the process restarted
    sum = 0.2;
    expect(await source.sample()).toEqual({ completed: 7, latencySum: 0.2 });
    const missing = new PrometheusRequests({ url, requests: 'http_requests_total' });
    await expect(missing.sample()).rejects.toThrow(/no series http_requests_total/);
    expect(() => new PrometheusRequests({ url })).toThrow(/--requests-metric/);
    expect(() => new PrometheusRequests({ url: 'ftp://x', requests: 'a' })).toThrow(/http/);
  });
});

describe('the agent samples the host and the endpoint side by side', () => {
  const host = {
    sample: async () => ({ cpuUsage: 0.6, memoryUsage: 0.3, networkIo: 10, processCpuUsage: 0.1 }),
  };

  it("a dedicated source overrides the load report's own CPU; own never exceeds host", async () => {
    const s = new EndpointSignalsSampler(
      host,
      { kind: 'process', sample: async () => 0.7, close: async () => undefined },
      { sample: async () => ({ completed: 12, latencySum: 0.6 }) },
      silentLogger,
    );
    expect(await s.sample()).toEqual({
      cpuUsage: 0.6,
      memoryUsage: 0.3,
      networkIo: 10,
      processCpuUsage: 0.6,
      requestsCompleted: 12,
      latencySumSeconds: 0.6,
    });
  });

  it('a failing source leaves its signal out (unknown, not 0), and the sample still goes', async () => {
    const s = new EndpointSignalsSampler(
      host,
      {
        kind: 'process',
        sample: async () => {
          throw new AugurError('PROCESS_GONE', 'gone');
        },
        close: async () => undefined,
      },
      { sample: async () => undefined },
      silentLogger,
    );
    const load = await s.sample();
    expect(load.processCpuUsage).toBeUndefined();
    expect(load.requestsCompleted).toBeUndefined();
    expect(load.cpuUsage).toBe(0.6);
  });
});
