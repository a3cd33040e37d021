/**
 * Prometheus view of the LLM gateway's own counters (usage per alias and provider, limiter state
 * per provider). Read at scrape time from `gateway.stats()`, so the request path updates plain
 * numbers only; counts of a replaced gateway (a reload that changed the llm block) start over.
 */
import { Gauge, type Registry } from 'prom-client';
import type { LlmGateway } from '../llm/gateway.ts';

/** Registers the LLM metric families; `current()` returns the live gateway or null. */
export function registerLlmMetrics(registry: Registry, current: () => LlmGateway | null): void {
  const registers = [registry];
  const usage = (
    name: string,
    help: string,
    pick: (row: ReturnType<LlmGateway['stats']>['usage'][number]) => number,
  ): void => {
    new Gauge({
      name,
      help,
      labelNames: ['alias', 'provider'],
      registers,
      collect() {
        this.reset();
        const gateway = current();
        if (gateway === null) return;
        for (const row of gateway.stats().usage) this.set({ alias: row.alias, provider: row.provider }, pick(row));
      },
    });
  };
  usage(
    'switchyard_llm_requests',
    'LLM requests by alias and provider (since the gateway started).',
    (r) => r.requests,
  );
  usage('switchyard_llm_failures', 'LLM requests that ended in an error, by alias and provider.', (r) => r.failures);
  usage(
    'switchyard_llm_prompt_tokens',
    'Prompt tokens reported by providers, by alias and provider.',
    (r) => r.promptTokens,
  );
  usage(
    'switchyard_llm_completion_tokens',
    'Completion tokens reported by providers, by alias and provider.',
    (r) => r.completionTokens,
  );
  new Gauge({
    name: 'switchyard_llm_provider_limit',
    help: 'Current adaptive concurrency limit per provider, and requests in flight and queued.',
    labelNames: ['provider', 'kind'],
    registers,
    collect() {
      this.reset();
      const gateway = current();
      if (gateway === null) return;
      for (const p of gateway.stats().providers) {
        this.set({ provider: p.id, kind: 'limit' }, p.limit);
        this.set({ provider: p.id, kind: 'in_flight' }, p.inFlight);
        this.set({ provider: p.id, kind: 'queued' }, p.queued);
      }
    },
  });
}
