import { afterEach, describe, expect, it } from 'vitest';
import { secondsToDuration } from '../../src/common/duration.js';
import { DashboardFeed, type DeltaFrame, type SnapshotFrame } from '../../src/dashboard/frames.js';
import { Metric, type GetForecastResponse } from '../../src/gen/augur/v1/load_prediction.js';
import type { ForecastProvider } from '../../src/lps/load-prediction-service.js';
import { SwapDetector } from '../../src/lps/swaps.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/serve/config.js';
import { dashboardConfigSchema } from '../../src/dashboard/config.js';
import { startControlPlane } from '../../src/serve/control-plane.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';
import { RawAgentStream } from '../support/raw-agent.js';
import { DrivenLists, addEndpoint, addSample, makeStore } from './support.js';

const T0 = 1_700_000_000_000;
const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Forecasts as a forecasting scorer gives them: CPU median and upper, with errors. */
class FixedForecasts implements ForecastProvider {
  readonly byId = new Map<string, GetForecastResponse>();
  set(id: string, atMs: number, median: number[], upper: number[]): void {
    this.byId.set(id, {
      endpointId: id,
      interval: secondsToDuration(1),
      computedAt: new Date(atMs),
      metrics: [
        {
          metric: Metric.METRIC_CPU,
          forecaster: 'holt',
          median,
          upper,
          errors: [
            { forecaster: 'holt', horizon: 1, mae: 0.01, mase: 0.5, count: 20 },
            { forecaster: 'holt', horizon: median.length, mae: 0.02, mase: 0.8123, count: 20 },
            { forecaster: 'last', horizon: median.length, mae: 0.03, mase: 1, count: 20 },
          ],
        },
      ],
    });
  }
  forecastFor(id: string): GetForecastResponse | undefined {
    return this.byId.get(id);
  }
}

function setup(withForecasts: boolean) {
  const lists = new DrivenLists();
  const store = makeStore(1);
  let now = T0;
  const swaps = new SwapDetector({ lists, store, now: () => now, checkEveryMs: 0 });
  const forecasts = new FixedForecasts();
  const feed = new DashboardFeed({
    lists,
    store,
    swaps,
    forecasts: () => (withForecasts ? forecasts : undefined),
    plotSamples: 4,
    now: () => now,
  });
  cleanups.push(() => {
    feed.close();
    swaps.stop();
  });
  return { lists, store, swaps, forecasts, feed, setNow: (ms: number) => (now = ms) };
}

