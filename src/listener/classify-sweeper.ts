/**
 * Classify deadlines of new connections, enforced by one coarse interval rather than a timer per
 * socket (as tunnel-sweeper.ts does for idle tunnels and http-engine.ts for HTTP deadlines).
 *
 * The deadline is absolute from accept: `timeouts.classifyMs` is the time a PROXY header or a
 * complete ClientHello has to arrive. An idle timeout (`socket.setTimeout`) is refreshed by every
 * read, so a client trickling one byte at a time could hold a connection, and its buffer, forever.
 * A deadline fires no earlier than configured and at most one sweep interval late.
 */

/** A connection being classified. */
export interface ClassifyDeadline {
  /** When classification must be done (ms since epoch); 0 while not watched. */
  deadline: number;
  /** Called by the sweep once the deadline has passed; the entry is already removed. */
  onDeadline(): void;
  /** Closes the connection without a rejection: shutdown's drain deadline passed. */
  abort(): void;
}

/** Sweep interval, as the tunnel sweeper's and the HTTP engine's. */
const SWEEP_MS = 250;

/** The connections of one proxy still being classified; the runtime owns it and closes it. */
export class ClassifySweeper {
  readonly pending: Set<ClassifyDeadline>;
  #timer: NodeJS.Timeout | null;

  constructor() {
    this.pending = new Set();
    this.#timer = null;
  }

  /** Starts the deadline of a connection: `timeoutMs` from now, whatever it sends meanwhile. */
  add(entry: ClassifyDeadline, timeoutMs: number): void {
    entry.deadline = Date.now() + timeoutMs;
    this.pending.add(entry);
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.sweep(Date.now()), SWEEP_MS);
      this.#timer.unref();
    }
  }

  /** Stops watching a connection (classified, rejected or closed); the timer stops with the last. */
  delete(entry: ClassifyDeadline): void {
    entry.deadline = 0;
    this.pending.delete(entry);
    if (this.pending.size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  /** Calls `onDeadline` of every connection whose deadline has passed at `now`. */
  sweep(now: number): void {
    for (const entry of this.pending) {
      if (entry.deadline <= now) {
        this.delete(entry);
        entry.onDeadline();
      }
    }
  }

  /** Closes every connection still being classified (shutdown, past its drain deadline). */
  abortAll(): void {
    for (const entry of [...this.pending]) {
      this.delete(entry);
      entry.abort();
    }
  }

  /** Stops the timer. The connections themselves are the runtime's to close. */
  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.pending.clear();
  }
}
