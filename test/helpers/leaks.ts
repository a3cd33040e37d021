/**
 * Leak checks for integration tests (DESIGN.md decision 5: a started and stopped component leaves
 * no handles behind). Take a snapshot when a test file starts; assert at its end.
 *
 * Two sources are watched. `process.getActiveResourcesInfo()` lists servers, sockets and ref'd
 * timers, but leaves out unref'd timers, and every sweeper interval of the proxy is unref'd
 * (tunnel-sweeper.ts, classify-sweeper.ts, http-engine.ts): a sweeper left running after stop would
 * pass unseen. So this module also records every timer that `unref()` is called on, and counts
 * those still armed.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** Resource kinds that a leaked server, socket, pool or timer leaves behind. */
const WATCHED = /^(TCP|Pipe|UDP|Timeout|TLS)/;

/** The label under which armed unref'd timers are reported. */
const UNREFD = "unref'd Timeout";

/** A timer as Node builds it; `_destroyed` is the field lib/internal/timers.js keeps. */
interface TrackedTimer extends NodeJS.Timeout {
  _destroyed?: boolean;
}

/** Timers that `unref()` was called on in this process, with where it was called. */
const unrefd = new Map<TrackedTimer, { stack?: string }>();

/**
 * Every Timeout shares one prototype, however it was made (global `setInterval`, an import from
 * `node:timers`, a library). Wrapping its `unref` costs nothing on the hot path: code unrefs a
 * timer once, when it starts it. Node's own timers that skip `unref()` (socket timeouts, made by
 * the internal `setUnrefTimeout`) belong to sockets, which the handle count already sees.
 */
function trackUnref(): void {
  const probe = setTimeout(() => {}, 0);
  clearTimeout(probe);
  const proto = Object.getPrototypeOf(probe) as { unref(this: TrackedTimer): TrackedTimer };
  const unref = proto.unref;
  proto.unref = function trackedUnref(this: TrackedTimer): TrackedTimer {
    if (unrefd.size >= 1024) {
      for (const timer of unrefd.keys()) if (!isArmed(timer)) unrefd.delete(timer);
    }
    if (!unrefd.has(this)) {
      const site: { stack?: string } = {};
      Error.captureStackTrace(site, trackedUnref);
      unrefd.set(this, site);
    }
    return unref.call(this);
  };
}
trackUnref();

/**
 * Whether a timer will still fire: an interval until cleared, a timeout until it fired or was
 * cleared. If a Node release drops `_destroyed`, every unref'd timer reads as armed and the
 * check fails loudly rather than passing blind.
 */
function isArmed(timer: TrackedTimer): boolean {
  return timer._destroyed !== true;
}

/** Armed timers that nothing refs: invisible to `getActiveResourcesInfo()`. */
function armedUnrefd(): Set<TrackedTimer> {
  const armed = new Set<TrackedTimer>();
  for (const timer of unrefd.keys()) if (isArmed(timer) && !timer.hasRef()) armed.add(timer);
  return armed;
}

/** Counts of watched resource kinds, by name, and the unref'd timers armed at that moment. */
export interface HandleSnapshot {
  readonly counts: ReadonlyMap<string, number>;
  readonly unrefdTimers: ReadonlySet<object>;
}

/** Counts the watched resources now active in this process. */
export function handleSnapshot(): HandleSnapshot {
  const counts = new Map<string, number>();
  for (const name of process.getActiveResourcesInfo()) {
    if (WATCHED.test(name)) counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return { counts, unrefdTimers: armedUnrefd() };
}

/** Kinds that have more active resources now than in `baseline`, as `kind +n` strings. */
function grownSince(baseline: HandleSnapshot): string[] {
  const now = handleSnapshot();
  const grown: string[] = [];
  for (const [name, count] of now.counts) {
    const extra = count - (baseline.counts.get(name) ?? 0);
    if (extra > 0) grown.push(`${name} +${extra}`);
  }
  const timers = [...now.unrefdTimers].filter((timer) => !baseline.unrefdTimers.has(timer));
  if (timers.length > 0) {
    const sites = new Map<string, number>();
    for (const timer of timers) {
      const site = unrefSite(timer as TrackedTimer);
      sites.set(site, (sites.get(site) ?? 0) + 1);
    }
    const where = [...sites].map(([site, n]) => (n > 1 ? `${site} x${n}` : site));
    grown.push(`${UNREFD} +${timers.length} (unref'd at: ${where.join('; ')})`);
  }
  return grown;
}

/** The first frame of a timer's `unref()` call outside this file, for the failure message. */
function unrefSite(timer: TrackedTimer): string {
  const stack = unrefd.get(timer)?.stack ?? '';
  const frame = stack.split('\n').find((line) => line.trimStart().startsWith('at '));
  return frame?.trim().replace(/^at /, '') ?? 'unknown';
}

/**
 * Throws unless the process holds no more watched resources than it did at `baseline`.
 *
 * Waits up to `graceMs` first: a socket closed by its peer is released a few event-loop turns
 * after `close()` resolves, and a library's housekeeping timer (undici's clock, about 1 s) stops
 * a tick after its last user; neither is a leak.
 */
export async function assertNoLeaks(baseline: HandleSnapshot, graceMs = 2000): Promise<void> {
  const deadline = Date.now() + graceMs;
  let grown = grownSince(baseline);
  while (grown.length > 0 && Date.now() < deadline) {
    await sleep(20);
    grown = grownSince(baseline);
  }
  if (grown.length > 0) throw new Error(`leaked handles: ${grown.join(', ')}`);
}
