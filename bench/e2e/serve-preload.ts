/**
 * Preloaded into `augur serve` (`node --import`) by the harness; changes nothing in augur. It
 * answers the harness's `probe` and `probe-reset` over IPC, and when the harness goes away
 * without stopping it, stops augur with SIGTERM (which augur serve handles cleanly), so an
 * interrupted benchmark leaves nothing behind.
 */
import { answerIpc } from './ipc.js';
import { createProbe } from './process-probe.js';

if (process.send) {
  const probe = createProbe();
  answerIpc('probe', () => probe.read());
  answerIpc('probe-reset', () => probe.reset());
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
}
