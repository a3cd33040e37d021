/**
 * Target selection. A policy picks where a connection or request starts; failover then walks
 * the remaining targets in order from there.
 */
import type { TargetState } from './target-state.ts';

/** Load-balancing policies of the `forward` action. */
export type BalancePolicy = 'round-robin' | 'least-connections' | 'failover';

/** Picks the first target to try. `state.cursor` is the route's rotating counter. */
export function firstTarget(
  policy: BalancePolicy,
  targets: ReadonlyArray<TargetState>,
  state: { cursor: number },
): number {
  const n = targets.length;
  if (n === 1 || policy === 'failover') return 0;
  const start = state.cursor;
  state.cursor = start + 1 === n ? 0 : start + 1;
  if (policy === 'round-robin') return start;
  // least-connections: fewest in flight; ties go to the rotating start so equal targets share load.
  let best = start;
  let bestActive = targets[start].active;
  for (let k = 1; k < n; k++) {
    const i = (start + k) % n;
    if (targets[i].active < bestActive) {
      best = i;
      bestActive = targets[i].active;
    }
  }
  return best;
}
