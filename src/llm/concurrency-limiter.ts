/**
 * Per-provider concurrency limit with a bounded FIFO queue, a maximum wait and an adaptive
 * limit (AIMD: halve on an upstream 429, add one after a window of successes).
 *
 * A slot is held for the whole life of a request, stream included: the caller releases it when
 * the last byte went out, not when headers arrived.
 */
import type { DeadlineEntry, DeadlineWheel } from './deadline-wheel.ts';

/** A request waiting for a slot. Exactly one of the callbacks is called, once. */
export interface LimiterWaiter {
  /** A slot was taken for this waiter; release it with {@link ConcurrencyLimiter.release}. */
  onSlot(): void;
  /** The waiter waited `maxWaitMs` without getting a slot. */
  onQueueTimeout(): void;
}

/** How a request that held a slot ended, for the adaptive limit. */
export type SlotOutcome = 'success' | 'rate-limited' | 'other';

/** Settings of one limiter. */
export interface ConcurrencyLimiterOptions {
  /** Highest limit (and the starting one). */
  max: number;
  /** Most waiters queued at once. */
  queue: number;
  /** Longest a waiter stays queued. */
  maxWaitMs: number;
  /** Whether upstream 429s shrink the limit. */
  adaptive: boolean;
  /** Timer for queue deadlines, shared with the rest of the gateway. */
  wheel: DeadlineWheel;
}

/** Result of {@link ConcurrencyLimiter.acquire}. */
export type AcquireResult = 'granted' | 'queued' | 'full';

/** Counters of one limiter, for stats and metrics. */
export interface LimiterStats {
  /** Current (adaptive) limit. */
  limit: number;
  /** Configured maximum. */
  max: number;
  inFlight: number;
  queued: number;
  /** Requests turned away because the queue was full. */
  rejectedFull: number;
  /** Requests turned away after waiting `maxWaitMs`. */
  rejectedTimeout: number;
  /** Times the limit was cut after a 429. */
  decreases: number;
}

/** A concurrency limiter; see the file comment. */
export class ConcurrencyLimiter implements DeadlineEntry {
  readonly max: number;
  readonly queueMax: number;
  readonly maxWaitMs: number;
  readonly adaptive: boolean;
  /** Deadline of the queue head; the limiter itself sits in the wheel while its queue is not empty. */
  deadlineAt = 0;
  #limit: number;
  #inFlight = 0;
  #queue: LimiterWaiter[] = [];
  #queuedAt: number[] = [];
  #successes = 0;
  #epoch = 0;
  #rejectedFull = 0;
  #rejectedTimeout = 0;
  #decreases = 0;
  #wheel: DeadlineWheel;

  constructor(options: ConcurrencyLimiterOptions) {
    this.max = options.max;
    this.queueMax = options.queue;
    this.maxWaitMs = options.maxWaitMs;
    this.adaptive = options.adaptive;
    this.#limit = options.max;
    this.#wheel = options.wheel;
  }

  /** Current limit, between 1 and `max`. */
  get limit(): number {
    return this.#limit;
  }

  /** Slots taken. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Waiters queued. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Advances each time the limit is cut. A 429 on a slot taken before the last cut does not cut
   * again: a burst of 429s from requests already in flight is one signal, not many (TCP's one
   * decrease per window).
   */
  get epoch(): number {
    return this.#epoch;
  }

  /**
   * Takes a slot now (`granted`), queues the waiter (`queued`: `onSlot` or `onQueueTimeout`
   * follows), or refuses because the queue is full (`full`).
   */
  acquire(waiter: LimiterWaiter): AcquireResult {
    if (this.#inFlight < this.#limit && this.#queue.length === 0) {
      this.#inFlight++;
      return 'granted';
    }
    if (this.#queue.length >= this.queueMax) {
      this.#rejectedFull++;
      return 'full';
    }
    const now = performance.now();
    this.#queue.push(waiter);
    this.#queuedAt.push(now);
    if (this.#queue.length === 1) {
      this.deadlineAt = now + this.maxWaitMs;
      this.#wheel.add(this);
    }
    return 'queued';
  }

  /** Removes a queued waiter (its request ended while waiting); no callback follows. */
  cancel(waiter: LimiterWaiter): void {
    const i = this.#queue.indexOf(waiter);
    if (i === -1) return;
    this.#queue.splice(i, 1);
    this.#queuedAt.splice(i, 1);
    if (i === 0) this.#rearm();
  }

  /**
   * Removes a queued waiter whose own deadline passed before a slot came (no callback follows);
   * counted with the queue timeouts, since it too was turned away for waiting too long.
   */
  expire(waiter: LimiterWaiter): void {
    const queued = this.#queue.length;
    this.cancel(waiter);
    if (this.#queue.length < queued) this.#rejectedTimeout++;
  }

  /**
   * Gives back a slot taken by `acquire` or `onSlot`.
   * @param epoch the limiter's {@link epoch} when the slot was taken.
   */
  release(outcome: SlotOutcome, epoch: number): void {
    this.#inFlight--;
    if (this.adaptive) {
      if (outcome === 'rate-limited') {
        if (epoch === this.#epoch) {
          this.#limit = Math.max(1, this.#limit >> 1);
          this.#epoch++;
          this.#decreases++;
          this.#successes = 0;
        }
      } else if (outcome === 'success' && this.#limit < this.max && ++this.#successes >= this.#limit) {
        this.#limit++;
        this.#successes = 0;
      }
    }
    this.#grant();
  }

  /** Hands free slots to queued waiters, oldest first. */
  #grant(): void {
    let granted = false;
    while (this.#queue.length > 0 && this.#inFlight < this.#limit) {
      const waiter = this.#queue.shift()!;
      this.#queuedAt.shift();
      this.#inFlight++;
      granted = true;
      waiter.onSlot();
    }
    if (granted) this.#rearm();
  }

  /** Points the wheel entry at the new queue head's deadline. */
  #rearm(): void {
    if (this.#queue.length === 0) {
      this.#wheel.delete(this);
      return;
    }
    this.deadlineAt = this.#queuedAt[0] + this.maxWaitMs;
    this.#wheel.add(this);
  }

  /** Wheel callback: turns away every waiter that has waited `maxWaitMs`. */
  onDeadline(): void {
    const now = performance.now();
    while (this.#queue.length > 0 && this.#queuedAt[0] + this.maxWaitMs <= now) {
      const waiter = this.#queue.shift()!;
      this.#queuedAt.shift();
      this.#rejectedTimeout++;
      waiter.onQueueTimeout();
    }
    this.#rearm();
  }

  /** Counters, for stats. */
  stats(): LimiterStats {
    return {
      limit: this.#limit,
      max: this.max,
      inFlight: this.#inFlight,
      queued: this.#queue.length,
      rejectedFull: this.#rejectedFull,
      rejectedTimeout: this.#rejectedTimeout,
      decreases: this.#decreases,
    };
  }

  /** Drops every waiter without a callback (the gateway ends their requests itself). */
  close(): void {
    this.#queue.length = 0;
    this.#queuedAt.length = 0;
    this.#wheel.delete(this);
  }
}
