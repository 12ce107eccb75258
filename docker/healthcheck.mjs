// Container health check: exits 0 when the URL answers 2xx within 2 s, 1 otherwise.
// Plain Node (no augur code loaded), so a check every few seconds stays cheap.
//   node docker/healthcheck.mjs http://127.0.0.1:18080/healthz
const url = process.argv[2] ?? 'http://127.0.0.1:18080/healthz';
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  if (!res.ok) {
    console.error(`${url}: HTTP ${res.status}`);
    process.exit(1);
  }
} catch (err) {
  console.error(`${url}: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
