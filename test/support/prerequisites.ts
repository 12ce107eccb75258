import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * What the tests need from the machine beyond node_modules, each with the Debian package
 * that brings it and a check of the thing itself (not of dpkg's database), so that a
 * machine that has it some other way passes too.
 */
export interface Prerequisite {
  /** The Debian package that provides it. */
  debianPackage: string;
  /** Who needs it, for the set-up message. */
  neededBy: string;
  /** True when it is usable now. */
  present(): boolean;
}

const succeeds = (file: string, args: string[]): boolean =>
  spawnSync(file, args, { stdio: 'ignore', timeout: 60_000 }).status === 0;

/** Debian's python3, not a pyenv or venv shim that cannot see Debian's packages. */
export const DEBIAN_PYTHON = '/usr/bin/python3';
export const DEBIAN_CHROMIUM = '/usr/bin/chromium';

export const PREREQUISITES: readonly Prerequisite[] = [
  {
    debianPackage: 'python3-grpcio',
    neededBy: 'the Python client and reflection tests (test/lps/python-client.test.ts)',
    present: () => succeeds(DEBIAN_PYTHON, ['-c', 'import grpc']),
  },
  {
    debianPackage: 'python3-grpc-tools',
    neededBy: 'the Python client test, which compiles proto/ with protoc',
    present: () => succeeds(DEBIAN_PYTHON, ['-c', 'import grpc_tools.protoc']),
  },
  {
    debianPackage: 'chromium',
    neededBy: 'the dashboard browser tests (test/dashboard)',
    present: () => existsSync(DEBIAN_CHROMIUM) && succeeds(DEBIAN_CHROMIUM, ['--version']),
  },
  {
    debianPackage: 'docker-compose',
    neededBy: 'the docker-compose.yml checks (test/compose)',
    present: () => succeeds('docker-compose', ['version']),
  },
  {
    debianPackage: 'openssl',
    neededBy:
      'the TLS tests (test/common/security.test.ts), which make their certificates at test time',
    present: () => succeeds('openssl', ['version']),
  },
  {
    debianPackage: 'redis-server',
    neededBy: 'the Redis cluster-mode tests, which start a real redis-server',
    present: () => succeeds('redis-server', ['--version']),
  },
];

/** The prerequisites missing on this machine. */
export function missingPrerequisites(): Prerequisite[] {
  return PREREQUISITES.filter((p) => !p.present());
}

/** The exact command that installs `packages` on Debian. */
export function installCommand(packages: readonly string[], asRoot: boolean): string {
  const sudo = asRoot ? '' : 'sudo ';
  return (
    `${sudo}apt-get update && ` +
    `${sudo}apt-get install -y --no-install-recommends ${packages.join(' ')}`
  );
}

/** A prerequisite is absent: the run stops with what to do, before any test starts. */
export class SetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SetupError';
  }
}

/** The message naming what is missing, who needs it, and the command that fixes it. */
export function describeMissing(missing: readonly Prerequisite[], why: string): string {
  const lines = missing.map((p) => `  - ${p.debianPackage}: ${p.neededBy}`);
  return [
    `set-up error: the tests need Debian packages that are not installed (${why}):`,
    ...lines,
    'Install them with:',
    `  ${installCommand(
      missing.map((p) => p.debianPackage),
      false,
    )}`,
    'then run `npm test` again.',
  ].join('\n');
}

/**
 * Installs the missing prerequisites with apt-get when this process may (root on a machine
 * with apt-get); otherwise throws a SetupError with the exact command. Returns the packages
 * it installed.
 */
export function ensurePrerequisites(log: (line: string) => void): string[] {
  const missing = missingPrerequisites();
  if (missing.length === 0) return [];
  const names = missing.map((p) => p.debianPackage);
  const isRoot = process.getuid?.() === 0;
  const hasApt = existsSync('/usr/bin/apt-get');
  if (!hasApt) throw new SetupError(describeMissing(missing, 'this machine has no apt-get'));
  if (!isRoot)
    throw new SetupError(describeMissing(missing, 'installing them needs root, and this is not'));
  log(`set-up: installing ${names.join(', ')} with apt-get (once; later runs find them)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...names], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env,
    });
  } catch (err) {
    throw new SetupError(
      describeMissing(missing, `apt-get failed: ${(err as Error).message.split('\n')[0]}`),
    );
  }
  const still = missingPrerequisites();
  if (still.length > 0)
    throw new SetupError(describeMissing(still, 'apt-get installed them but they do not work'));
  return names;
}

/**
 * For a test that needs `debianPackage`: throws the set-up error (with the command) when it
 * is absent, so that a test run without `npm test`'s set-up step fails with the fix rather
 * than with ENOENT, and never skips.
 */
export function requirePrerequisite(debianPackage: string): void {
  const p = PREREQUISITES.find((q) => q.debianPackage === debianPackage);
  if (!p) throw new Error(`no prerequisite named ${debianPackage}`);
  if (!p.present())
    throw new SetupError(
      describeMissing([p], 'run `npm test`, whose set-up step installs them, or install them'),
    );
}
