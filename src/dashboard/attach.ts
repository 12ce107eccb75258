import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerResponse } from 'node:http';
import { AugurError } from '../common/errors.js';
import type { HttpHost } from '../common/http-host.js';
import type { AttachedPart } from '../common/lifecycle.js';
import type { Logger } from '../common/logger.js';
import type { ForecastProvider } from '../lps/load-prediction-service.js';
import type { EndpointStore } from '../lps/store.js';
import { SwapDetector } from '../lps/swaps.js';
import type { PrioritizedListSource } from '../lps/types.js';
import type { DashboardConfig } from './config.js';
import { DashboardFeed } from './frames.js';
import { SseHub } from './sse.js';

/**
 * The page's code is plain JavaScript in `static/`, served as files: it runs
 * in the browser as an ES module without a bundler, tsc does not touch it
 * (tsconfig excludes the folder), and `augur serve` needs no build step for it.
 * From `dist/src/dashboard/` (a compiled build) the folder is found in the
 * source tree, which the package ships.
 */
function staticDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'static'), resolve(here, '../../../src/dashboard/static')];
  const found = candidates.find((d) => existsSync(join(d, 'index.html')));
  if (!found)
    throw new AugurError(
      'DASHBOARD_ASSETS_MISSING',
      `dashboard files not found in ${candidates.join(' or ')}; ship src/dashboard/static with augur, or set dashboard.enabled: false`,
    );
  return found;
}

interface Asset {
  type: string;
  body: Buffer;
}

function loadAssets(): Map<string, Asset> {
  const dir = staticDir();
  const uplot = dirname(createRequire(import.meta.url).resolve('uplot'));
  const files: Array<[string, string, string]> = [
    ['/dashboard', join(dir, 'index.html'), 'text/html; charset=utf-8'],
    ['/dashboard/', join(dir, 'index.html'), 'text/html; charset=utf-8'],
    ['/dashboard/app.js', join(dir, 'app.js'), 'text/javascript; charset=utf-8'],
    ['/dashboard/style.css', join(dir, 'style.css'), 'text/css; charset=utf-8'],
    [
      '/dashboard/vendor/uplot.js',
      join(uplot, 'uPlot.iife.min.js'),
      'text/javascript; charset=utf-8',
    ],
    ['/dashboard/vendor/uplot.css', join(uplot, 'uPlot.min.css'), 'text/css; charset=utf-8'],
  ];
  return new Map(files.map(([path, file, type]) => [path, { type, body: readFileSync(file) }]));
}

/** What the dashboard needs of the process it is attached to. */
export interface DashboardHost {
  config: DashboardConfig;
  /** The LPS it shows. */
  lps: {
    lists: PrioritizedListSource;
    store: EndpointStore;
    forecasts(): ForecastProvider | undefined;
  };
  http: HttpHost;
  logger: Logger;
}

export interface AttachedDashboard extends AttachedPart {
  /** The swaps the page shows; `augur serve` exposes it as `ControlPlane.swaps`. */
  swaps: SwapDetector;
  feed: DashboardFeed;
}

/**
 * Serves the live dashboard on the control plane's HTTP address: the page at
 * `/dashboard` (and `/`, which redirects there), its event stream at
 * `/dashboard/events`, a JSON snapshot at `/dashboard/state.json`, and uPlot from
 * node_modules (no CDN).
 */
export async function attachDashboard(host: DashboardHost): Promise<AttachedDashboard> {
  const { config, lps } = host;
  const swaps = new SwapDetector({
    lists: lps.lists,
    store: lps.store,
    config: config.swaps,
  });
  const feed = new DashboardFeed({
    lists: lps.lists,
    store: lps.store,
    swaps,
    forecasts: () => lps.forecasts(),
    plotSamples: config.plotSamples,
  });
  const hub = new SseHub({
    source: feed,
    updateIntervalMs: config.updateIntervalMs,
    maxBufferedBytes: config.maxBufferedBytes,
  });
  const stop = async () => {
    hub.stop();
    feed.close();
    swaps.stop();
  };
  if (!config.enabled) return { swaps, feed, stop };

  const assets = loadAssets();
  const send = (res: ServerResponse, asset: Asset) => {
    res.writeHead(200, { 'content-type': asset.type, 'cache-control': 'no-cache' });
    res.end(asset.body);
  };
  // A person who opens the bare address lands on the page, not on a 404.
  host.http.route('/', (_req, res) => {
    res.writeHead(302, { location: '/dashboard', 'content-type': 'text/plain' });
    res.end('the dashboard is at /dashboard\n');
  });
  host.http.route('/dashboard', (_req, res) => send(res, assets.get('/dashboard')!));
  host.http.routePrefix('/dashboard/', (req, res, url) => {
    if (url.pathname === '/dashboard/events') return hub.open(req, res);
    if (url.pathname === '/dashboard/state.json') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(feed.snapshot()));
      return;
    }
    const asset = assets.get(url.pathname);
    if (!asset) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`no dashboard file ${url.pathname}\n`);
      return;
    }
    send(res, asset);
  });
  hub.start();
  host.logger.info({ url: '/dashboard' }, 'dashboard attached');
  return { swaps, feed, stop };
}
