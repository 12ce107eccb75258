import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DeltaFrame, SnapshotFrame } from './frames.js';

/** Where the hub's frames come from (DashboardFeed). */
export interface FrameSource {
  snapshot(): SnapshotFrame;
  delta(): DeltaFrame | undefined;
}

export interface SseHubOptions {
  source: FrameSource;
  /** Shortest time between two deltas, ms: everything in between is coalesced. */
  updateIntervalMs: number;
  /** Unsent bytes after which a client skips deltas until it has caught up, then gets a snapshot. */
  maxBufferedBytes: number;
  /** A comment line is sent this often so idle proxies keep the stream open, ms. */
  keepAliveMs?: number;
}

interface Client {
  res: ServerResponse;
  /** Skipped a delta; must get a snapshot before the next delta. */
  behind: boolean;
}

/** One server-sent event; `data` is a single JSON line. */
export function sseEvent(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * Server-sent events for every open dashboard: a snapshot on connect, then at
 * most one delta per `updateIntervalMs`, computed once and written as the same
 * string to every client (the go-control-plane idea: marshal once, share the
 * bytes). A slow client never makes the server buffer without bound: past
 * `maxBufferedBytes` it misses deltas and is resynchronised with a snapshot.
 */
export class SseHub {
  private readonly options: Required<SseHubOptions>;
  private readonly clients = new Set<Client>();
  private timer: NodeJS.Timeout | undefined;
  private keepAlive: NodeJS.Timeout | undefined;
  /** Snapshots sent to clients that had fallen behind. */
  resyncs = 0;

  constructor(options: SseHubOptions) {
    this.options = { keepAliveMs: 15_000, ...options };
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Clients skipping deltas because too much is unsent on their connection. */
  get behindCount(): number {
    let n = 0;
    for (const c of this.clients) if (c.behind) n++;
    return n;
  }

  start(): void {
    this.timer = setInterval(() => this.flush(), this.options.updateIntervalMs);
    this.timer.unref();
    this.keepAlive = setInterval(() => {
      for (const c of this.clients) c.res.write(': keep-alive\n\n');
    }, this.options.keepAliveMs);
    this.keepAlive.unref();
  }

  /** Takes over an HTTP request as an event stream. */
  open(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.socket?.setNoDelay(true);
    const client: Client = { res, behind: false };
    // Nobody was watching, so no delta was computed: start the baseline now,
    // so the first delta holds only what changed after this snapshot.
    if (this.clients.size === 0) this.options.source.delta();
    res.write('retry: 2000\n\n');
    res.write(sseEvent('snapshot', this.options.source.snapshot()));
    this.clients.add(client);
    const drop = () => this.clients.delete(client);
    req.on('close', drop);
    res.on('error', drop);
  }

  /** Computes the delta since the previous flush and sends it; called by the timer. */
  flush(): void {
    // Without clients nothing is computed: a dashboard nobody watches costs nothing.
    if (this.clients.size === 0) return;
    const delta = this.options.source.delta();
    const bytes = delta ? sseEvent('delta', delta) : undefined;
    for (const c of this.clients) {
      if (c.res.writableLength > this.options.maxBufferedBytes) {
        c.behind = true;
        continue;
      }
      if (c.behind) {
        c.behind = false;
        this.resyncs++;
        c.res.write(sseEvent('snapshot', this.options.source.snapshot()));
      } else if (bytes) {
        c.res.write(bytes);
      }
    }
  }

  /** Ends every stream (the browsers reconnect to whoever serves next). */
  stop(): void {
    clearInterval(this.timer);
    clearInterval(this.keepAlive);
    for (const c of this.clients) c.res.end();
    this.clients.clear();
  }
}
