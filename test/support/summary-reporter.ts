import type { Reporter, TestModule } from 'vitest/node';

/**
 * Prints the closing line CI reads: `N passed, N failed, N skipped`.
 * A file whose hooks or collection failed counts as one failure even when every
 * test in it passed (an afterAll that times out must not pass silently), and so
 * does each unhandled error.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(
    testModules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<unknown>,
  ): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of testModules) {
      let failedHere = 0;
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failedHere++;
        else skipped++;
      }
      let suiteErrors = 0;
      for (const suite of mod.children.allSuites()) suiteErrors += suite.errors().length;
      if (
        failedHere === 0 &&
        (mod.state() === 'failed' || mod.errors().length > 0 || suiteErrors > 0)
      )
        failedHere = 1;
      failed += failedHere;
    }
    failed += unhandledErrors.length;
    process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
