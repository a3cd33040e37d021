/**
 * Request and token counters per alias and provider, kept as plain objects the exchange bumps
 * directly; the metrics layer reads them through {@link UsageStats.rows}.
 */
import type { TokenUsage } from './sse/usage-scanner.ts';

/** Counters of one alias served by one provider. */
export interface UsageCounter {
  /** Alias name, or `<provider>:*` for requests that named `provider:model` directly. */
  readonly alias: string;
  readonly provider: string;
  /** Requests that ended on this provider (whatever the outcome). */
  requests: number;
  /** Of those, requests that did not end with a 2xx and a complete response. */
  failures: number;
  /** Requests whose response carried usage. */
  withUsage: number;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

/** All usage counters of one gateway. */
export class UsageStats {
  #counters = new Map<string, UsageCounter>();

  /** The counter of `alias` on `provider`, created on first use. */
  counter(alias: string, provider: string): UsageCounter {
    const key = `${alias}\u0000${provider}`;
    let counter = this.#counters.get(key);
    if (counter === undefined) {
      counter = {
        alias,
        provider,
        requests: 0,
        failures: 0,
        withUsage: 0,
        promptTokens: 0,
        completionTokens: 0,
        totalTokens: 0,
      };
      this.#counters.set(key, counter);
    }
    return counter;
  }

  /** Adds one finished request to `counter`. */
  static record(counter: UsageCounter, ok: boolean, usage: TokenUsage | null): void {
    counter.requests++;
    if (!ok) counter.failures++;
    if (usage !== null) {
      counter.withUsage++;
      counter.promptTokens += usage.promptTokens;
      counter.completionTokens += usage.completionTokens;
      counter.totalTokens += usage.totalTokens;
    }
  }

  /** Snapshot copies of every counter. */
  rows(): UsageCounter[] {
    return Array.from(this.#counters.values(), (c) => ({ ...c }));
  }
}
