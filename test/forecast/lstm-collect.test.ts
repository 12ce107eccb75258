import { runInNewContext } from 'node:vm';
import { expect, test } from 'vitest';
import { fullCollector } from '../../src/lps/forecast/lstm/collect.js';

test('the full collector frees what nothing reaches, and leaves --expose-gc as it found it', async () => {
  const before = runInNewContext('typeof gc') as string;
  const collect = fullCollector();
  expect(collect).toBeTypeOf('function');
  expect(runInNewContext('typeof gc')).toBe(before);

  let target: number[] | undefined = new Array<number>(100_000).fill(1);
  const ref = new WeakRef(target);
  const kept = new Array<number>(10).fill(2);
  const keptRef = new WeakRef(kept);
  target = undefined;
  // A WeakRef keeps its target alive until the end of the job that made it.
  await new Promise((resolve) => setTimeout(resolve, 0));
  collect!();
  expect(ref.deref()).toBeUndefined();
  expect(keptRef.deref()).toBe(kept);
});
