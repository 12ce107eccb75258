import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/*
 * Certificates made at test time with openssl (test/support/setup.ts installs it): a CA, and
 * leaf certificates it signs with the SANs a test asks for. Nothing secret is committed.
 */

export interface CertFiles {
  cert: string;
  key: string;
}

export interface IssueOptions {
  /** URI SANs (SPIFFE-style identities). */
  uris?: string[];
  /** DNS SANs; every certificate also carries IP:127.0.0.1 and DNS:localhost. */
  dns?: string[];
  /** Days valid; a negative number makes a certificate that has already expired. */
  days?: number;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A CA in a temporary folder; `issue` signs leaf certificates. */
export class TestCa {
  readonly dir: string;
  readonly cert: string;
  readonly key: string;
  private serial = 0;

  constructor(
    readonly name = 'augur-test-ca',
    dir?: string,
  ) {
    this.dir = dir ?? mkdtempSync(join(tmpdir(), 'augur-pki-'));
    this.cert = join(this.dir, `${name}.crt`);
    this.key = join(this.dir, `${name}.key`);
    openssl(
      [
        'req',
        '-x509',
        ...EC,
        '-keyout',
        this.key,
        '-out',
        this.cert,
        '-days',
        '2',
        '-subj',
        `/CN=${name}`,
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ],
      this.dir,
    );
  }

  /** A key and a certificate signed by this CA; `file` names them (file.crt, file.key). */
  issue(file: string, options: IssueOptions = {}): CertFiles {
    const base = join(this.dir, `${file}-${++this.serial}`);
    const out = { cert: `${base}.crt`, key: `${base}.key` };
    const sans = [
      ...(options.uris ?? []).map((u) => `URI:${u}`),
      ...(options.dns ?? []).map((d) => `DNS:${d}`),
      'DNS:localhost',
      'IP:127.0.0.1',
    ];
    writeFileSync(
      `${base}.ext`,
      `subjectAltName=${sans.join(',')}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n`,
    );
    openssl(
      ['req', ...EC, '-keyout', out.key, '-out', `${base}.csr`, '-subj', `/CN=${file}`],
      this.dir,
    );
    openssl(
      [
        'x509',
        '-req',
        '-in',
        `${base}.csr`,
        '-CA',
        this.cert,
        '-CAkey',
        this.key,
        '-set_serial',
        String(Date.now() * 100 + this.serial),
        '-out',
        out.cert,
        '-days',
        String(options.days ?? 1),
        '-extfile',
        `${base}.ext`,
      ],
      this.dir,
    );
    return out;
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
