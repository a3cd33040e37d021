/**
 * Child processes of a benchmark run: each is spawned in its own process group with its output in
 * a log file, tracked until it exits, and stopped (SIGTERM, then SIGKILL) group-wide, so that
 * forked workers (nginx) go with their master.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { open, readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';

/** How a process ended. */
export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** What to start. */
export interface SpawnOptions {
  /** Short label used in logs and error messages. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** File receiving stdout and stderr (stderr only when `captureStdout` is set). */
  readonly logFile: string;
  /** Keep stdout in memory (for tools whose output is the result, such as wrk). */
  readonly captureStdout?: boolean;
  /** CPU list for `taskset -c`, or null to leave scheduling to the kernel. */
  readonly cpus?: string | null;
}

/** One spawned child process. */
export class ManagedProcess {
  /** Label given at spawn. */
  readonly name: string;
  /** Process id; also the id of its process group. */
  readonly pid: number;
  /** Where its output goes. */
  readonly logFile: string;
  /** Resolves once the process has exited. */
  readonly exited: Promise<ExitInfo>;
  #exit: ExitInfo | null = null;
  #stdout = '';

  constructor(name: string, child: ChildProcess, logFile: string) {
    if (child.pid === undefined) throw new Error(`${name}: spawn failed`);
    this.name = name;
    this.pid = child.pid;
    this.logFile = logFile;
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.#stdout += chunk;
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
    });
  }

  /** Exit status, or null while running. */
  get exit(): ExitInfo | null {
    return this.#exit;
  }

  /** Captured stdout (only with `captureStdout`). */
  get stdout(): string {
    return this.#stdout;
  }

  /** The last lines of the log file, for error messages. */
  async logTail(lines = 20): Promise<string> {
    try {
      const text = await readFile(this.logFile, 'utf8');
      return text.trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /**
   * Stops the whole process group: SIGTERM, then SIGKILL after `graceMs`. Safe to call again or
   * after the process has exited.
   */
  async stop(graceMs = 3000): Promise<void> {
    if (!signalGroup(this.pid, 'SIGTERM')) return;
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline) {
      if (this.#exit !== null && !signalGroup(this.pid, 0)) return;
      await delay(25);
    }
    signalGroup(this.pid, 'SIGKILL');
    await Promise.race([this.exited, delay(2000)]);
  }
}

/** Sends a signal to a process group; false when no member of the group is left. */
function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/** Spawns and tracks child processes; `stopAll()` ends every one still alive. */
export class ProcessSupervisor {
  // Kept after the leader exits: forked group members may outlive it.
  readonly #started = new Set<ManagedProcess>();

  #closed = false;

  /** Starts a process in its own process group, with output going to `options.logFile`. */
  async spawn(options: SpawnOptions): Promise<ManagedProcess> {
    if (this.#closed) throw new Error(`not starting ${options.name}: the run is shutting down`);
    const log = await open(options.logFile, 'a');
    try {
      const [command, args] =
        options.cpus == null
          ? [options.command, options.args]
          : ['taskset', ['-c', options.cpus, options.command, ...options.args]];
      const child = spawn(command, args, {
        cwd: options.cwd,
        env: options.env ?? process.env,
        detached: true,
        stdio: ['ignore', options.captureStdout ? 'pipe' : log.fd, log.fd],
      });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
      const proc = new ManagedProcess(options.name, child, options.logFile);
      this.#started.add(proc);
      if (this.#closed) {
        await proc.stop();
        throw new Error(`stopped ${options.name}: the run is shutting down`);
      }
      return proc;
    } finally {
      await log.close();
    }
  }

  /** Stops every process group still running and refuses to start new ones. */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#started];
    this.#started.clear();
    await Promise.all(all.map((p) => p.stop()));
  }
}
