/** Resident memory of a process tree, from /proc/<pid>/status. */
import { readFile } from 'node:fs/promises';
import { processTree } from './process-tree.ts';

/** Memory of a set of processes, summed. */
export interface MemorySample {
  /** Sum of VmRSS (current resident set), KiB. */
  readonly rssKiB: number;
  /** Sum of VmHWM (peak resident set), KiB. */
  readonly hwmKiB: number;
  /** How many processes were summed (nginx: master and worker). */
  readonly processes: number;
}

function statusKiB(status: string, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
  return match ? Number(match[1]) : 0;
}

/**
 * Sums VmRSS and VmHWM over `roots` and their descendants (so a master process and its workers
 * count together). Null when none of them is alive. Shared pages are counted once per process,
 * as `ps` does.
 */
export async function sampleMemory(roots: readonly number[]): Promise<MemorySample | null> {
  if (roots.length === 0) return null;
  let rssKiB = 0;
  let hwmKiB = 0;
  let processes = 0;
  for (const pid of await processTree(roots)) {
    try {
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      rssKiB += statusKiB(status, 'VmRSS');
      hwmKiB += statusKiB(status, 'VmHWM');
      processes++;
    } catch {
      // Exited between listing and reading.
    }
  }
  return processes === 0 ? null : { rssKiB, hwmKiB, processes };
}
