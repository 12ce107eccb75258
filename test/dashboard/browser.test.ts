import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { DemoBackend } from '../../src/demo/backend.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';
import { launchChromium } from './chromium.js';

const ARTIFACTS = join(import.meta.dirname, '../../test-artifacts');
const IDS = ['backend-0', 'backend-1', 'backend-2'];

let plane: TestPlane;
let browser: Browser;
let page: Page;
const backends: DemoBackend[] = [];
const agents: Agent[] = [];
/** When backend-2's background load starts ramping, seconds on its own clock. */
let rampAt: number | undefined;

beforeAll(async () => {
  plane = await startTestPlane({ lps: { scoreInterval: 0.2 } });
  for (const [i, id] of IDS.entries()) {
    // A background that wobbles (so scores move) until backend-2's ramps to 97 %.
    const backend = new DemoBackend({
      id,
      capacityRps: 200,
      background: (t) => {
        const base = 0.2 + 0.05 * Math.sin(t * 2 + i);
        if (i !== 2 || rampAt === undefined || t < rampAt) return base;
        return Math.min(0.97, base + (t - rampAt) * 0.35);
      },
    });
    await backend.start();
    backends.push(backend);
    agents.push(
      await Agent.start({
        lps: plane.grpcAddress,
        endpointId: id,
        service: 'demo',
        address: backend.address,
        intervalSeconds: 0.2,
        sampler: backend.sampler(),
        probe: { kind: 'http', url: `http://${backend.address}/healthz` },
        hostFacts: {
          cpuCores: 2,
          memoryBytes: 2 ** 31,
          networkBytesPerSecond: 2.5e8,
          linkSpeedSource: 'default',
        },
      }),
    );
  }
  await waitFor(
    () => plane.lps.lists.get('demo')?.endpoints.filter((e) => e.score > 0).length === 3,
    10_000,
    'three scored endpoints',
  );
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
});

afterAll(async () => {
  await browser?.close();
  for (const a of agents) await a.stop();
  for (const b of backends) await b.stop();
  await plane?.dispose();
});

/** Text of a field of each endpoint's card, and its plot's point count. */
function readCards(p: Page) {
  return p.$$eval('.card[data-endpoint]', (cards) =>
    cards.map((c) => ({
      id: (c as HTMLElement).dataset.endpoint!,
      score: c.querySelector('[data-field="score"]')!.textContent,
      weight: c.querySelector('[data-field="weight"]')!.textContent,
      state: (c as HTMLElement).dataset.state,
      points: Number((c.querySelector('.plot') as HTMLElement).dataset.points),
      canvas: c.querySelector('.plot canvas') !== null,
    })),
  );
}

describe('dashboard in Chromium', () => {
  it('shows every endpoint live, then a swap on the timeline when a backend ramps', async () => {
    await page.goto(`${plane.httpUrl}/dashboard`);
    await page.waitForSelector('#conn[data-conn="live"]', { timeout: 10_000 });
    await page.waitForFunction((n) => document.querySelectorAll('.card canvas').length === n, 3, {
      timeout: 10_000,
    });
    // A marker that a reload would wipe.
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));

    const before = await readCards(page);
    expect(before.map((c) => c.id).sort()).toEqual(IDS);
    expect(before.every((c) => c.state === 'active' && c.canvas)).toBe(true);
    expect(page.locator('section[data-service="demo"]')).toBeTruthy();

    // Plots grow and scores move, without a reload.
    await page.waitForFunction(
      (prev) => {
        const cards = [...document.querySelectorAll<HTMLElement>('.card[data-endpoint]')];
        return prev.every((p) => {
          const c = cards.find((x) => x.dataset.endpoint === p.id)!;
          return Number(c.querySelector<HTMLElement>('.plot')!.dataset.points) > p.points;
        });
      },
      before,
      { timeout: 10_000 },
    );
    await page.waitForFunction(
      (prev) =>
        prev.some(
          (p) =>
            document.querySelector(`.card[data-endpoint="${p.id}"] [data-field="score"]`)!
              .textContent !== p.score,
        ),
      before,
      { timeout: 10_000 },
    );

    // backend-2's neighbours start eating its CPU: augur cuts its share.
    rampAt = backends[2]!.elapsed();
    const row = await page.waitForSelector(
      '#swap-list li[data-endpoint="backend-2"]:not([data-outcome="pending"])',
      { timeout: 20_000 },
    );
    const outcome = await row.getAttribute('data-outcome');
    const text = await row.textContent();
    expect(outcome).toBe('overload');
    expect(text).toMatch(/overload followed after \d+\.\d s/);
    expect(await page.locator('#swap-strip i').count()).toBeGreaterThan(0);

    const after = await readCards(page);
    const cut = after.find((c) => c.id === 'backend-2')!;
    const others = after.filter((c) => c.id !== 'backend-2');
    expect(others.every((o) => parseFloat(o.weight!) > parseFloat(cut.weight!))).toBe(true);

    // Still the same page: no reload, one snapshot, then deltas only.
    const stats = await page.evaluate(() => ({
      marker: (window as unknown as { marker: number }).marker,
      ...(window as unknown as { augurDashboard: { stats: Record<string, number> } }).augurDashboard
        .stats,
    }));
    expect(stats.marker).toBe(42);
    expect(stats.snapshots).toBe(1);
    expect(stats.deltas).toBeGreaterThan(5);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
  }, 60_000);
});
