import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatHostPort } from '../../src/common/address.js';
import { createRegistry, HttpHost } from '../../src/common/http-host.js';
import { attachDashboard, type AttachedDashboard } from '../../src/dashboard/attach.js';
import { dashboardConfigSchema } from '../../src/dashboard/config.js';
import { EndpointState } from '../../src/lps/types.js';
import { requirePrerequisite } from '../support/prerequisites.js';
import { launchChromium } from './chromium.js';
import { DrivenLists, addEndpoint, addSample, makeStore } from './support.js';

/**
 * The dashboard in real Chromium on a scripted scenario whose right answers are known: four
 * cuts, one of each verdict, and two endpoints whose rank and weight disagree. The lists are
 * scripted (the real LPS cannot be made to forecast exactly 0.95); the swap detector, the
 * feed, the event stream, the HTTP server, the page and the browser are the real ones.
 */
const ARTIFACTS = join(import.meta.dirname, '../../test-artifacts');

/** Forecast at the cut, and measured CPU after it, of each cut endpoint. */
const CUTS = {
  prevented: {
    forecast: 0.95,
    after: 0.7,
    verdict: /^prevented: without the cut it would have reached 95 %/,
  },
  false: { forecast: 0.6, after: 0.5, verdict: /^false: no overload followed \(peak 50 %\)/ },
  // A forecast past 1 (an upper quantile can be) reads as 100 %.
  late: {
    forecast: 1.18,
    after: 0.96,
    verdict:
      /^late: overloaded \(CPU\) \d+\.\d s after the cut, though the forecast at the cut \(100 %\) foresaw it$/,
  },
  missed: {
    forecast: 0.6,
    after: 0.96,
    verdict:
      /^missed: overloaded \(CPU\) \d+\.\d s after the cut; the forecast at the cut \(60 %\) was under 90 %$/,
  },
} as const;
type CutName = keyof typeof CUTS;
const CUT_NAMES = Object.keys(CUTS) as CutName[];

let http: HttpHost;
let dashboard: AttachedDashboard;
let browser: Browser;
let page: Page;
let feeding: NodeJS.Timeout | undefined;
const lists = new DrivenLists();
// A 1 s interval: an endpoint is stale after 3 s without a sample.
const store = makeStore(1);
const cpu = new Map<string, number>();

beforeAll(async () => {
  requirePrerequisite('chromium');
  http = new HttpHost({ listen: '127.0.0.1:0', registry: createRegistry(false) });
  dashboard = await attachDashboard({
    http,
    logger: pino({ level: 'silent' }),
    lps: { lists, store, forecasts: () => undefined },
    config: dashboardConfigSchema.parse({ updateIntervalMs: 100, swaps: { watchIntervals: 2 } }),
  });
  await http.start();
  const now = Date.now();
  for (const id of ['a', 'b', 'down', ...CUT_NAMES]) {
    addEndpoint(store, id, now);
    cpu.set(id, 0.5);
  }
  // The agents: a sample of each endpoint every 200 ms, its CPU as the script says.
  const feed = () => {
    const at = Date.now();
    for (const [id, value] of cpu) addSample(store, id, at, value);
  };
  feed();
  feeding = setInterval(feed, 200);
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
});

afterAll(async () => {
  clearInterval(feeding);
  await browser?.close();
  await dashboard?.stop();
  await http?.stop();
});

const url = () => `http://${formatHostPort(http.address)}`;

