import { ensurePrerequisites, SetupError } from './prerequisites.js';

/**
 * `npm test`'s set-up step, before vitest starts: makes sure the Debian packages the
 * tests use are installed (installing the missing ones when it runs as root), or stops
 * with the command that installs them. No test then fails for a missing tool, and none
 * is skipped for one.
 */
try {
  const installed = ensurePrerequisites((line) => console.log(line));
  console.log(
    installed.length > 0
      ? `set-up: installed ${installed.join(', ')}; every test prerequisite is present`
      : 'set-up: every test prerequisite is present',
  );
} catch (err) {
  if (!(err instanceof SetupError)) throw err;
  console.error(err.message);
  process.exitCode = 1;
}
