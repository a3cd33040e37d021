/**
 * The common shape of a macro benchmark: several contenders serve the same load, one after the
 * other, in rounds; each gets a warm-up, a measured wrk run and a memory reading; ratios compare
 * Switchyard with the others. Scenarios describe contenders and load; this file does the rest.
 */
import type { RunOptions, ScenarioContext } from './context.ts';
import { cpuSeconds, hostStealSeconds, stealPercent } from './cpu.ts';
import { type MemorySample, sampleMemory } from './memory.ts';
import { LOOPBACK } from './ports.ts';
import { median } from './quiet-rounds.ts';
import type {
  ContenderResult,
  ContenderRole,
  LoadSummary,
  PrimaryMetric,
  RatioResult,
  RoundResult,
  ScenarioResult,
} from './results.ts';
import { runWrk, type WrkLoad } from './wrk.ts';

/** A started contender: where to send load, and which processes are its own. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
  /** Root pids whose process trees make up the contender (empty for `direct`). */
  readonly pids: readonly number[];
  /**
   * Request headers this contender needs on top of the load's (a gateway's routing headers, for
   * instance), sent by wrk and by the comparison's `check`.
   */
  readonly headers?: Readonly<Record<string, string>>;
  /** `https` when the contender's port speaks TLS (wrk then does a TLS handshake); default `http`. */
  readonly scheme?: 'http' | 'https';
}

/** One way of doing the scenario's job. */
export interface Contender {
  readonly name: string;
  readonly role: ContenderRole;
  /** What exactly runs, for the docs. */
  readonly description: string;
  /** Starts it (processes via `ctx.spawn`, so they are stopped with the scenario). */
  start(ctx: ScenarioContext): Promise<Endpoint>;
}

/** A comparison: the contenders, the load, and which ratios to report. */
export interface Comparison {
  readonly load: WrkLoad;
  readonly contenders: readonly Contender[];
  /** `[subject, reference]` pairs by contender name. */
  readonly ratios: ReadonlyArray<readonly [string, string]>;
  readonly primary: PrimaryMetric;
  /**
   * Sends one request of the load to a started contender and throws when the answer is wrong.
   * A contender that fails it is reported as failed and not measured: wrk counts a fast error
   * page as a request like any other.
   */
  readonly check?: (origin: string, load: WrkLoad) => Promise<void>;
  /**
   * Rounds to measure unless the command line sets them: for scenarios whose goal ratio lies
   * within the spread of single rounds, where 3 rounds cannot tell met from missed (round-to-round
   * ratios of 0.76x-1.07x on tcp-small, docs/benchmarks.md "Issues 2 and 3 across runs").
   */
  readonly goalRounds?: number;
}

/**
 * Share of a round's requests that may fail (HTTP status ≥ 400, socket errors, timeouts) before the
 * contender is reported as failed rather than measured: a proxy answering errors quickly would
 * otherwise look fast.
 */
const MAX_ERROR_SHARE = 0.01;

interface Live {
  readonly contender: Contender;
  readonly endpoint: Endpoint | null;
  error: string | null;
  readonly rounds: RoundResult[];
  idle: MemorySample | null;
  loaded: MemorySample | null;
}

function summarize(rounds: readonly RoundResult[]): LoadSummary | null {
  if (rounds.length === 0) return null;
  const pick = (f: (r: RoundResult) => number): number => median(rounds.map(f));
  const cpu = rounds.filter((r) => r.proxyCpuS !== null) as Array<RoundResult & { proxyCpuS: number }>;
  const steal = rounds.flatMap((r) => (r.hostStealPercent == null ? [] : [r.hostStealPercent]));
  return {
    rounds: rounds.length,
    requestsPerS: pick((r) => r.requestsPerS),
    transferMiBps: pick((r) => r.transferMiBps),
    latencyUs: {
      p50: pick((r) => r.latencyUs.p50),
      p90: pick((r) => r.latencyUs.p90),
      p99: pick((r) => r.latencyUs.p99),
      p999: pick((r) => r.latencyUs.p999),
    },
    proxyCpuPercent: cpu.length === 0 ? null : median(cpu.map((r) => (r.proxyCpuS / r.durationS) * 100)),
    proxyCpuUsPerRequest:
      cpu.length === 0 ? null : median(cpu.map((r) => (r.requests === 0 ? 0 : (r.proxyCpuS * 1e6) / r.requests))),
    hostStealPercent: steal.length === 0 ? null : median(steal),
    errors: rounds.reduce((sum, r) => sum + Object.values(r.errors).reduce((a, b) => a + b, 0), 0),
  };
}

