import { request, type IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpHost, createRegistry } from '../../src/common/http-host.js';
import type { DeltaFrame, SnapshotFrame } from '../../src/dashboard/frames.js';
import { SseHub, type FrameSource } from '../../src/dashboard/sse.js';
import { waitFor } from '../support/control-plane.js';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Frames whose deltas are big, to fill a connection whose reader stopped. */
class BigFrames implements FrameSource {
  snapshots = 0;
  deltas = 0;
  snapshot(): SnapshotFrame {
    this.snapshots++;
    return {
      type: 'snapshot',
      now: Date.now(),
      swapRules: { watchIntervals: 1, overloadUtilization: 0.9, responseTimeSlo: 0, text: '' },
      plotSamples: 1,
      services: [],
      endpoints: [],
      swaps: [],
    };
  }
  delta(): DeltaFrame {
    this.deltas++;
    return { type: 'delta', now: Date.now(), removed: ['x'.repeat(256 * 1024)] };
  }
}

async function serve(hub: SseHub): Promise<string> {
  const http = new HttpHost({ listen: '127.0.0.1:0', registry: createRegistry(false) });
  http.route('/events', (req, res) => hub.open(req, res));
  await http.start();
  cleanups.push(() => http.stop());
  return http.url;
}

describe('SseHub', () => {
  it('skips deltas for a client that stopped reading, then resynchronises it with a snapshot', async () => {
    const source = new BigFrames();
    const hub = new SseHub({ source, updateIntervalMs: 20, maxBufferedBytes: 1 << 20 });
    const url = await serve(hub);
    hub.start();
    cleanups.push(() => hub.stop());

    const res = await new Promise<IncomingMessage>((resolve, reject) =>
      request(`${url}/events`, resolve).on('error', reject).end(),
    );
    cleanups.push(() => void res.destroy());
    res.pause();
    // The kernel's socket buffers fill, then the server's: the hub stops queueing.
    await waitFor(() => hub.behindCount === 1, 15_000, 'the client to fall behind');
    const queuedDeltas = source.deltas;

    const events: string[] = [];
    let tail = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      tail += chunk;
      let i: number;
      while ((i = tail.indexOf('\n\n')) >= 0) {
        const name = /^event: (.*)$/m.exec(tail.slice(0, i))?.[1];
        if (name) events.push(name);
        tail = tail.slice(i + 2);
      }
    });
    res.resume();
    await waitFor(() => events.lastIndexOf('snapshot') > 0, 15_000, 'a second snapshot');
    expect(events[0]).toBe('snapshot');
    expect(hub.resyncs).toBe(1);
    // Fewer deltas reached the client than the hub computed meanwhile: the rest were skipped.
    const beforeResync = events.slice(0, events.lastIndexOf('snapshot'));
    expect(beforeResync.filter((e) => e === 'delta').length).toBeLessThan(queuedDeltas);
  });

  it('sends one snapshot on connect and nothing when nothing changed', async () => {
    const quiet: FrameSource = {
      snapshot: () => new BigFrames().snapshot(),
      delta: () => undefined,
    };
    const hub = new SseHub({ source: quiet, updateIntervalMs: 20, maxBufferedBytes: 1 << 20 });
    const url = await serve(hub);
    hub.start();
    cleanups.push(() => hub.stop());
    const ctl = new AbortController();
    cleanups.push(() => ctl.abort());
    const res = await fetch(`${url}/events`, { signal: ctl.signal });
    const reader = res.body!.getReader();
    let text = '';
    const until = Date.now() + 300;
    while (Date.now() < until && !text.includes('event: snapshot')) {
      const { value } = await reader.read();
      text += new TextDecoder().decode(value);
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(hub.clientCount).toBe(1);
    expect(text.match(/event: /g)).toEqual(['event: ']);
    ctl.abort();
    await waitFor(() => hub.clientCount === 0, 3000, 'the client to be dropped');
  });
});
