/**
 * Switchyard's event-loop lag under load. Switchyard logs the percentiles of its event-loop delay
 * histogram (sampled every 10 ms from start to stop) in its last line when stopped with SIGTERM:
 * `{"eventLoopLag":{"p50Ms","p99Ms","maxMs"},"msg":"switchyard stopped"}`. Since the histogram
 * covers the whole life of the process, the harness measures lag on a separate, fresh instance
 * that does nothing but serve the scenario's load (warm-up, then one measured run) and is stopped
 * right after: in the measured comparison Switchyard sits idle while the other contenders take
 * their turns, and those idle samples would dilute the percentiles.
 *
 * Node's `monitorEventLoopDelay` records the interval between two firings of its sampling timer,
 * so an idle loop reads about one resolution (10 ms); src/observe/event-loop-monitor.ts subtracts
 * the resolution before logging, so the logged figures are the lag itself.
 */
import { readFile } from 'node:fs/promises';
import type { ScenarioContext } from './context.ts';
import { hostStealSeconds, stealPercent } from './cpu.ts';
import { LOOPBACK } from './ports.ts';
import type { ManagedProcess } from './processes.ts';
import type { ContenderResult } from './results.ts';
import { runWrk, type WrkLoad, type WrkResult } from './wrk.ts';

/** Event-loop delay percentiles in milliseconds, as Switchyard logs them. */
export interface EventLoopLag {
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Offset to remove from logged figures: 0, since Switchyard logs the delay past its resolution. */
export const SAMPLE_INTERVAL_MS = 0;

/** What the lag run measured: the lag, the figures as logged, and the load it was measured under. */
export interface LagRun {
  /** Delay past the sampling interval: the time the loop was blocked (or the process descheduled). */
  readonly lag: EventLoopLag;
  /** As Switchyard logged them (sampling interval included). */
  readonly logged: EventLoopLag;
  readonly load: WrkResult;
  /**
   * The hypervisor's steal during the measured run, in percent of one CPU, or null where not
   * reported: a descheduled process shows as lag, so a lag run under much steal measured the host.
   */
  readonly hostStealPercent: number | null;
}

function pastInterval(ms: number): number {
  return Math.max(0, Math.round((ms - SAMPLE_INTERVAL_MS) * 100) / 100);
}

function isLag(value: unknown): value is EventLoopLag {
  const v = value as Partial<EventLoopLag> | null;
  return typeof v?.p50Ms === 'number' && typeof v.p99Ms === 'number' && typeof v.maxMs === 'number';
}

/** The `eventLoopLag` of the last `switchyard stopped` line in a log, or null. */
export function parseStopLine(log: string): EventLoopLag | null {
  const lines = log.trimEnd().split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    if (!lines[i].includes('"switchyard stopped"')) continue;
    try {
      const entry = JSON.parse(lines[i]) as { msg?: string; eventLoopLag?: unknown };
      if (entry.msg === 'switchyard stopped' && isLag(entry.eventLoopLag)) return entry.eventLoopLag;
    } catch {
      // Not a JSON line; keep looking.
    }
  }
  return null;
}

/**
 * Starts a fresh Switchyard with `start` (its config must log at `info`), applies `load` for the
 * warm-up and one measured run, stops it with SIGTERM and reads the lag from its stop line.
 */
export async function measureEventLoopLag(
  ctx: ScenarioContext,
  start: () => Promise<{ port: number; process: ManagedProcess }>,
  load: WrkLoad,
): Promise<LagRun> {
  const { port, process: proc } = await start();
  const base = {
    supervisor: ctx.supervisor,
    dir: ctx.dir,
    origin: `http://${LOOPBACK}:${port}`,
    load,
    cpus: ctx.cpus('client'),
  };
  if (ctx.options.warmupS > 0) await runWrk({ ...base, durationS: ctx.options.warmupS });
  const stealBefore = await hostStealSeconds();
  const result = await runWrk({ ...base, durationS: ctx.options.durationS });
  const stealAfter = await hostStealSeconds();
  await proc.stop(10_000);
  const exit = proc.exit;
  const logged = parseStopLine(await readFile(proc.logFile, 'utf8'));
  if (logged === null) {
    throw new Error(
      `no "switchyard stopped" line with eventLoopLag (exit ${exit?.signal ?? exit?.code}):\n${await proc.logTail()}`,
    );
  }
  const lag = {
    p50Ms: pastInterval(logged.p50Ms),
    p99Ms: pastInterval(logged.p99Ms),
    maxMs: pastInterval(logged.maxMs),
  };
  return { lag, logged, load: result, hostStealPercent: stealPercent(stealBefore, stealAfter, result.durationS) };
}

/**
 * Runs {@link measureEventLoopLag} on a fresh Switchyard and attaches the result to the subject
 * contender (its p99, plus p50, max and the run's requests/s under `runLabel`). A failed lag run
 * adds a note instead; the comparison's figures stay as they are.
 */
export async function withEventLoopLag(
  ctx: ScenarioContext,
  contenders: readonly ContenderResult[],
  start: () => Promise<{ port: number; process: ManagedProcess }>,
  load: WrkLoad,
  runLabel: string,
  notes: string[],
): Promise<ContenderResult[]> {
  let lag: LagRun;
  try {
    ctx.log('  switchyard: one more loaded run on a fresh instance for event-loop lag');
    lag = await measureEventLoopLag(ctx, start, load);
    ctx.log(
      `  switchyard lag p50 ${lag.lag.p50Ms} ms  p99 ${lag.lag.p99Ms} ms  max ${lag.lag.maxMs} ms ` +
        `at ${lag.load.requestsPerS.toFixed(0)} req/s` +
        (lag.hostStealPercent === null ? '' : `  steal ${lag.hostStealPercent.toFixed(0)}%`),
    );
  } catch (error) {
    ctx.signal.throwIfAborted();
    const message = error instanceof Error ? error.message : String(error);
    ctx.log(`  switchyard: event-loop lag run failed: ${message}`);
    notes.push(`The event-loop lag run failed: ${message.split('\n')[0]}`);
    return [...contenders];
  }
  return contenders.map((c) =>
    c.role !== 'subject'
      ? c
      : {
          ...c,
          eventLoopLagP99Ms: lag.lag.p99Ms,
          extra: {
            ...c.extra,
            'lag p50 (ms)': lag.lag.p50Ms,
            'lag max (ms)': lag.lag.maxMs,
            [runLabel]: Math.round(lag.load.requestsPerS),
            ...(lag.hostStealPercent === null ? {} : { 'lag run host steal (%)': Math.round(lag.hostStealPercent) }),
          },
        },
  );
}
