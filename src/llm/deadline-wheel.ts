/**
 * One coarse timer for many deadlines (undici's fast-timers idea): deadlines fall into buckets
 * `resolutionMs` wide and a single interval fires each bucket once its end has passed. Adding or
 * cancelling a deadline is a Map lookup and a Set operation; no `setTimeout` per request.
 */

/** Something with a deadline. The wheel calls `onDeadline` once, at or after `deadlineAt`. */
export interface DeadlineEntry {
  /** `performance.now()` time at which the deadline passes. */
  deadlineAt: number;
  /** Called from the wheel's timer; the entry is already removed. */
  onDeadline(): void;
}

/** A hashed timer wheel that runs its interval only while it holds deadlines. */
export class DeadlineWheel {
  readonly resolutionMs: number;
  #buckets = new Map<number, Set<DeadlineEntry>>();
  #bucketOf = new Map<DeadlineEntry, number>();
  #nextBucket = 0;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  /** @param resolutionMs width of a bucket: deadlines fire up to this late, never early. */
  constructor(resolutionMs = 50) {
    this.resolutionMs = resolutionMs;
    this.tick = this.tick.bind(this);
  }

  /** Number of pending deadlines. */
  get size(): number {
    return this.#bucketOf.size;
  }

  /** Schedules `entry.onDeadline()`; an entry already scheduled is moved to its new deadline. */
  add(entry: DeadlineEntry): void {
    if (this.#closed) return;
    if (this.#bucketOf.has(entry)) this.delete(entry);
    if (this.#timer === null) {
      this.#nextBucket = Math.floor(performance.now() / this.resolutionMs) + 1;
      this.#timer = setInterval(this.tick, this.resolutionMs);
    }
    const bucket = Math.max(Math.ceil(entry.deadlineAt / this.resolutionMs), this.#nextBucket);
    let set = this.#buckets.get(bucket);
    if (set === undefined) {
      set = new Set();
      this.#buckets.set(bucket, set);
    }
    set.add(entry);
    this.#bucketOf.set(entry, bucket);
  }

  /** Cancels a deadline; a no-op for an entry not scheduled. */
  delete(entry: DeadlineEntry): void {
    const bucket = this.#bucketOf.get(entry);
    if (bucket === undefined) return;
    this.#bucketOf.delete(entry);
    const set = this.#buckets.get(bucket)!;
    set.delete(entry);
    if (set.size === 0) this.#buckets.delete(bucket);
  }

  /** Fires every bucket whose end has passed. Public for tests; the interval calls it. */
  tick(): void {
    const last = Math.floor(performance.now() / this.resolutionMs);
    for (let bucket = this.#nextBucket; bucket <= last; bucket++) {
      // Advanced before firing, so an entry re-added by its callback lands in a later bucket.
      this.#nextBucket = bucket + 1;
      const set = this.#buckets.get(bucket);
      if (set === undefined) continue;
      this.#buckets.delete(bucket);
      for (const entry of set) {
        this.#bucketOf.delete(entry);
        entry.onDeadline();
      }
    }
    // Stopped lazily, one tick after the last deadline went: a steady trickle of requests would
    // otherwise start and stop an interval per request.
    if (this.#bucketOf.size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  /** Drops every deadline without firing it and stops the timer; later `add`s are ignored. */
  close(): void {
    this.#closed = true;
    this.#buckets.clear();
    this.#bucketOf.clear();
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
