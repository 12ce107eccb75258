/**
 * npm run bench:dashboard — what the live dashboard costs as endpoints grow:
 * on the server, building a snapshot and a delta and the bytes streamed per
 * second; in Chromium, the time until every endpoint is on the page, long
 * tasks while updates stream, the answer to a filter keystroke and a scroll,
 * and the JS heap. `augur serve` runs in this process, fed over the raw
 * Telemetry API at a 1 s interval; the page runs in Debian's Chromium.
 *
 *   npm run bench:dashboard -- --sizes=100,500,1000 --steady=10
 */
import { performance } from 'node:perf_hooks';
import { DashboardFeed } from '../src/dashboard/frames.js';
import { startTestPlane, waitFor } from '../test/support/control-plane.js';
import { launchChromium } from '../test/dashboard/chromium.js';
import { Fleet } from '../test/dashboard/fleet.js';
import { markdownTable, quantile, writeBenchmarkSection } from './report.js';

const args = new Map(
  process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]),
);
const SIZES = (args.get('sizes') ?? '100,500,1000').split(',').map(Number);
const STEADY_SECONDS = Number(args.get('steady') ?? 10);

interface PageStats {
  bytes: number;
  deltas: number;
  longTasks: number;
  longestTaskMs: number;
  applyMs: number;
  renderMs: number;
  maxRenderMs: number;
}

interface Result {
  n: number;
  snapshotMs: number;
  snapshotKb: number;
  deltaMsP50: number;
  deltaMsMax: number;
  kbPerSecond: number;
  firstRenderMs: number;
  longTasks: number;
  longestTaskMs: number;
  busyPercent: number;
  maxRenderMs: number;
  filterMs: number;
  scrollMs: number;
  heapMb: number;
}

async function measure(n: number): Promise<Result> {
  const plane = await startTestPlane();
  const fleet = new Fleet({
    grpcAddress: plane.grpcAddress,
    endpoints: n,
    services: Math.max(1, Math.round(n / 50)),
    intervalSeconds: 1,
  });
  const browser = await launchChromium();
  try {
    fleet.start();
    await waitFor(() => plane.lps.store.size === n, 30_000, `${n} endpoints`);
    await new Promise((r) => setTimeout(r, 3000));

    // Server side: a feed of our own on the same LPS, timed call by call.
    const feed = new DashboardFeed({
      lists: plane.lps.lists,
      store: plane.lps.store,
      swaps: plane.swaps,
      forecasts: () => plane.lps.forecasts(),
      plotSamples: 150,
    });
    let t = performance.now();
    const snapshot = JSON.stringify(feed.snapshot());
    const snapshotMs = performance.now() - t;
    feed.delta();

    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const opened = performance.now();
    await page.goto(`${plane.httpUrl}/dashboard`);
    await page.waitForFunction(
      (k) => document.querySelectorAll('.card[data-endpoint]').length === k,
      n,
      { timeout: 60_000, polling: 50 },
    );
    const firstRenderMs = performance.now() - opened;
    await new Promise((r) => setTimeout(r, 1000));

    const pageStats = () =>
      page.evaluate(
        () => (window as unknown as { augurDashboard: { stats: PageStats } }).augurDashboard.stats,
      );
    const before = await pageStats();
    const deltaMs: number[] = [];
    const steadyStart = performance.now();
    while (performance.now() - steadyStart < STEADY_SECONDS * 1000) {
      await new Promise((r) => setTimeout(r, 500));
      t = performance.now();
      JSON.stringify(feed.delta() ?? {});
      deltaMs.push(performance.now() - t);
    }
    const after = await pageStats();
    const steadySeconds = (performance.now() - steadyStart) / 1000;
    feed.close();

    const filterMs = await page.evaluate(
      async (last) => {
        const input = document.querySelector('#filter') as HTMLInputElement;
        const t0 = performance.now();
        input.value = last;
        input.dispatchEvent(new Event('input'));
        await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
        return performance.now() - t0;
      },
      fleet.ids[n - 1]!,
    );
    await page.fill('#filter', '');
    const scrollMs = await page.evaluate(
      async (last) => {
        const card = document.querySelector(`.card[data-endpoint="${last}"]`)!;
        const t0 = performance.now();
        card.scrollIntoView();
        while (!card.querySelector('canvas')) {
          if (performance.now() - t0 > 20_000) return NaN;
          await new Promise((r) => requestAnimationFrame(r));
        }
        return performance.now() - t0;
      },
      fleet.ids[n - 1]!,
    );
    const heapMb = await page.evaluate(
      () =>
        ((performance as unknown as { memory?: { usedJSHeapSize: number } }).memory
          ?.usedJSHeapSize ?? NaN) /
        2 ** 20,
    );
    return {
      n,
      snapshotMs,
      snapshotKb: snapshot.length / 1024,
      deltaMsP50: quantile(deltaMs, 0.5),
      deltaMsMax: Math.max(...deltaMs),
      kbPerSecond: (after.bytes - before.bytes) / 1024 / steadySeconds,
      firstRenderMs,
      longTasks: after.longTasks - before.longTasks,
      longestTaskMs: after.longestTaskMs,
      busyPercent:
        (after.applyMs - before.applyMs + after.renderMs - before.renderMs) / 10 / steadySeconds,
      maxRenderMs: after.maxRenderMs,
      filterMs,
      scrollMs,
      heapMb,
    };
  } finally {
    await browser.close();
    fleet.stop();
    await plane.dispose();
  }
}

