/**
 * A last-in, first-out list of teardown steps, so everything a run starts is undone in reverse
 * order even when the run fails half way or is interrupted.
 */

/** One teardown step. */
export type CleanupStep = () => void | Promise<void>;

/** Runs registered steps in reverse order; `run()` may be called any number of times. */
export class Cleanup {
  readonly #steps: Array<{ label: string; step: CleanupStep }> = [];

  /** Registers a step, run before every step registered earlier. */
  add(label: string, step: CleanupStep): void {
    this.#steps.push({ label, step });
  }

  #queue: Promise<void> = Promise.resolve();

  /**
   * Runs and forgets every registered step, newest first. A failing step is reported and does not
   * stop the others. Concurrent calls (a signal during a normal teardown) run one after another,
   * so order is kept.
   */
  run(): Promise<void> {
    this.#queue = this.#queue.then(() => this.#drain());
    return this.#queue;
  }

  async #drain(): Promise<void> {
    while (this.#steps.length > 0) {
      const { label, step } = this.#steps.pop()!;
      try {
        await step();
      } catch (error) {
        process.stderr.write(`bench: cleanup "${label}" failed: ${(error as Error).message}\n`);
      }
    }
  }
}
