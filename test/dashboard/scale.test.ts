import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';
import { launchChromium } from './chromium.js';
import { Fleet } from './fleet.js';

/** What app.js exposes as `window.augurDashboard`. */
interface PageDashboard {
  stats: {
    snapshots: number;
    deltas: number;
    bytes: number;
    longTasks: number;
    longestTaskMs: number;
  };
  livePlots: () => number;
}

const N = 500;
const SERVICES = 10;
let plane: TestPlane;
let fleet: Fleet;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  plane = await startTestPlane();
  fleet = new Fleet({
    grpcAddress: plane.grpcAddress,
    endpoints: N,
    services: SERVICES,
    intervalSeconds: 1,
  });
  fleet.start();
  await waitFor(() => plane.lps.store.size === N, 15_000, `${N} endpoints in the store`);
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
});

afterAll(async () => {
  await browser?.close();
  fleet?.stop();
  await plane?.dispose();
});

describe('dashboard with 500 endpoints', () => {
  it('renders every endpoint, plots only what is on screen, and answers input', async () => {
    await page.goto(`${plane.httpUrl}/dashboard`);
    await page.waitForFunction(
      (n) => document.querySelectorAll('.card[data-endpoint]').length === n,
      N,
      { timeout: 20_000 },
    );
    expect(await page.locator('main section[data-service]').count()).toBe(SERVICES);
    const ids = await page.$$eval('.card[data-endpoint]', (cards) =>
      cards.map((c) => (c as HTMLElement).dataset.endpoint!),
    );
    expect(new Set(ids)).toEqual(new Set(fleet.ids));

    // Lazy plots: some on screen, far fewer than 500.
    await page.waitForFunction(() => document.querySelectorAll('.card canvas').length > 0, null, {
      timeout: 10_000,
    });
    const plotsOnScreen = await page.locator('.card canvas').count();
    expect(plotsOnScreen).toBeLessThan(N / 4);

    // Input is handled promptly while updates stream in (generous bound, measured in the page).
    const filterMs = await page.evaluate(async () => {
      const input = document.querySelector('#filter') as HTMLInputElement;
      const t = performance.now();
      input.value = 'ep-0499';
      input.dispatchEvent(new Event('input'));
      await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
      return performance.now() - t;
    });
    expect(await page.locator('.card[data-endpoint]:not([hidden])').count()).toBe(1);
    expect(filterMs).toBeLessThan(3000);

    // Clearing the filter and scrolling to the end draws the last endpoint's plot.
    await page.fill('#filter', '');
    const scrollMs = await page.evaluate(async () => {
      const last = document.querySelector('.card[data-endpoint="ep-0499"]')!;
      const t = performance.now();
      last.scrollIntoView();
      while (!last.querySelector('canvas')) {
        if (performance.now() - t > 10_000) return Infinity;
        await new Promise((r) => requestAnimationFrame(r));
      }
      return performance.now() - t;
    });
    expect(scrollMs).toBeLessThan(5000);
    const stats = await page.evaluate(() => {
      const d = (window as unknown as { augurDashboard: PageDashboard }).augurDashboard;
      return { ...d.stats, livePlots: d.livePlots() };
    });
    // Plots that left the screen were released.
    expect(stats.livePlots).toBeLessThan(N / 4);
    expect(stats.snapshots).toBe(1);
    // Updates keep arriving as deltas without a reload.
    const deltasBefore = stats.deltas;
    await page.waitForFunction(
      (n) =>
        (window as unknown as { augurDashboard: { stats: { deltas: number } } }).augurDashboard
          .stats.deltas >
        n + 2,
      deltasBefore,
      { timeout: 10_000 },
    );
    console.log(
      `500 endpoints: filter ${filterMs.toFixed(0)} ms, scroll-to-plot ${scrollMs.toFixed(0)} ms, ` +
        `plots on screen ${plotsOnScreen}, long tasks ${stats.longTasks} (longest ${stats.longestTaskMs} ms)`,
    );
  }, 90_000);
});
