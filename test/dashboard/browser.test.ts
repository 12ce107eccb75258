import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { DemoBackend } from '../../src/demo/backend.js';
import { startTestPlane, waitFor, type TestPlane } from '../support/control-plane.js';
import { requirePrerequisite } from '../support/prerequisites.js';
import { waitWithProgress } from '../support/progress.js';
import { launchChromium } from './chromium.js';

const ARTIFACTS = join(import.meta.dirname, '../../test-artifacts');
const IDS = ['backend-0', 'backend-1', 'backend-2'];

let plane: TestPlane;
let browser: Browser;
let page: Page;
const backends: DemoBackend[] = [];
const agents: Agent[] = [];
let traffic: NodeJS.Timeout | undefined;
const cspViolations: string[] = [];
/** When backend-2's background load starts ramping, seconds on its own clock. */
let rampAt: number | undefined;

/**
 * About 100 requests/s spread over the backends by the published weights, as a
 * data plane following augur would: the weights react to the load they send.
 */
function sendTraffic(): NodeJS.Timeout {
  return setInterval(() => {
    const eps = plane.lps.lists.get('demo')?.endpoints ?? [];
    const total = eps.reduce((s, e) => s + e.weight, 0);
    if (total <= 0) return;
    let u = Math.random() * total;
    const pick = eps.find((e) => (u -= e.weight) <= 0) ?? eps[0]!;
    fetch(`http://${pick.address}:${pick.port}/`)
      .then((r) => r.arrayBuffer())
      .catch(() => undefined);
  }, 10);
}

beforeAll(async () => {
  requirePrerequisite('chromium');
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
    60_000,
    'three scored endpoints',
  );
  traffic = sendTraffic();
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  // The page runs under the HTTP address's Content-Security-Policy: anything it blocks is a bug.
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  await page.addInitScript(() =>
    document.addEventListener('securitypolicyviolation', (e) =>
      console.error(`Content Security Policy violation: ${e.violatedDirective} ${e.blockedURI}`),
    ),
  );
});

afterAll(async () => {
  clearInterval(traffic);
  await browser?.close();
  for (const a of agents) await a.stop();
  for (const b of backends) await b.stop();
  await plane?.dispose();
});

interface CardView {
  id: string;
  score: string;
  weight: string;
  state: string;
  points: number;
  forecast: string;
  canvas: boolean;
}

function readCards(p: Page): Promise<CardView[]> {
  return p.$$eval('.card[data-endpoint]', (cards) =>
    cards.map((c) => {
      const plot = c.querySelector('.plot') as HTMLElement;
      return {
        id: (c as HTMLElement).dataset.endpoint!,
        score: c.querySelector('[data-field="score"]')!.textContent ?? '',
        weight: c.querySelector('[data-field="weight"]')!.textContent ?? '',
        state: (c as HTMLElement).dataset.state ?? '',
        points: Number(plot.dataset.points),
        forecast: plot.dataset.forecast ?? '',
        canvas: plot.querySelector('canvas') !== null,
      };
    }),
  );
}

