import { isIP } from 'node:net';
import { AugurError } from './errors.js';

export interface HostPort {
  host: string;
  port: number;
}

/** Parses `HOST:PORT`, `[v6]:PORT` or `:PORT`; port 0 asks the OS for a free port. */
export function parseHostPort(value: string, what = 'address'): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim());
  if (!m) {
    throw new AugurError(
      'BAD_ADDRESS',
      `${what} "${value}" is not HOST:PORT (for example 127.0.0.1:18000)`,
    );
  }
  const host = m[1] ?? (m[2] || '0.0.0.0');
  const port = Number(m[3]);
  if (port > 65535)
    throw new AugurError('BAD_ADDRESS', `${what} "${value}": port ${port} is above 65535`);
  return { host, port };
}

export function formatHostPort({ host, port }: HostPort): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
