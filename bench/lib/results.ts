/** The shape of bench/results/*.json: what a run measured, where, and how. */
import type { MachineInfo } from './machine.ts';
import type { MemorySample } from './memory.ts';
import type { LatencyUs, WrkErrors, WrkResult } from './wrk.ts';

/**
 * What a contender is to the comparison: `direct` is the load generator talking to the backend
 * with no proxy, `subject` is Switchyard, `peer` is another proxy doing the same job.
 */
export type ContenderRole = 'direct' | 'subject' | 'peer';

/** The metric a scenario is about, used to order and to headline its ratios. */
export type PrimaryMetric = 'requestsPerS' | 'transferMiBps';

/** One measured run of one contender. */
export interface RoundResult extends WrkResult {
  /** CPU seconds the proxy's processes used during the run; null for `direct`. */
  readonly proxyCpuS: number | null;
  /**
   * CPU time the hypervisor took from this VM during the run, in percent of one CPU (all CPUs
   * summed); null where the kernel does not report steal. Absent in results written before it
   * was recorded.
   */
  readonly hostStealPercent?: number | null;
}

/** A contender's figures over all rounds: the median of each figure across rounds. */
export interface LoadSummary {
  readonly rounds: number;
  readonly requestsPerS: number;
  readonly transferMiBps: number;
  readonly latencyUs: Pick<LatencyUs, 'p50' | 'p90' | 'p99' | 'p999'>;
  /** CPU the proxy used, in percent of one core (100 = one core saturated); null for `direct`. */
  readonly proxyCpuPercent: number | null;
  /**
   * Proxy CPU time per request in microseconds; null for `direct`. Less sensitive than
   * requests/s to other load on a shared machine, since it counts only the proxy's own time.
   */
  readonly proxyCpuUsPerRequest: number | null;
  /** Median over rounds of {@link RoundResult.hostStealPercent}; null or absent when not recorded. */
  readonly hostStealPercent?: number | null;
  /** Errors of all kinds summed over all rounds (see `rounds[].errors` for the kinds). */
  readonly errors: number;
}

/** One contender in one scenario. */
export interface ContenderResult {
  readonly name: string;
  readonly role: ContenderRole;
  /** What exactly ran, such as `haproxy 2.6 mode tcp, nbthread 1`. */
  readonly description: string;
  /** Why it has no figures (failed to start, crashed under load), or null. */
  readonly error: string | null;
  /** Every measured run, in order. */
  readonly rounds: readonly RoundResult[];
  readonly summary: LoadSummary | null;
  /** Memory of the proxy's processes; null for `direct`, which has none. */
  readonly memory: {
    /** After start, before any load. */
    readonly idle: MemorySample | null;
    /** Right after its last measured run; `hwmKiB` is the peak over the whole life. */
    readonly loaded: MemorySample | null;
  };
  /** Switchyard's event-loop lag p99 under load (ms past the monitor's sampling interval), or null. */
  readonly eventLoopLagP99Ms: number | null;
  /** Figures particular to a scenario. */
  readonly extra: Readonly<Record<string, number | string | null>>;
}

/** `subject` divided by `reference`, per figure; null where either side has no figure. */
export interface RatioResult {
  readonly subject: string;
  readonly reference: string;
  readonly requestsPerS: number | null;
  readonly transferMiBps: number | null;
  readonly p50: number | null;
  readonly p99: number | null;
  /** Proxy CPU per request; null when either side is `direct`. */
  readonly cpuPerRequest: number | null;
}

/** One scenario of a run. */
export interface ScenarioResult {
  readonly name: string;
  readonly description: string;
  /** The load applied to every contender, as plain facts for the reader. */
  readonly load: Readonly<Record<string, string | number>>;
  readonly primary: PrimaryMetric;
  readonly contenders: readonly ContenderResult[];
  readonly ratios: readonly RatioResult[];
  readonly notes: readonly string[];
  /** Why the scenario as a whole failed, or null. */
  readonly error?: string | null;
}

/** A whole run: bench/results/latest.json. */
export interface RunResults {
  readonly schemaVersion: 1;
  /** The command that produced the file, as a user would type it. */
  readonly command: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly machine: MachineInfo;
  /** 1, 5 and 15 minute load averages when the run started: other work on the machine shows here. */
  readonly loadAverage: readonly number[];
  /** Versions of nginx, HAProxy, wrk. */
  readonly peers: Readonly<Record<string, string>>;
  readonly switchyardCommit: string | null;
  readonly options: {
    readonly durationS: number;
    readonly warmupS: number;
    readonly rounds: number;
    readonly pin: boolean;
  };
  readonly scenarios: readonly ScenarioResult[];
}

export type { WrkErrors };
