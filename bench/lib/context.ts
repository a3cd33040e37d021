/** What a scenario gets to work with: options, a temp directory, peers, and process spawning. */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.ts';
import type { PeerInfo, PeerName } from './peers.ts';
import type { ManagedProcess, ProcessSupervisor, SpawnOptions } from './processes.ts';
import type { ScenarioResult } from './results.ts';

/** Options of one run, from the command line. */
export interface RunOptions {
  /** Seconds of each measured load run. */
  readonly durationS: number;
  /** Seconds of load before each measured run, whose figures are dropped. */
  readonly warmupS: number;
  /** Measured runs per contender; contenders take turns, in a rotated order each round. */
  readonly rounds: number;
  /**
   * Whether `rounds` was asked for (`--rounds`, `--quick`); otherwise a scenario may measure more
   * rounds than `rounds` ({@link Comparison.goalRounds}).
   */
  readonly roundsExplicit: boolean;
  /** Pin load generator and backend to CPU 0 and the proxy under test to CPU 1 (taskset). */
  readonly pin: boolean;
  /** Repository root of the Switchyard to measure (default: the one holding this harness). */
  readonly switchyardRoot: string;
  /** Node binary that runs Switchyard. */
  readonly nodeBinary: string;
}

/** Who a process is, for CPU pinning. */
export type CpuRole = 'client' | 'backend' | 'proxy';

/** A process to start within a scenario; its log goes to the scenario's directory. */
export interface ScenarioSpawn extends Omit<SpawnOptions, 'logFile' | 'cpus'> {
  readonly role: CpuRole;
}

/** Everything a scenario may use. Processes it spawns are stopped when it ends. */
export class ScenarioContext {
  readonly options: RunOptions;
  /** Scratch directory of this scenario, removed at the end of the run. */
  readonly dir: string;
  readonly peers: PeerInfo;
  readonly supervisor: ProcessSupervisor;
  /** Teardown steps run when the scenario ends (or the run is interrupted). */
  readonly cleanup: Cleanup;
  /** Aborted when the run is interrupted (Ctrl-C); long loops should stop early. */
  readonly signal: AbortSignal;
  readonly #log: (line: string) => void;

  constructor(init: {
    options: RunOptions;
    dir: string;
    peers: PeerInfo;
    supervisor: ProcessSupervisor;
    cleanup: Cleanup;
    signal: AbortSignal;
    log: (line: string) => void;
  }) {
    this.options = init.options;
    this.dir = init.dir;
    this.peers = init.peers;
    this.supervisor = init.supervisor;
    this.cleanup = init.cleanup;
    this.signal = init.signal;
    this.#log = init.log;
  }

  /** Progress line on stderr. */
  log(line: string): void {
    this.#log(line);
  }

  /** The `taskset -c` CPU list for a role, or null when not pinning. */
  cpus(role: CpuRole): string | null {
    if (!this.options.pin) return null;
    return role === 'proxy' ? '1' : '0';
  }

  /** A subdirectory of the scenario directory, created if needed. */
  async subdir(name: string): Promise<string> {
    const path = join(this.dir, name);
    await mkdir(path, { recursive: true, mode: 0o755 });
    return path;
  }

  /** Starts a process, logging to `<dir>/<name>.log`, stopped when the scenario ends. */
  async spawn(options: ScenarioSpawn): Promise<ManagedProcess> {
    const { role, ...rest } = options;
    const proc = await this.supervisor.spawn({
      ...rest,
      logFile: join(this.dir, `${options.name}.log`),
      cpus: this.cpus(role),
    });
    this.cleanup.add(`stop ${options.name}`, () => proc.stop());
    return proc;
  }
}

/** One benchmark scenario: a job, the contenders doing it, and how they are measured. */
export interface Scenario {
  /** Name used by `--only` and in results. */
  readonly name: string;
  /** One sentence for the docs. */
  readonly description: string;
  /** Programs it needs, installed from Debian when missing. */
  readonly peers: readonly PeerName[];
  /** Starts everything it needs, measures, and returns figures. Cleanup is the caller's job. */
  run(ctx: ScenarioContext): Promise<ScenarioResult>;
}
