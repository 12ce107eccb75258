import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync, statSync } from 'node:fs';
import {
  createSecureContext,
  type PeerCertificate,
  type SecureContextOptions,
  type Server as TlsServer,
  type TLSSocket,
  type TlsOptions,
} from 'node:tls';
import { AugurError } from './errors.js';
import type { Logger } from './logger.js';
import type { TlsConfig } from './security.js';

/*
 * TLS material from files, reloaded on change without a restart.
 *
 * The files are checked every `reloadInterval` seconds (size, mtime, inode); when one changed, all
 * are read again and tried with tls.createSecureContext. Good material replaces the old one on
 * every server that uses it: new connections use it, open ones keep theirs. Bad material (a
 * certificate written before its key, a key that does not match) is logged and ignored; the
 * next change is tried again.
 *
 * grpc-js: ServerCredentials' watchers (its own mechanism for certificate providers) call
 * setSecureContext on each bound HTTP/2 server. node:http2 and node:https: setSecureContext.
 */

export interface TlsMaterialEvents {
  change: [context: SecureContextOptions];
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new AugurError(
      'TLS_UNREADABLE',
      `cannot read the TLS ${what} ${path}: ${(err as Error).message}`,
    );
  }
}

function signature(paths: string[]): string {
  return paths
    .map((p) => {
      try {
        const s = statSync(p);
        return `${s.ino}:${s.size}:${s.mtimeMs}`;
      } catch {
        return 'missing';
      }
    })
    .join('|');
}

/** A server's (or client's) certificate, key and CA, kept current. */
export class TlsMaterial extends EventEmitter<TlsMaterialEvents> {
  readonly config: TlsConfig;
  private context: SecureContextOptions;
  private seen: string;
  private timer: NodeJS.Timeout | undefined;
  private readonly logger: Logger | undefined;
  /** How many times new material was taken (for tests and the log). */
  reloads = 0;

  private constructor(config: TlsConfig, logger?: Logger) {
    super();
    this.config = config;
    this.logger = logger;
    this.seen = signature(this.paths());
    this.context = this.read();
  }

  /** The material of `config`, or undefined when it names no certificate (no TLS). */
  static load(config: TlsConfig, logger?: Logger): TlsMaterial | undefined {
    if (!config.cert) {
      if (config.clientCert === 'required')
        throw new AugurError(
          'TLS_INVALID',
          'security.tls.clientCert is required but no server certificate is configured (security.tls.cert/key)',
        );
      return undefined;
    }
    if (config.clientCert !== 'none' && !config.ca)
      throw new AugurError(
        'TLS_INVALID',
        `security.tls.clientCert is ${config.clientCert} but no CA is configured to verify client certificates (security.tls.ca)`,
      );
    return new TlsMaterial(config, logger);
  }

  private paths(): string[] {
    return [this.config.cert, this.config.key, this.config.ca].filter((p) => p !== '');
  }

  private read(): SecureContextOptions {
    const context: SecureContextOptions = {
      cert: readPem(this.config.cert, 'certificate'),
      key: readPem(this.config.key, 'private key'),
    };
    if (this.config.ca) context.ca = readPem(this.config.ca, 'CA bundle');
    try {
      createSecureContext(context);
    } catch (err) {
      throw new AugurError(
        'TLS_INVALID',
        `TLS material ${this.config.cert} / ${this.config.key}${this.config.ca ? ` / ${this.config.ca}` : ''} is not usable: ${(err as Error).message}`,
      );
    }
    return context;
  }

  /** The certificate, key and CA now. */
  current(): SecureContextOptions {
    return this.context;
  }

  /** Options for a node:tls based server (https, http2): the material and the client-cert rule. */
  serverOptions(): TlsOptions {
    return {
      ...this.context,
      requestCert: this.config.clientCert !== 'none',
      rejectUnauthorized: this.config.clientCert === 'required',
    };
  }

  /** Checks the files now; returns whether new material was taken. */
  check(): boolean {
    const now = signature(this.paths());
    if (now === this.seen) return false;
    this.seen = now;
    let next: SecureContextOptions;
    try {
      next = this.read();
    } catch (err) {
      this.logger?.error(
        { err: (err as Error).message },
        'TLS files changed but cannot be used; keeping the previous certificate',
      );
      return false;
    }
    this.context = next;
    this.reloads++;
    this.logger?.info({ cert: this.config.cert }, 'TLS certificate reloaded');
    this.emit('change', next);
    return true;
  }

  /** Starts checking the files every reloadInterval seconds. */
  watch(): this {
    this.timer ??= setInterval(() => this.check(), this.config.reloadInterval * 1000);
    this.timer.unref();
    return this;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.removeAllListeners();
  }
}

