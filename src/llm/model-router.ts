/**
 * Resolves the `model` of a request to the targets that may serve it: an alias and its
 * fallbacks (compiled once at start), `provider:model` for a configured provider, or the
 * default alias.
 */
import type { FieldPolicy } from './field-policy.ts';
import type { ProviderRuntime } from './provider-runtime.ts';
import type { LlmConfig } from './schema.ts';
import type { UsageCounter, UsageStats } from './usage-stats.ts';

/** One provider and model a request may be sent to. */
export interface Target {
  /** Alias this target serves, for stats (`<provider>:*` for direct `provider:model`). */
  readonly alias: string;
  readonly provider: ProviderRuntime;
  /** Model name sent upstream. */
  readonly model: string;
  /** Default request parameters of the alias, or null. */
  readonly params: Readonly<Record<string, unknown>> | null;
  /** Field policy for this provider and model, or null when there is none. */
  readonly policy: FieldPolicy | null;
  readonly usage: UsageCounter;
}

/** Where a request goes: its targets in order (the first, then fallbacks). */
export interface ModelRoute {
  /** The alias the request resolved to, or its `provider:model`. */
  readonly name: string;
  readonly targets: readonly Target[];
  /** Total deadline of the request, from the first target's provider. */
  readonly totalMs: number;
}

/** Direct `provider:model` routes cached before the cache is reset (model names come from clients). */
const DIRECT_CACHE_MAX = 1024;

/** The model resolver; see the file comment. */
export class ModelRouter {
  /** `GET /v1/models` response body: the aliases. */
  readonly modelsBody: Buffer;
  #aliases = new Map<string, ModelRoute>();
  #direct = new Map<string, ModelRoute>();
  #defaultRoute: ModelRoute | null;
  #providers: ReadonlyMap<string, ProviderRuntime>;
  #providerModels: boolean;
  #usage: UsageStats;

  /** @param config a config that passed `checkLlmConfig`. */
  constructor(config: LlmConfig, providers: ReadonlyMap<string, ProviderRuntime>, usage: UsageStats) {
    this.#providers = providers;
    this.#providerModels = config.providerModels;
    this.#usage = usage;
    const targets = new Map<string, Target>();
    for (const [slot, alias] of Object.entries(config.aliases)) {
      const provider = providers.get(alias.provider)!;
      targets.set(slot, {
        alias: slot,
        provider,
        model: alias.model,
        params: alias.params ?? null,
        policy: provider.adapter?.fieldPolicy(alias.model) ?? null,
        usage: usage.counter(slot, provider.id),
      });
    }
    for (const slot of Object.keys(config.aliases)) {
      const chain: Target[] = [];
      const seen = new Set<string>();
      const walk = (name: string): void => {
        if (seen.has(name) || !targets.has(name)) return;
        seen.add(name);
        chain.push(targets.get(name)!);
        for (const next of config.aliases[name].fallbacks ?? []) walk(next);
      };
      walk(slot);
      this.#aliases.set(slot, { name: slot, targets: chain, totalMs: chain[0].provider.totalMs });
    }
    this.#defaultRoute = config.defaultAlias === undefined ? null : (this.#aliases.get(config.defaultAlias) ?? null);
    this.modelsBody = Buffer.from(
      JSON.stringify({
        object: 'list',
        data: Object.keys(config.aliases).map((id) => ({ id, object: 'model', created: 0, owned_by: 'switchyard' })),
      }),
    );
  }

  /** The route for a request's `model`, or null when nothing (not even a default) serves it. */
  resolve(model: string): ModelRoute | null {
    const alias = this.#aliases.get(model);
    if (alias !== undefined) return alias;
    if (this.#providerModels) {
      const direct = this.#direct.get(model) ?? this.#directRoute(model);
      if (direct !== null) return direct;
    }
    return this.#defaultRoute;
  }

  #directRoute(name: string): ModelRoute | null {
    const colon = name.indexOf(':');
    if (colon <= 0 || colon === name.length - 1) return null;
    const provider = this.#providers.get(name.slice(0, colon));
    if (provider === undefined) return null;
    const model = name.slice(colon + 1);
    const target: Target = {
      alias: `${provider.id}:*`,
      provider,
      model,
      params: null,
      policy: provider.adapter?.fieldPolicy(model) ?? null,
      usage: this.#usage.counter(`${provider.id}:*`, provider.id),
    };
    const route: ModelRoute = { name, targets: [target], totalMs: provider.totalMs };
    if (this.#direct.size >= DIRECT_CACHE_MAX) this.#direct.clear();
    this.#direct.set(name, route);
    return route;
  }
}
