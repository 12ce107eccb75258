/**
 * CPU time from Linux's /proc/<pid>/stat and /proc/<pid>/task/<tid>/stat, for the benchmarks
 * that account a process, its children or one of its threads.
 */
import { readFileSync } from 'node:fs';

/**
 * CPU time in clock ticks from a stat file: utime + stime, and with `reaped` also cutime +
 * cstime (the children it has waited for). NaN where the file cannot be read (another OS, or the
 * process or thread has gone).
 */
export function statCpuTicks(path: string, reaped = false): number {
  let stat: string;
  try {
    stat = readFileSync(path, 'latin1');
  } catch {
    return NaN;
  }
  // Fields after the parenthesised command name (which may hold spaces): state is the 3rd,
  // utime the 14th, stime the 15th, cutime and cstime the 16th and 17th.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const own = Number(f[11]) + Number(f[12]);
  return reaped ? own + Number(f[13]) + Number(f[14]) : own;
}