const peers = new WeakMap<TLSSocket, PeerCertificate | null>();

/**
 * The client certificate that the handshake of `socket` verified against the CA, or undefined
 * (none presented, or not verified). Read once per connection: tls.getPeerCertificate builds a
 * new object of every field at each call (about 20 µs here), which was most of what mutual TLS
 * added to an ext_proc exchange when it was read per request. The connection's certificate
 * cannot change after it is read, because the servers that use this refuse renegotiation
 * (`refuseRenegotiation`); TLS 1.3 has none.
 */
export function verifiedPeerCertificate(socket: TLSSocket): PeerCertificate | undefined {
  if (!socket.authorized) return undefined;
  let cert = peers.get(socket);
  if (cert === undefined) {
    const read = socket.getPeerCertificate();
    cert = read && Object.keys(read).length > 0 ? read : null;
    peers.set(socket, cert);
  }
  return cert ?? undefined;
}

/**
 * Makes every connection of `server` refuse TLS renegotiation (TLS 1.2; 1.3 has none), so the
 * identity a connection proved at its handshake is the one it keeps: a renegotiation attempt
 * is refused (ERR_TLS_RENEGOTIATION_DISABLED) and the server drops the connection.
 */
export function refuseRenegotiation(server: TlsServer): void {
  server.on('secureConnection', (socket: TLSSocket) => socket.disableRenegotiation());
}

/** grpc-js server credentials over TlsMaterial, updated when it changes. */
class WatchedServerCredentials extends grpc.ServerCredentials {
  constructor(material: TlsMaterial) {
    const { requestCert, rejectUnauthorized } = material.serverOptions();
    super({ requestCert, rejectUnauthorized }, material.current());
    material.on('change', (context) => this.updateSecureContextOptions(context));
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

/** Credentials for a grpc-js server: TLS from `material` (kept current), or plaintext. */
export function serverCredentials(material: TlsMaterial | undefined): grpc.ServerCredentials {
  return material
    ? new WatchedServerCredentials(material)
    : grpc.ServerCredentials.createInsecure();
}

/** Where a client finds its TLS material and bearer token. */
export interface ClientSecurity {
  /** CA bundle the server's certificate is verified against; empty: plaintext. */
  ca?: string;
  /** This client's certificate and key, for mutual TLS. */
  cert?: string;
  key?: string;
  /** The name the server's certificate must carry, when not the host dialled. */
  serverName?: string;
  /** A file whose content (trimmed) is sent as `authorization: Bearer ...`. */
  tokenFile?: string;
  /** The token itself (wins over tokenFile). */
  token?: string;
}

/** Whether a client with these settings speaks TLS. */
export function clientUsesTls(s: ClientSecurity | undefined): boolean {
  return Boolean(s?.ca || s?.cert);
}

/** Channel credentials, channel options and a call interceptor for the token, for a grpc-js client. */
export function clientChannel(s: ClientSecurity | undefined): {
  credentials: grpc.ChannelCredentials;
  options: grpc.ClientOptions;
} {
  const options: grpc.ClientOptions = {};
  let credentials = grpc.credentials.createInsecure();
  if (s && clientUsesTls(s)) {
    if ((s.cert ? 1 : 0) !== (s.key ? 1 : 0))
      throw new AugurError(
        'TLS_INVALID',
        'a client certificate and its key must be given together',
      );
    credentials = grpc.credentials.createSsl(
      s.ca ? readPem(s.ca, 'CA bundle') : null,
      s.key ? readPem(s.key, 'private key') : null,
      s.cert ? readPem(s.cert, 'certificate') : null,
    );
    if (s.serverName) {
      options['grpc.ssl_target_name_override'] = s.serverName;
      options['grpc.default_authority'] = s.serverName;
    }
  }
  const token = s?.token ?? (s?.tokenFile ? readToken(s.tokenFile) : undefined);
  if (token) options.interceptors = [bearerInterceptor(token)];
  return { credentials, options };
}

/** The name a server certificate file answers to: its first DNS SAN (for a client dialling an IP). */
export function serverNameOf(certFile: string): string | undefined {
  const san = new X509Certificate(readPem(certFile, 'certificate')).subjectAltName ?? '';
  return /DNS:([^,\s]+)/.exec(san)?.[1];
}

/** Reads a bearer token file (the token, trimmed); an empty file is an error. */
export function readToken(file: string): string {
  const token = readPem(file, 'token file').toString('utf8').trim();
  if (!token) throw new AugurError('TOKEN_INVALID', `token file ${file} is empty`);
  return token;
}

/** A client interceptor that adds `authorization: Bearer <token>` to every call. */
export function bearerInterceptor(token: string): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}
