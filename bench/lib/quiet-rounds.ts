/**
 * Ratios over the rounds the hypervisor left alone. Each round measures every contender once, in
 * rotated order, minutes apart at most; on the shared VM some rounds lose half a CPU or more to
 * steal (recorded per round since 2026-11-22, cpu.ts `hostStealSeconds`), and the contender that
 * is busy all the time loses the most. This pairs round i of the subject with round i of the
 * reference, keeps the rounds where both had less than {@link QUIET_STEAL_PERCENT} of steal,
 * and takes the median of the per-round ratios. Reported beside the medians over all rounds
 * (docs/benchmarks.md, "Reading the figures"), never instead of them.
 */
import type { ContenderResult, RoundResult } from './results.ts';

/** Host steal, in percent of one CPU, under which a round counts as quiet. */
export const QUIET_STEAL_PERCENT = 5;

/** The median of `values` (not empty). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** `subject / reference` over the quiet rounds of both. */
export interface QuietRatios {
  readonly subject: string;
  readonly reference: string;
  /** Rounds where both were quiet. */
  readonly rounds: number;
  /** Rounds where steal was recorded for both. */
  readonly recorded: number;
  /** Median of the per-round req/s ratios, or null without quiet rounds. */
  readonly requestsPerS: number | null;
  /** Median of the per-round p99 ratios, or null without quiet rounds. */
  readonly p99: number | null;
}

function quiet(round: RoundResult): boolean {
  return round.hostStealPercent != null && round.hostStealPercent < QUIET_STEAL_PERCENT;
}

/**
 * {@link QuietRatios} for `subject / reference`, or null when either failed or the rounds carry
 * no steal figures (results written before they were recorded).
 */
export function quietRoundRatios(
  contenders: readonly ContenderResult[],
  subject: string,
  reference: string,
): QuietRatios | null {
  const s = contenders.find((c) => c.name === subject);
  const r = contenders.find((c) => c.name === reference);
  if (s === undefined || r === undefined || s.error !== null || r.error !== null) return null;
  const n = Math.min(s.rounds.length, r.rounds.length);
  let recorded = 0;
  const rps: number[] = [];
  const p99: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = s.rounds[i];
    const b = r.rounds[i];
    if (a.hostStealPercent == null || b.hostStealPercent == null) continue;
    recorded++;
    if (!quiet(a) || !quiet(b)) continue;
    if (b.requestsPerS > 0) rps.push(a.requestsPerS / b.requestsPerS);
    if (b.latencyUs.p99 > 0) p99.push(a.latencyUs.p99 / b.latencyUs.p99);
  }
  if (recorded === 0) return null;
  return {
    subject,
    reference,
    rounds: rps.length,
    recorded,
    requestsPerS: rps.length === 0 ? null : median(rps),
    p99: p99.length === 0 ? null : median(p99),
  };
}
