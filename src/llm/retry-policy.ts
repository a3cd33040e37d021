/**
 * When and how long to wait before retrying a provider call: exponential backoff with jitter,
 * at least as long as the provider's `Retry-After`.
 */
import type { RetryConfig } from './schema.ts';

/**
 * Milliseconds a provider asks us to wait, from `retry-after-ms` (Azure, OpenAI) or
 * `retry-after` (RFC 9110 §10.2.3: delay-seconds or an HTTP-date); null when absent or unreadable.
 */
export function parseRetryAfterMs(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  nowMs = Date.now(),
): number | null {
  const ms = first(headers['retry-after-ms']);
  if (ms !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(ms)) return Math.ceil(Number(ms));
  const value = first(headers['retry-after']);
  if (value === undefined) return null;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  if (Number.isNaN(date)) return null;
  return Math.max(0, date - nowMs);
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Retry decisions of one provider, compiled from its `retry` block. */
export class RetryPolicy {
  readonly maxRetries: number;
  readonly onTimeout: boolean;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly maxRetryAfterMs: number;
  #statuses: Uint8Array;

  constructor(config: RetryConfig) {
    this.maxRetries = config.maxRetries;
    this.onTimeout = config.onTimeout;
    this.baseDelayMs = config.baseDelayMs;
    this.maxDelayMs = config.maxDelayMs;
    this.maxRetryAfterMs = config.maxRetryAfterMs;
    this.#statuses = new Uint8Array(600);
    for (const status of config.statuses) this.#statuses[status] = 1;
  }

  /** True when an upstream answer with this status may be retried or sent to a fallback. */
  retriesStatus(status: number): boolean {
    return status < 600 && this.#statuses[status] === 1;
  }

  /**
   * Backoff before retry number `retry` (1 for the first): exponential, capped, with "equal
   * jitter" (half fixed, half random) so synchronized clients spread out, and never shorter than
   * the provider's Retry-After.
   * @returns the delay, or -1 when the provider asks for a wait longer than `maxRetryAfterMs`.
   */
  delayMs(retry: number, retryAfterMs: number | null, random = Math.random()): number {
    if (retryAfterMs !== null && retryAfterMs > this.maxRetryAfterMs) return -1;
    const exp = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (retry - 1));
    const backoff = Math.round(exp / 2 + (exp / 2) * random);
    return retryAfterMs === null ? backoff : Math.max(retryAfterMs, backoff);
  }
}