describe('the dashboard tells the truth (real Chromium, scripted scenario)', () => {
  it('redirects / to /dashboard', async () => {
    const res = await fetch(`${url()}/`, { redirect: 'manual' });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/dashboard');
    await res.text();
  });

  it('judges each cut by what it prevented, states the rule, and explains rank against weight', async () => {
    const even = { a: 0.3, b: 0.3, prevented: 0.1, false: 0.1, late: 0.1, missed: 0.1, down: 0 };
    const scores = { a: 0.9, b: 0.6, down: 0 };
    const states = { down: EndpointState.ENDPOINT_STATE_FAILING };
    lists.publish('svc', Date.now(), even, states, {}, scores);

    await page.goto(`${url()}/dashboard`);
    await page.waitForSelector('#conn[data-conn="live"]', { timeout: 30_000 });

    // Every cut endpoint loses most of its share at once, with the scripted forecast.
    const parts = Object.fromEntries(
      CUT_NAMES.map((n) => [n, { predictedUtilization: CUTS[n].forecast }]),
    );
    const cut = {
      a: 0.3,
      b: 0.62,
      prevented: 0.02,
      false: 0.02,
      late: 0.02,
      missed: 0.02,
      down: 0,
    };
    lists.publish(
      'svc',
      Date.now(),
      cut,
      states,
      {
        ...parts,
        a: { predictedUtilization: 0.4, estimatedCapacity: 100 },
        b: { predictedUtilization: 0.7, estimatedCapacity: 300 },
      },
      scores,
    );
    for (const n of CUT_NAMES) cpu.set(n, CUTS[n].after);

    // Resolved on the page: overload at once, the others when their 2 s window ends.
    await page.waitForFunction(
      (names) =>
        names.every((n) => {
          const li = document.querySelector<HTMLElement>(`#swap-list li[data-endpoint="${n}"]`);
          return li !== null && li.dataset.outcome !== 'pending';
        }),
      CUT_NAMES,
      { timeout: 30_000 },
    );
    const rows = await page.$$eval('#swap-list li', (lis) =>
      lis.map((li) => ({
        endpoint: (li as HTMLElement).dataset.endpoint!,
        outcome: (li as HTMLElement).dataset.outcome!,
        verdict: li.querySelector('.outcome')!.textContent ?? '',
      })),
    );
    expect(rows).toHaveLength(4);
    for (const n of CUT_NAMES) {
      const row = rows.find((r) => r.endpoint === n)!;
      expect(row.outcome, n).toBe(n);
      expect(row.verdict, n).toMatch(CUTS[n].verdict);
    }
    const rule = await page.textContent('#swap-rules');
    for (const word of ['prevented:', 'false:', 'late:', 'missed:']) expect(rule).toContain(word);
    expect(rule).toContain('overload = CPU over 90 %');

    // Rank and weight, each explained; b ranks below a but gets more traffic, and says why.
    const card = async (id: string) =>
      page.$eval(`.card[data-endpoint="${id}"]`, (c) => ({
        rank: c.querySelector('.rank')!.textContent,
        weight: c.querySelector('[data-field="weight"]')!.textContent,
        predicted: c.querySelector('[data-field="pu"]')!.textContent,
        why: c.querySelector('[data-field="why"]')!.textContent ?? '',
      }));
    await page.waitForFunction(
      () =>
        document.querySelector('.card[data-endpoint="b"] [data-field="weight"]')?.textContent ===
        '62.0 %',
      null,
      { timeout: 30_000 },
    );
    const b = await card('b');
    expect(b.rank).toBe('#2');
    expect(b.why).toBe(
      'rank #2 of 7 by Load Score (predicted CPU 70 %): the order of picks and fallbacks. ' +
        'Weight 62 %: its share of traffic, from its estimated capacity, 300 requests/s. ' +
        'It gets more traffic than a, which ranks higher: it can take more, though its load is predicted higher.',
    );
    const a = await card('a');
    expect(a.rank).toBe('#1');
    expect(a.why).toMatch(
      /It gets less traffic than b, which ranks lower: its predicted load is lower, but it can take less\.$/,
    );
    // A failing endpoint: last, no traffic, and the card says why.
    const down = await card('down');
    expect(down.rank).toBe('#7');
    expect(down.why).toBe(
      'no traffic, ranked after every active endpoint: failing: its health probe fails',
    );
    // Predicted utilisation past 1 is shown clipped.
    expect((await card('late')).predicted).toBe('100.0 %');

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-verdicts.png'), fullPage: true });
  });
});
