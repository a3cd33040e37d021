/** Switchyard as an LLM gateway: one `llm` route in front of one OpenAI-compatible provider. */
import type { ConfigInput } from '../../src/config/schema.ts';
import type { ScenarioContext } from './context.ts';
import { freePort, LOOPBACK } from './ports.ts';
import { type SwitchyardInstance, startSwitchyard } from './switchyard.ts';

/** Options of {@link startSwitchyardLlm}. */
export interface SwitchyardLlmOptions {
  /** Process and file name (default `switchyard-llm`). */
  readonly name?: string;
  /**
   * `log.level` (default `warn`). At `info` the gateway writes one line per request, and the
   * stop line carries event-loop lag.
   */
  readonly logLevel?: 'warn' | 'info';
}

/**
 * Switchyard serving `/v1/*` with the LLM gateway; alias `model` goes to an `openai`-type
 * provider at `upstreamUrl` with no API key. The provider's pool and concurrency limit are
 * raised well above the benchmark's connections, and the limit does not adapt, so the limiter
 * never queues or refuses a request here: what is measured is the request path itself.
 */
export async function startSwitchyardLlm(
  ctx: ScenarioContext,
  upstreamUrl: string,
  model: string,
  options: SwitchyardLlmOptions = {},
): Promise<SwitchyardInstance> {
  const port = await freePort();
  const config: ConfigInput = {
    bind: LOOPBACK,
    log: { level: options.logLevel ?? 'warn' },
    // Nothing is left to drain when the harness stops it; do not wait for the default deadline.
    timeouts: { shutdownMs: 1000 },
    llm: {
      providers: {
        upstream: {
          type: 'openai',
          baseUrl: upstreamUrl,
          authScheme: 'none',
          pool: { connections: 128 },
          concurrency: { max: 1024, queue: 1024, adaptive: false },
        },
      },
      aliases: { [model]: { provider: 'upstream', model } },
    },
    routes: [{ name: 'llm', match: { ports: port, paths: ['/v1/*'] }, action: { type: 'llm' } }],
  };
  return startSwitchyard(ctx, options.name ?? 'switchyard-llm', config, port);
}