describe('dashboard in Chromium', () => {
  it('shows every endpoint live, then a swap on the timeline when a backend ramps', async () => {
    await page.goto(`${plane.httpUrl}/dashboard`);
    await page.waitForSelector('#conn[data-conn="live"]', { timeout: 60_000 });
    await page.waitForFunction(() => document.querySelectorAll('.card canvas').length === 3, null, {
      timeout: 60_000,
    });
    // A marker that a reload would wipe.
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));

    // Every card active with its plot. At a 0.2 s interval an agent on a busy machine can be
    // late enough for its endpoint to read 'stale' for a moment (it did in CI), so the page
    // is given time to show all three active, as it must once their samples arrive.
    await page.waitForFunction(
      () => {
        const cards = Array.from(document.querySelectorAll('.card[data-endpoint]'));
        return (
          cards.length === 3 &&
          cards.every(
            (c) => (c as HTMLElement).dataset.state === 'active' && c.querySelector('.plot canvas'),
          )
        );
      },
      null,
      { timeout: 60_000 },
    );
    const before = await readCards(page);
    expect(before.map((c) => c.id).sort()).toEqual(IDS);
    expect(before.every((c) => c.canvas)).toBe(true);

    // Plots grow and scores move, without a reload.
    await page.waitForFunction(
      (prev) =>
        prev.every(
          (p) =>
            Number(
              (document.querySelector(`.card[data-endpoint="${p.id}"] .plot`) as HTMLElement)
                .dataset.points,
            ) > p.points,
        ),
      before,
      { timeout: 60_000 },
    );
    await page.waitForFunction(
      (prev) =>
        prev.some(
          (p) =>
            document.querySelector(`.card[data-endpoint="${p.id}"] [data-field="score"]`)!
              .textContent !== p.score,
        ),
      before,
      { timeout: 60_000 },
    );
    // The forecast is drawn over the load when the scorer makes one, and only then.
    const forecasting = plane.lps.forecasts() !== undefined;
    await page.waitForFunction(
      (want) =>
        Array.from(document.querySelectorAll('.card .plot')).every(
          (p) => (p as HTMLElement).dataset.forecast === want,
        ),
      forecasting ? 'yes' : 'no',
      { timeout: 60_000 },
    );

    // Let the weights settle (ten list versions), then backend-2's neighbours start eating
    // its CPU. Waits count the LPS's list versions, not seconds: a busy machine scores
    // less often, and the test waits as long as scoring goes on.
    const version = () => plane.lps.lists.get('demo')?.version ?? 0;
    const settled = version() + 10;
    await waitWithProgress({
      what: 'ten more list versions',
      check: () => version() >= settled,
      progress: () => backends[0]!.stats().served,
      budget: Number.POSITIVE_INFINITY,
      stallMs: 30_000,
    });
    const rampWall = Date.now();
    rampAt = backends[2]!.elapsed();
    // The ramp reaches the overload limit within 2 s of its own clock; 150 list versions
    // (30 s of scoring at 0.2 s) without a judged swap is a failure.
    const swap = await waitWithProgress({
      what: 'a judged swap of backend-2 on the page',
      progress: version,
      budget: 150,
      stallMs: 30_000,
      pollMs: 200,
      check: () =>
        page.evaluate((since) => {
          const li = Array.from(
            document.querySelectorAll<HTMLElement>('#swap-list li[data-endpoint="backend-2"]'),
          ).find((l) => Number(l.dataset.at) >= since && l.dataset.outcome !== 'pending');
          return li ? { outcome: li.dataset.outcome, text: li.textContent ?? '' } : undefined;
        }, rampWall),
    });
    // Overload came (the ramp goes to 97 %): late if the forecast at the cut saw it coming,
    // missed if not; either way the page says when and why.
    expect(['late', 'missed']).toContain(swap.outcome);
    expect(swap.text).toMatch(
      /(late|missed): (overloaded \((CPU|response time)\) \d+\.\d s after the cut|already overloaded when cut)/,
    );
    expect(await page.locator('#swap-strip i').count()).toBeGreaterThan(0);

    // Its share is now below every other backend's.
    await page.waitForFunction(
      () => {
        const w = (id: string) =>
          parseFloat(
            document.querySelector(`.card[data-endpoint="${id}"] [data-field="weight"]`)!
              .textContent!,
          );
        return w('backend-2') < w('backend-0') && w('backend-2') < w('backend-1');
      },
      null,
      { timeout: 60_000 },
    );

    // Still the same page: no reload, one snapshot, then deltas only.
    const stats = await page.evaluate(() => {
      const w = window as unknown as {
        marker: number;
        augurDashboard: { stats: { snapshots: number; deltas: number } };
      };
      return { marker: w.marker, ...w.augurDashboard.stats };
    });
    expect(stats.marker).toBe(42);
    expect(stats.snapshots).toBe(1);
    expect(stats.deltas).toBeGreaterThan(5);
    expect(cspViolations).toEqual([]);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
  }, 240_000);
});