describe('dashboard frames', () => {
  it('a snapshot has every endpoint with its row, recent samples, forecast and the swaps', () => {
    const t = setup(true);
    addEndpoint(t.store, 'a', T0);
    addEndpoint(t.store, 'b', T0);
    for (let i = 0; i < 6; i++) {
      addSample(t.store, 'a', T0 + i * 1000, 0.1 * i);
      addSample(t.store, 'b', T0 + i * 1000, 0.2);
    }
    t.forecasts.set('a', T0 + 5500, [0.6, 0.7, 0.8], [0.7, 0.85, 0.95]);
    t.lists.publish('svc', T0 + 5500, { a: 0.5, b: 0.5 });
    t.lists.publish('svc', T0 + 6000, { a: 0.2, b: 0.8 });
    t.setNow(T0 + 6000);

    const snap: SnapshotFrame = JSON.parse(JSON.stringify(t.feed.snapshot()));
    expect(snap.type).toBe('snapshot');
    expect(snap.now).toBe(T0 + 6000);
    expect(snap.plotSamples).toBe(4);
    expect(snap.services).toEqual([{ name: 'svc', version: 2, at: T0 + 6000 }]);
    expect(snap.endpoints.map((e) => e.id)).toEqual(['a', 'b']);
    const a = snap.endpoints[0]!;
    expect(a).toMatchObject({
      svc: 'svc',
      addr: '127.0.0.1:9000',
      state: 'active',
      score: 0.4,
      weight: 0.2,
      rank: 2,
      pu: 0.6,
      fc: 'holt',
      mase: 0.812,
      rt: 0.01,
      seen: T0 + 5000,
    });
    // The 4 newest samples, oldest first.
    expect(a.s).toEqual([
      [T0 + 2000, T0 + 3000, T0 + 4000, T0 + 5000],
      [0.2, 0.3, 0.4, 0.5],
    ]);
    // The forecast continues from the newest sample the scorer had at T0+5500.
    expect(a.f).toEqual({
      t0: T0 + 5000,
      dt: 1000,
      med: [0.6, 0.7, 0.8],
      up: [0.7, 0.85, 0.95],
      at: T0 + 5500,
    });
    // b has no forecast: the page draws its measured load only.
    expect(snap.endpoints[1]!.f).toBeNull();
    expect(snap.swaps).toHaveLength(1);
    expect(snap.swaps[0]).toMatchObject({ endpointId: 'a', outcome: 'pending' });
  });

  it('without a forecast provider rows still carry the scorer and no forecast', () => {
    const t = setup(false);
    addEndpoint(t.store, 'a', T0);
    addSample(t.store, 'a', T0, 0.3);
    t.lists.publish('svc', T0, { a: 1 });
    const e = t.feed.snapshot().endpoints[0]!;
    expect(e).toMatchObject({ fc: 'holt', mase: null, f: null });
  });

  it('deltas carry only what changed, and nothing when nothing did', () => {
    const t = setup(true);
    addEndpoint(t.store, 'a', T0);
    addEndpoint(t.store, 'b', T0);
    addSample(t.store, 'a', T0, 0.3);
    addSample(t.store, 'b', T0, 0.3);
    t.lists.publish('svc', T0, { a: 0.5, b: 0.5 });

    const first = t.feed.delta()!;
    expect(first.endpoints).toHaveLength(2);
    expect(first.services).toEqual([{ name: 'svc', version: 1, at: T0 }]);
    expect(t.feed.delta()).toBeUndefined();

    // One new sample of a: its samples and last-seen time, nothing else.
    addSample(t.store, 'a', T0 + 1000, 0.35);
    const d: DeltaFrame = JSON.parse(JSON.stringify(t.feed.delta()));
    expect(d.services).toBeUndefined();
    expect(d.endpoints).toEqual([{ id: 'a', seen: T0 + 1000, s: [[T0 + 1000], [0.35]] }]);

    // A new list: weights, scores, ranks and predictions of both, a swap of b.
    t.lists.publish('svc', T0 + 1000, { a: 0.8, b: 0.2 });
    const d2 = t.feed.delta()!;
    expect(d2.services).toEqual([{ name: 'svc', version: 2, at: T0 + 1000 }]);
    const b = d2.endpoints!.find((e) => e.id === 'b')!;
    expect(b).toEqual({
      id: 'b',
      score: 0.4,
      weight: 0.2,
      pu: 0.6,
      why:
        'rank #2 of 2 by Load Score (predicted CPU 60 %): the order of picks and fallbacks. ' +
        'Weight 20 %: its share of traffic, from the weight controller (capacity not estimated yet).',
    });
    expect(d2.swaps).toHaveLength(1);
    expect(d2.swaps![0]).toMatchObject({ endpointId: 'b', outcome: 'pending' });

    // The scorer runs: a forecast for a and the same list content again (a new
    // version). The forecast is sent once, when the list moves.
    t.forecasts.set('a', T0 + 1200, [0.4, 0.45], [0.5, 0.55]);
    expect(t.feed.delta()).toBeUndefined();
    t.lists.publish('svc', T0 + 1200, { a: 0.8, b: 0.2 });
    const d3 = t.feed.delta()!;
    expect(d3.services).toEqual([{ name: 'svc', version: 3, at: T0 + 1200 }]);
    expect(d3.endpoints).toEqual([
      {
        id: 'a',
        mase: 0.812,
        f: { t0: T0 + 1000, dt: 1000, med: [0.4, 0.45], up: [0.5, 0.55], at: T0 + 1200 },
      },
    ]);
    expect(t.feed.delta()).toBeUndefined();

    // The swap resolves: the delta carries it again with its outcome.
    t.swaps.check(T0 + 60_000);
    const d4 = t.feed.delta()!;
    expect(d4.swaps![0]).toMatchObject({ endpointId: 'b', outcome: 'false' });
  });

  it('a delta names endpoints that left, and caps the samples it carries', () => {
    const t = setup(false);
    addEndpoint(t.store, 'a', T0);
    addEndpoint(t.store, 'b', T0);
    t.feed.delta();
    for (let i = 1; i <= 10; i++) addSample(t.store, 'a', T0 + i * 100, i / 10);
    t.store.disconnect(t.store.get('b')!, false);
    t.store.forgetSilent(T0 + 4_000_000);
    const d = t.feed.delta()!;
    expect(d.removed).toEqual(['b']);
    expect(d.endpoints![0]!.s![1]).toEqual([0.7, 0.8, 0.9, 1]);
  });
});