const results: Result[] = [];
for (const n of SIZES) {
  const r = await measure(n);
  console.log(r);
  results.push(r);
}
const base = results[0]!;
const body = [
  `\`augur serve\` in the benchmark's process, fed over the raw Telemetry API (one stream per endpoint, a sample a second, 50 endpoints per service); the page in Debian's Chromium (headless, 1280×900). Server figures time \`DashboardFeed\` directly; the stream is coalesced to one delta per 500 ms. Long tasks (> 50 ms on the page's main thread) are counted over ${STEADY_SECONDS} s of steady updates after the first render; "longest" includes the first render. Filter: a keystroke that hides all cards but one, until the next frame; scroll: from jumping to the last card until its plot is drawn.`,
  '',
  markdownTable(
    [
      'endpoints',
      'snapshot build',
      'snapshot size',
      'delta build p50 / max',
      'stream',
      'first render (goto → all cards)',
      'long tasks while streaming',
      'longest task',
      'page busy applying + drawing',
      'longest draw',
      'filter keystroke',
      'scroll to last plot',
      'JS heap',
    ],
    results.map((r) => [
      r.n,
      `${r.snapshotMs.toFixed(1)} ms`,
      `${r.snapshotKb.toFixed(0)} KB`,
      `${r.deltaMsP50.toFixed(2)} / ${r.deltaMsMax.toFixed(2)} ms`,
      `${r.kbPerSecond.toFixed(1)} KB/s`,
      `${r.firstRenderMs.toFixed(0)} ms`,
      r.longTasks,
      `${r.longestTaskMs.toFixed(0)} ms`,
      `${r.busyPercent.toFixed(1)} %`,
      `${r.maxRenderMs.toFixed(0)} ms`,
      `${r.filterMs.toFixed(0)} ms`,
      `${r.scrollMs.toFixed(0)} ms`,
      `${r.heapMb.toFixed(1)} MB`,
    ]),
  ),
  '',
  `Per endpoint, relative to ${base.n} endpoints: ` +
    results
      .slice(1)
      .map(
        (r) =>
          `at ${r.n}, stream ${(r.kbPerSecond / r.n / (base.kbPerSecond / base.n)).toFixed(2)}×, ` +
          `delta build ${(r.deltaMsP50 / r.n / (base.deltaMsP50 / base.n)).toFixed(2)}×, ` +
          `first render ${(r.firstRenderMs / r.n / (base.firstRenderMs / base.n)).toFixed(2)}×`,
      )
      .join('; ') +
    ' (1× = linear in the endpoints).',
].join('\n');
writeBenchmarkSection('Dashboard', 'npm run bench:dashboard', body);
