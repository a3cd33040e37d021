/**
 * The engine's open client connections: add, remove and visit, with `size`.
 *
 * Not a `Set`, for the garbage collector's sake. Measured on http-close (`wrk -c64 -H 'Connection:
 * close'`, `--trace-gc`), with the engine's connections in a long-lived Set (one add and one
 * delete per connection): scavenges kept 7-12 MB and paused 14-33 ms, and the old generation grew
 * 12-15 MB between full GCs, which then found it all dead. With this list: scavenges of 0.5-0.6
 * ms and a flat heap, p99 latency halved. The likely mechanism: a Set with that churn moves to a
 * new hash table every few dozen connections, V8 keeps a link from each replaced table to its
 * successor (for iterators), and once a replaced table is in the old generation, the scavenger
 * treats its pointers as roots until a full GC: the chain of tables after it, and every connection
 * in them (socket, parser state, buffers), is copied and promoted (docs/benchmarks.md).
 *
 * Here each connection knows its slot in one array, and removal moves the last connection into
 * it: nothing links a discarded structure to live connections.
 */

/** What the list needs from an entry: a slot it may write, -1 while not in a list. */
export interface Listed {
  listSlot: number;
}

export class ConnectionList<T extends Listed> {
  readonly #items: T[] = [];

  get size(): number {
    return this.#items.length;
  }

  add(item: T): void {
    if (item.listSlot !== -1) return;
    item.listSlot = this.#items.length;
    this.#items.push(item);
  }

  /** Removes `item` if it is in the list. */
  delete(item: T): void {
    const slot = item.listSlot;
    const items = this.#items;
    if (slot < 0 || slot >= items.length || items[slot] !== item) return;
    const last = items.pop()!;
    if (last !== item) {
      items[slot] = last;
      last.listSlot = slot;
    }
    item.listSlot = -1;
  }

  /**
   * Calls `visit` for each entry in the list when the walk starts and still in it when reached.
   * The walk is over a copy, so `visit` may remove or add entries (one sweep copies 20,000
   * references at most every 250 ms; nothing per request).
   */
  forEach(visit: (item: T) => void): void {
    for (const item of this.#items.slice()) {
      if (item.listSlot !== -1) visit(item);
    }
  }
}
