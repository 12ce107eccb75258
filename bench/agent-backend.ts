/**
 * The endpoint `npm run bench:agent` watches in its "every signal" case: a plain
 * node:http server, run compiled in its own process (so the agent's
 * `--process-pid` has a real process to measure), with what a Node service
 * usually exposes: `/healthz`, `/work` (the requests the bench sends it), and
 * `/metrics` from prom-client (its default process and runtime metrics, a
 * counter of requests by route and code, and a latency histogram), so the
 * metrics page the agent scrapes each tick has a realistic size.
 *
 * Prints one JSON line `{"port":N}` on stdout when listening; SIGTERM stops it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const registry = new Registry();
collectDefaultMetrics({ register: registry });
const requests = new Counter({
  name: 'http_requests_total',
  help: 'Requests completed',
  labelNames: ['route', 'code'],
  registers: [registry],
});
const latency = new Histogram({
  name: 'http_request_duration_seconds',
  help: 'Request latency',
  labelNames: ['route'],
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  registers: [registry],
});

const server = http.createServer((req, res) => {
  const start = process.hrtime.bigint();
  const route = req.url === '/work' ? '/work' : req.url === '/healthz' ? '/healthz' : 'other';
  const done = (code: number, body: string, type = 'text/plain') => {
    res.writeHead(code, { 'content-type': type });
    res.end(body);
    requests.inc({ route, code: String(code) });
    latency.observe({ route }, Number(process.hrtime.bigint() - start) / 1e9);
  };
  if (req.url === '/metrics') {
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  } else if (req.url === '/healthz') done(200, 'ok');
  else if (req.url === '/work') {
    // A little work, so the process's own CPU is not nothing.
    let x = 0;
    for (let i = 0; i < 20_000; i++) x += Math.sqrt(i);
    done(200, String(x));
  } else done(404, 'not found');
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
