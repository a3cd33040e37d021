/**
 * Leak checks for integration tests (DESIGN.md decision 5: a started and stopped component leaves
 * no handles behind). Take a snapshot when a test file starts; assert at its end.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** Resource kinds that a leaked server, socket, pool or timer leaves behind. */
const WATCHED = /^(TCP|Pipe|UDP|Timeout|TLS)/;

/** Counts of watched resource kinds, by name. */
export type HandleSnapshot = ReadonlyMap<string, number>;

/** Counts the watched resources now active in this process. */
export function handleSnapshot(): HandleSnapshot {
  const counts = new Map<string, number>();
  for (const name of process.getActiveResourcesInfo()) {
    if (WATCHED.test(name)) counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

/** Kinds that have more active resources now than in `baseline`, as `kind +n` strings. */
function grownSince(baseline: HandleSnapshot): string[] {
  const grown: string[] = [];
  for (const [name, count] of handleSnapshot()) {
    const extra = count - (baseline.get(name) ?? 0);
    if (extra > 0) grown.push(`${name} +${extra}`);
  }
  return grown;
}

/**
 * Throws unless the process holds no more watched resources than it did at `baseline`.
 *
 * Waits up to `graceMs` first: a socket closed by its peer is released a few event-loop turns
 * after `close()` resolves, and that is not a leak.
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
