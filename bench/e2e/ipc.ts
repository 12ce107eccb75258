/**
 * Request and answer over a child process's IPC channel: the parent numbers each request, the
 * child answers with the same number. One dispatcher per child process, so that several modules
 * (the process probe, the fleet) can each answer their own message types.
 */
import type { ChildProcess } from 'node:child_process';

interface Envelope {
  id: number;
  type: string;
  body: unknown;
}
interface Answer {
  id: number;
  ok: boolean;
  body?: unknown;
  error?: string;
}

type Handler = (body: unknown) => unknown;
const handlers = new Map<string, Handler>();
let listening = false;

/** In a child: answers requests of `type` with `handler` (its result, or its error's message). */
export function answerIpc(type: string, handler: Handler): void {
  handlers.set(type, handler);
  if (listening || !process.send) return;
  listening = true;
  process.on('message', (raw: Envelope) => {
    const handle = handlers.get(raw.type);
    if (!handle) return;
    Promise.resolve()
      .then(() => handle(raw.body))
      .then(
        (body) => reply({ id: raw.id, ok: true, body }),
        (err: unknown) => reply({ id: raw.id, ok: false, error: (err as Error).message }),
      );
  });
}

function reply(answer: Answer): void {
  if (process.connected) process.send?.(answer);
}

/** In the parent: asks a child with an IPC channel, one request at a time or many at once. */
export class IpcClient {
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();

  constructor(
    private readonly child: ChildProcess,
    private readonly name: string,
  ) {
    child.on('message', (answer: Answer) => {
      const w = this.waiting.get(answer.id);
      if (!w) return;
      this.waiting.delete(answer.id);
      if (answer.ok) w.resolve(answer.body);
      else w.reject(new Error(`${this.name}: ${answer.error}`));
    });
    child.once('exit', (code, signal) => {
      for (const w of this.waiting.values()) {
        w.reject(new Error(`${this.name} exited (code ${code}, signal ${signal})`));
      }
      this.waiting.clear();
    });
  }

  call<T>(type: string, body: unknown = {}, timeoutMs = 30_000): Promise<T> {
    if (!this.child.connected) {
      return Promise.reject(new Error(`${this.name} is not running`));
    }
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.name} did not answer "${type}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ id, type, body } satisfies Envelope);
    });
  }
}
