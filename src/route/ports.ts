/**
 * Expansion of the `match.ports` spec (a port, a "LOW-HIGH" range, or a list of either).
 */

/** Every port a spec names, deduplicated, ascending. */
export function expandPorts(spec: number | string | ReadonlyArray<number | string>): number[] {
  const items = Array.isArray(spec) ? spec : [spec];
  const ports = new Set<number>();
  for (const item of items) {
    if (typeof item === 'number') {
      ports.add(item);
      continue;
    }
    const dash = item.indexOf('-');
    const low = Number(item.slice(0, dash));
    const high = Number(item.slice(dash + 1));
    for (let port = low; port <= high; port++) ports.add(port);
  }
  return [...ports].sort((a, b) => a - b);
}
