/** CPU time used by a process tree, from /proc/<pid>/stat, and time the hypervisor took from this VM, from /proc/stat. */
import { readFile } from 'node:fs/promises';
import { processTree } from './process-tree.ts';

// USER_HZ: the unit of utime/stime in /proc/<pid>/stat is fixed at 100 per second for user space
// on every Linux architecture (`getconf CLK_TCK`), whatever the kernel's internal HZ.
const TICKS_PER_S = 100;

async function ticks(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // After the parenthesised command name: state is field 3, utime field 14, stime field 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/**
 * User plus system CPU seconds consumed so far by `roots` and their live descendants, or null
 * when `roots` is empty. Resolution is 10 ms per process.
 */
export async function cpuSeconds(roots: readonly number[]): Promise<number | null> {
  if (roots.length === 0) return null;
  let total = 0;
  for (const pid of await processTree(roots)) total += await ticks(pid);
  return total / TICKS_PER_S;
}

/**
 * CPU seconds the hypervisor has taken from this machine's virtual CPUs so far ("steal", all CPUs
 * summed, from the first line of /proc/stat), or null where the kernel does not report it. On a
 * shared VM this is the outside load that no contender's own figures show: a round with much
 * steal measured the neighbours as much as the proxy (docs/benchmarks.md, "Reading the figures").
 */
export async function hostStealSeconds(): Promise<number | null> {
  try {
    const stat = await readFile('/proc/stat', 'utf8');
    const line = stat.slice(0, stat.indexOf('\n'));
    // cpu user nice system idle iowait irq softirq steal ...
    const fields = line.trim().split(/\s+/);
    if (fields[0] !== 'cpu' || fields.length < 9) return null;
    const steal = Number(fields[8]);
    return Number.isFinite(steal) ? steal / TICKS_PER_S : null;
  } catch {
    return null;
  }
}

/**
 * Steal between two {@link hostStealSeconds} readings taken around a run of `durationS`, in percent
 * of one CPU, or null when either reading is missing.
 */
export function stealPercent(before: number | null, after: number | null, durationS: number): number | null {
  return before === null || after === null ? null : ((after - before) / durationS) * 100;
}
