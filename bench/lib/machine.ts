/** A description of the machine a run happened on, for the results file. */
import { readFile } from 'node:fs/promises';
import { availableParallelism, release, totalmem } from 'node:os';

/** The machine a run happened on. */
export interface MachineInfo {
  /** CPUs this process may use (what `nproc` prints). */
  readonly cpus: number;
  /** `model name` from /proc/cpuinfo. */
  readonly cpuModel: string;
  /** Kernel release (`uname -r`). */
  readonly kernel: string;
  /** PRETTY_NAME from /etc/os-release. */
  readonly os: string;
  readonly memoryMiB: number;
  /** Node version running the harness and Switchyard. */
  readonly node: string;
}

async function readOr(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return '';
  }
}

/** Collects the facts a reader needs to judge the figures. */
export async function machineInfo(): Promise<MachineInfo> {
  const cpuinfo = await readOr('/proc/cpuinfo');
  const osRelease = await readOr('/etc/os-release');
  return {
    cpus: availableParallelism(),
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown',
    kernel: release(),
    os: /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(osRelease)?.[1] ?? 'unknown',
    memoryMiB: Math.round(totalmem() / 2 ** 20),
    node: process.version,
  };
}
