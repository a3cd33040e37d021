/**
 * Everything the gateway holds per provider: its adapter, its one connection pool, its
 * concurrency limiter and its retry policy. Created once at start, closed by the gateway.
 */
import { Pool } from 'undici';
import type { SwitchyardError } from '../errors.ts';
import { ConcurrencyLimiter } from './concurrency-limiter.ts';
import type { DeadlineWheel } from './deadline-wheel.ts';
import type { ProviderAdapter } from './providers/provider-adapter.ts';
import { RetryPolicy } from './retry-policy.ts';
import type { LlmProviderConfig } from './schema.ts';

/** Live state of one provider; see the file comment. */
export class ProviderRuntime {
  readonly id: string;
  readonly adapter: ProviderAdapter | null;
  /** Why the provider cannot serve (e.g. its key file is unreadable); null when it can. */
  readonly unavailable: SwitchyardError | null;
  readonly pool: Pool | null;
  readonly limiter: ConcurrencyLimiter;
  readonly retry: RetryPolicy;
  readonly firstByteMs: number;
  readonly idleMs: number;
  readonly totalMs: number;

  /**
   * @param adapter null together with `unavailable` when the provider could not be set up; its
   * requests then fail with that error (and move on to fallbacks).
   */
  constructor(
    id: string,
    config: LlmProviderConfig,
    adapter: ProviderAdapter | null,
    unavailable: SwitchyardError | null,
    wheel: DeadlineWheel,
  ) {
    this.id = id;
    this.adapter = adapter;
    this.unavailable = unavailable;
    this.pool =
      adapter === null
        ? null
        : new Pool(adapter.origin, {
            connections: config.pool.connections,
            allowH2: config.pool.allowH2,
            keepAliveTimeout: config.pool.keepAliveMs,
            connectTimeout: config.timeouts.connectMs,
            headersTimeout: config.timeouts.firstByteMs,
            bodyTimeout: config.timeouts.idleMs,
          });
    this.limiter = new ConcurrencyLimiter({ ...config.concurrency, wheel });
    this.retry = new RetryPolicy(config.retry);
    this.firstByteMs = config.timeouts.firstByteMs;
    this.idleMs = config.timeouts.idleMs;
    this.totalMs = config.timeouts.totalMs;
  }

  /** Drops queued waiters and destroys the pool (in-flight calls were aborted by the gateway). */
  async close(): Promise<void> {
    this.limiter.close();
    if (this.pool !== null && !this.pool.destroyed) await this.pool.destroy();
  }
}