function ratio(a: number | undefined, b: number | undefined): number | null {
  return a === undefined || b === undefined || b === 0 ? null : a / b;
}

/** Ratios `subject / reference` for each requested pair with figures on both sides. */
export function ratios(
  contenders: readonly ContenderResult[],
  pairs: ReadonlyArray<readonly [string, string]>,
): RatioResult[] {
  const byName = new Map(contenders.map((c) => [c.name, c.error === null ? c.summary : null]));
  return pairs.map(([subject, reference]) => {
    const s = byName.get(subject) ?? undefined;
    const r = byName.get(reference) ?? undefined;
    return {
      subject,
      reference,
      requestsPerS: ratio(s?.requestsPerS, r?.requestsPerS),
      transferMiBps: ratio(s?.transferMiBps, r?.transferMiBps),
      p50: ratio(s?.latencyUs.p50, r?.latencyUs.p50),
      p99: ratio(s?.latencyUs.p99, r?.latencyUs.p99),
      cpuPerRequest: ratio(s?.proxyCpuUsPerRequest ?? undefined, r?.proxyCpuUsPerRequest ?? undefined),
    };
  });
}

function brief(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function startAll(ctx: ScenarioContext, comparison: Comparison): Promise<Live[]> {
  const live: Live[] = [];
  for (const contender of comparison.contenders) {
    ctx.signal.throwIfAborted();
    try {
      const endpoint = await contender.start(ctx);
      let error: string | null = null;
      if (comparison.check !== undefined) {
        try {
          await comparison.check(origin(endpoint), loadFor(endpoint, comparison.load));
        } catch (failure) {
          error = `check: ${brief(failure)}`;
          ctx.log(`  ${contender.name}: ${error}`);
        }
      }
      live.push({
        contender,
        endpoint,
        error,
        rounds: [],
        idle: await sampleMemory(endpoint.pids),
        loaded: null,
      });
    } catch (error) {
      ctx.log(`  ${contender.name}: failed to start: ${brief(error)}`);
      live.push({
        contender,
        endpoint: null,
        error: `start: ${brief(error)}`,
        rounds: [],
        idle: null,
        loaded: null,
      });
    }
  }
  return live;
}

function origin(endpoint: Endpoint): string {
  return `${endpoint.scheme ?? 'http'}://${endpoint.host}:${endpoint.port}`;
}

/** The load as this contender receives it: its own headers added to the load's. */
function loadFor(endpoint: Endpoint, load: WrkLoad): WrkLoad {
  return endpoint.headers === undefined ? load : { ...load, headers: { ...load.headers, ...endpoint.headers } };
}

/** Why a round counts as failed (too many errors), or null. */
function failedRound(result: RoundResult): string | null {
  const e = result.errors;
  const errors = e.connect + e.read + e.write + e.status + e.timeout;
  if (result.requests > 0 && errors <= result.requests * MAX_ERROR_SHARE) return null;
  const kinds = Object.entries(e)
    .filter(([, n]) => n > 0)
    .map(([kind, n]) => `${kind === 'status' ? 'HTTP status ≥ 400' : kind} ${n}`);
  return `${errors} errors in ${result.requests} requests (${kinds.join(', ') || 'no response at all'})`;
}

async function measure(ctx: ScenarioContext, entry: Live, load: WrkLoad): Promise<void> {
  const endpoint = entry.endpoint!;
  const base = {
    supervisor: ctx.supervisor,
    dir: ctx.dir,
    origin: origin(endpoint),
    load: loadFor(endpoint, load),
    cpus: ctx.cpus('client'),
  };
  const { warmupS, durationS } = ctx.options;
  if (warmupS > 0) await runWrk({ ...base, durationS: warmupS });
  const cpuBefore = await cpuSeconds(endpoint.pids);
  const stealBefore = await hostStealSeconds();
  const wrk = await runWrk({ ...base, durationS });
  const stealAfter = await hostStealSeconds();
  const cpuAfter = await cpuSeconds(endpoint.pids);
  const proxyCpuS = cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore;
  const hostStealPercent = stealPercent(stealBefore, stealAfter, wrk.durationS);
  const result: RoundResult = { ...wrk, proxyCpuS, hostStealPercent };
  entry.rounds.push(result);
  entry.loaded = await sampleMemory(endpoint.pids);
  const errors = Object.values(result.errors).reduce((a, b) => a + b, 0);
  ctx.log(
    `  ${entry.contender.name.padEnd(14)} ${result.requestsPerS.toFixed(0).padStart(8)} req/s ` +
      `${result.transferMiBps.toFixed(1).padStart(8)} MiB/s  p50 ${result.latencyUs.p50} µs  ` +
      `p99 ${result.latencyUs.p99} µs` +
      (proxyCpuS === null ? '' : `  proxy CPU ${((proxyCpuS / result.durationS) * 100).toFixed(0)}%`) +
      (hostStealPercent === null ? '' : `  steal ${hostStealPercent.toFixed(0)}%`) +
      (errors > 0 ? `  errors ${errors}` : ''),
  );
  const failure = failedRound(result);
  if (failure !== null) {
    entry.error = `load: ${failure}`;
    ctx.log(`  ${entry.contender.name}: failed: ${failure}`);
  }
}

/** {@link Comparison.goalRounds} of tcp-small, http-small and http-close, whose goals are within a round's spread. */
export const GOAL_ROUNDS = 9;

/** Rounds a comparison measures: `--rounds` when given, else at least the scenario's goalRounds. */
function roundsOf(options: RunOptions, comparison: Pick<Comparison, 'goalRounds'>): number {
  if (options.roundsExplicit) return options.rounds;
  return Math.max(options.rounds, comparison.goalRounds ?? 0);
}

/**
 * Starts every contender, measures each {@link roundsOf} times (rotating the order each round
 * so slow drift of a shared machine does not always hit the same one), reads memory, and
 * computes ratios. A contender that fails (to start, the `check`, or under load with more than 1%
 * of requests failing) is reported with its error and left out of the ratios; the others still run.
 */
export async function compare(
  ctx: ScenarioContext,
  comparison: Comparison,
): Promise<Pick<ScenarioResult, 'contenders' | 'ratios' | 'primary'>> {
  const live = await startAll(ctx, comparison);
  const rounds = roundsOf(ctx.options, comparison);
  for (let round = 0; round < rounds; round++) {
    if (rounds > 1) ctx.log(` round ${round + 1}/${rounds}`);
    const order = live.map((_, i) => live[(i + round) % live.length]);
    for (const entry of order) {
      ctx.signal.throwIfAborted();
      if (entry.endpoint === null || entry.error !== null) continue;
      try {
        await measure(ctx, entry, comparison.load);
      } catch (error) {
        entry.error = `load: ${brief(error)}`;
        ctx.log(`  ${entry.contender.name}: ${entry.error}`);
      }
    }
  }
  const contenders: ContenderResult[] = live.map((entry) => ({
    name: entry.contender.name,
    role: entry.contender.role,
    description: entry.contender.description,
    error: entry.error,
    rounds: entry.rounds,
    // A failed contender's figures are kept in `rounds` but not summarised, so no table shows
    // the speed of its error pages.
    summary: entry.error === null ? summarize(entry.rounds) : null,
    memory: { idle: entry.idle, loaded: entry.loaded },
    // Scenarios that measure lag (withEventLoopLag) or figures of their own fill these in.
    eventLoopLagP99Ms: null,
    extra: {},
  }));
  return { contenders, ratios: ratios(contenders, comparison.ratios), primary: comparison.primary };
}

/** The loopback endpoint of a contender listening on `port` with the given processes. */
export function loopbackEndpoint(port: number, pids: readonly number[]): Endpoint {
  return { host: LOOPBACK, port, pids };
}
