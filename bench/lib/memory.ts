/** Resident memory of a process tree, from /proc/<pid>/status. */
import { readdir, readFile } from 'node:fs/promises';

/** Memory of a set of processes, summed. */
export interface MemorySample {
  /** Sum of VmRSS (current resident set), KiB. */
  readonly rssKiB: number;
  /** Sum of VmHWM (peak resident set), KiB. */
  readonly hwmKiB: number;
  /** How many processes were summed (nginx: master and worker). */
  readonly processes: number;
}

async function parentOf(pid: number): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 4 (ppid) follows the command name, which may itself contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[1]);
  } catch {
    return null;
  }
}

/** `roots` and all their descendants that are alive now. */
async function processTree(roots: readonly number[]): Promise<number[]> {
  const entries = await readdir('/proc');
  const pids = entries.filter((e) => /^\d+$/.test(e)).map(Number);
  const parents = await Promise.all(pids.map(async (pid) => [pid, await parentOf(pid)] as const));
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parents) {
    if (ppid === null) continue;
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const alive = new Set(parents.filter(([, ppid]) => ppid !== null).map(([pid]) => pid));
  const out: number[] = [];
  const queue = roots.filter((pid) => alive.has(pid));
  while (queue.length > 0) {
    const pid = queue.shift()!;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
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
