/**
 * One coarse timer for many deadlines (undici's fast-timers idea): deadlines fall into buckets
 * `resolutionMs` wide and a single interval fires each bucket once its end has passed. Adding or
 * cancelling a deadline is a Map lookup and a list operation; no `setTimeout` per request.
 *
 * The buckets are {@link ConnectionList}s and each entry keeps its bucket number on itself, not a
 * Set per bucket and a Map from entry to bucket: a bucket lives as long as the deadlines in it (a
 * request's total timeout, ten minutes by default) while every request adds itself and removes
 * itself when it finishes, which is the churn that made long-lived Sets keep dead connections alive
 * through scavenges (connection-list.ts). Measured on the quick start's chat route (`wrk -c32`, mock
 * provider in process, `--trace-gc-nvp`): with the Sets, in 2 of 9 processes each scavenge promoted
 * 1.3-2.7 MB and paused 6-10 ms, and RSS climbed past 300 MB; with the lists, none of 18
 * (docs/benchmarks.md).
 */
import { ConnectionList } from '../runtime/connection-list.ts';

/** Something with a deadline. The wheel calls `onDeadline` once, at or after `deadlineAt`. */
export interface DeadlineEntry {
  /** `performance.now()` time at which the deadline passes. */
  deadlineAt: number;
  /** Called from the wheel's timer; the entry is already removed. */
  onDeadline(): void;
}

const kBucket = Symbol('switchyard.deadlineBucket');
/** The entry's slot in its bucket: its own key, since an entry may also be in another ConnectionList. */
const kBucketSlot = Symbol('switchyard.deadlineBucketSlot');

/** An entry as the wheel sees it: the bucket it is in, or -1 (or nothing) when not scheduled. */
interface Bucketed extends DeadlineEntry {
  [kBucket]?: number;
}

/** A hashed timer wheel that runs its interval only while it holds deadlines. */
export class DeadlineWheel {
  readonly resolutionMs: number;
  #buckets = new Map<number, ConnectionList<DeadlineEntry>>();
  #count = 0;
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
    return this.#count;
  }

  /** Schedules `entry.onDeadline()`; an entry already scheduled is moved to its new deadline. */
  add(entry: DeadlineEntry): void {
    if (this.#closed) return;
    this.delete(entry);
    if (this.#timer === null) {
      this.#nextBucket = Math.floor(performance.now() / this.resolutionMs) + 1;
      this.#timer = setInterval(this.tick, this.resolutionMs);
    }
    const bucket = Math.max(Math.ceil(entry.deadlineAt / this.resolutionMs), this.#nextBucket);
    let list = this.#buckets.get(bucket);
    if (list === undefined) {
      list = new ConnectionList(kBucketSlot);
      this.#buckets.set(bucket, list);
    }
    list.add(entry);
    (entry as Bucketed)[kBucket] = bucket;
    this.#count++;
  }

  /** Cancels a deadline; a no-op for an entry not scheduled. */
  delete(entry: DeadlineEntry): void {
    const bucket = (entry as Bucketed)[kBucket];
    if (bucket === undefined || bucket < 0) return;
    (entry as Bucketed)[kBucket] = -1;
    this.#count--;
    // Absent while its bucket fires: a callback cancelled an entry the walk has not reached.
    const list = this.#buckets.get(bucket);
    if (list === undefined) return;
    list.delete(entry);
    if (list.size === 0) this.#buckets.delete(bucket);
  }

  /** Fires every bucket whose end has passed. Public for tests; the interval calls it. */
  tick(): void {
    const last = Math.floor(performance.now() / this.resolutionMs);
    for (let bucket = this.#nextBucket; bucket <= last; bucket++) {
      // Advanced before firing, so an entry re-added by its callback lands in a later bucket.
      this.#nextBucket = bucket + 1;
      const list = this.#buckets.get(bucket);
      if (list === undefined) continue;
      this.#buckets.delete(bucket);
      // The walk is over a copy; an entry a callback before it cancelled or moved is skipped.
      for (const entry of list) {
        if ((entry as Bucketed)[kBucket] !== bucket) continue;
        (entry as Bucketed)[kBucket] = -1;
        this.#count--;
        entry.onDeadline();
      }
    }
    // Stopped lazily, one tick after the last deadline went: a steady trickle of requests would
    // otherwise start and stop an interval per request.
    if (this.#count === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  /** Drops every deadline without firing it and stops the timer; later `add`s are ignored. */
  close(): void {
    this.#closed = true;
    for (const list of this.#buckets.values()) for (const entry of list) (entry as Bucketed)[kBucket] = -1;
    this.#buckets.clear();
    this.#count = 0;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