/** Reads server-sent events from `url` until `until` says stop or `timeoutMs` passes. */
async function readEvents(
  url: string,
  until: (events: Array<{ event: string; data: unknown; at: number }>) => boolean,
  timeoutMs = 8000,
): Promise<Array<{ event: string; data: unknown; at: number }>> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  const res = await fetch(url, { signal: ctl.signal });
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const events: Array<{ event: string; data: unknown; at: number }> = [];
  const decoder = new TextDecoder();
  let buf = '';
  try {
    const reader = res.body!.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) events.push({ event, data: JSON.parse(data), at: Date.now() });
      }
      if (until(events)) break;
    }
  } catch (err) {
    if (!ctl.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
    ctl.abort();
  }
  return events;
}

describe('dashboard over HTTP', () => {
  let plane: TestPlane | undefined;
  afterEach(async () => {
    await plane?.dispose();
    plane = undefined;
  });

  it('serves the page, uPlot and a live event stream of coalesced deltas', async () => {
    plane = await startTestPlane({ lps: { scoreInterval: 0.1 } });
    const page = await fetch(`${plane.httpUrl}/dashboard`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('/dashboard/app.js');
    for (const path of [
      '/dashboard/app.js',
      '/dashboard/style.css',
      '/dashboard/vendor/uplot.js',
    ]) {
      const r = await fetch(plane.httpUrl + path);
      expect(r.status, path).toBe(200);
      expect((await r.text()).length, path).toBeGreaterThan(100);
    }
    expect((await fetch(`${plane.httpUrl}/dashboard/../../etc/passwd`)).status).toBe(404);

    const agents = ['x', 'y'].map((id, i) => {
      const s = new RawAgentStream(plane!.grpcAddress);
      s.hello({ endpointId: id, port: 9100 + i });
      return s;
    });
    cleanups.push(() => agents.forEach((a) => a.close()));
    let seq = 0;
    // Samples every 50 ms: far more often than the 500 ms (default) between frames.
    const feeder = setInterval(() => {
      seq++;
      for (const a of agents) a.sample({ sequence: seq, cpuUsage: 0.3 });
    }, 50);
    cleanups.push(() => clearInterval(feeder));
    await waitFor(() => plane!.lps.lists.get('svc')?.endpoints.length === 2, 5000, 'both listed');

    const events = await readEvents(
      `${plane.httpUrl}/dashboard/events`,
      (ev) => ev.filter((e) => e.event === 'delta').length >= 4,
    );
    expect(events[0]!.event).toBe('snapshot');
    const snap = events[0]!.data as SnapshotFrame;
    expect(snap.endpoints.map((e) => e.id)).toEqual(['x', 'y']);
    const deltas = events.filter((e) => e.event === 'delta');
    expect(deltas.length).toBeGreaterThanOrEqual(4);
    // Coalesced: each delta carries several samples per endpoint, not one frame per sample.
    const samplesPerDelta = deltas
      .slice(1)
      .map(
        (d) =>
          ((d.data as DeltaFrame).endpoints ?? []).find((e) => e.id === 'x')?.s?.[0].length ?? 0,
      );
    expect(Math.max(...samplesPerDelta)).toBeGreaterThan(2);
    const state = (await (
      await fetch(`${plane.httpUrl}/dashboard/state.json`)
    ).json()) as SnapshotFrame;
    expect(state.endpoints).toHaveLength(2);
  });
});

describe('dashboard config', () => {
  it('dashboard.enabled: false serves no page; the swap detector is still there for augur demo', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'augur-dash-'));
    const config = loadConfig({
      env: {},
      flags: { grpcListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', dataDir, logLevel: 'silent' },
    });
    // Set directly: the section may not be composed into the config schema yet.
    Object.assign(config, { dashboard: dashboardConfigSchema.parse({ enabled: false }) });
    const plane = await startControlPlane({ config });
    cleanups.push(async () => {
      await plane.stop();
      rmSync(dataDir, { recursive: true, force: true });
    });
    expect((await fetch(`${plane.httpUrl}/dashboard`)).status).toBe(404);
    expect((await fetch(`${plane.httpUrl}/dashboard/events`)).status).toBe(404);
    expect(plane.swaps.history()).toEqual([]);
    expect(plane.swaps.config.watchIntervals).toBe(10);
  });
});
