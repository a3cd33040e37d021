/**
 * Open connections (the runtime's client sockets, the HTTP engine's client connections): add,
 * remove and visit, with `size`.
 *
 * Not a `Set`, for the garbage collector's sake. Measured on http-close (`wrk -c64 -H 'Connection:
 * close'`, `--trace-gc`), with the sockets and the engine's connections each in a long-lived Set
 * (one add and one delete per connection): scavenges kept 7-12 MB and paused 14-33 ms, and the
 * old generation grew 12-15 MB between full GCs, which then found it all dead. With either Set
 * alone the growth came back (after an idle pause between loads, for the sockets' Set); with both
 * replaced by this list, scavenges took 0.4-0.7 ms and the heap stayed flat across loads and idle
 * pauses. Paired A/B with the engine's Set replaced (8 alternating 3 s slices): p99 latency 13.2
 * against 33.8 ms, CPU per connection 116 against 124 µs (medians).
 *
 * The mechanism is not pinned down. A likely one: a Set with that churn moves to a new hash table
 * every few dozen entries, V8 keeps a link from each replaced table to its successor (for
 * iterators), and once a replaced table is in the old generation the scavenger treats its pointers
 * as roots until a full GC, so the tables after it and every connection in them (socket, parser
 * state, buffers) are copied and promoted. The list is a measured cure, the explanation a guess
 * (docs/benchmarks.md).
 *
 * Here each entry keeps its slot in one array under a symbol, and removal moves the last entry
 * into it: nothing links a discarded structure to live connections.
 */

const kSlot = Symbol('switchyard.connectionListSlot');

/**
 * An entry: any object, in one ConnectionList of a kind at a time; its slot is stored on it under the
 * kind's symbol (the default one, or the one given to the constructor).
 */
type Slotted = Record<symbol, number | undefined>;

export class ConnectionList<T extends object> {
  readonly #items: T[] = [];
  readonly #slot: symbol;

  /**
   * @param slot the property that holds an entry's slot. Objects that are in two lists at once
   *   (an LLM exchange is in the gateway's live list and in a deadline bucket) need a key per kind of list.
   */
  constructor(slot: symbol = kSlot) {
    this.#slot = slot;
  }

  get size(): number {
    return this.#items.length;
  }

  has(item: T): boolean {
    const slot = (item as Slotted)[this.#slot];
    return slot !== undefined && slot >= 0 && this.#items[slot] === item;
  }

  add(item: T): void {
    if (this.has(item)) return;
    (item as Slotted)[this.#slot] = this.#items.length;
    this.#items.push(item);
  }

  /** Removes `item` if it is in the list. */
  delete(item: T): void {
    if (!this.has(item)) return;
    const key = this.#slot;
    const slot = (item as Slotted)[key]!;
    const items = this.#items;
    const last = items.pop()!;
    if (last !== item) {
      items[slot] = last;
      (last as Slotted)[key] = slot;
    }
    (item as Slotted)[key] = -1;
  }

  /** The entries as they are now (a copy: the list may change while it is walked). */
  [Symbol.iterator](): Iterator<T> {
    return this.#items.slice()[Symbol.iterator]();
  }

  /**
   * Calls `visit` for each entry in the list when the walk starts and still in it when reached.
   * The walk is over a copy, so `visit` may remove or add entries (the engine's sweep copies
   * 20,000 references at most every 250 ms; nothing per request).
   */
  forEach(visit: (item: T) => void): void {
    for (const item of this.#items.slice()) {
      if (this.has(item)) visit(item);
    }
  }
}
