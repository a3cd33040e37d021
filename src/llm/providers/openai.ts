/**
 * Adapter for any OpenAI-compatible API: endpoints under the base URL, the key as a bearer token
 * or in a named header.
 */
import { ENDPOINT_PATHS, type Endpoint } from '../endpoint.ts';
import { FieldPolicy } from '../field-policy.ts';
import type { LlmProviderConfig } from '../schema.ts';
import type { ProviderAdapter } from './provider-adapter.ts';

/** The generic OpenAI-compatible adapter; the mock adapter reuses it. */
export class OpenAiAdapter implements ProviderAdapter {
  readonly id: string;
  readonly type: string;
  readonly origin: string;
  readonly headers: readonly string[];
  #paths: Readonly<Record<Endpoint, string>>;
  #forward: ReadonlySet<string>;
  #defaultPolicy: FieldPolicy | null;
  #modelPolicies: ReadonlyMap<string, FieldPolicy | null>;

  /**
   * @param apiKey the resolved key, or null when the provider has none.
   * @param baseUrl where the API lives, up to and including its version path.
   */
  constructor(id: string, config: LlmProviderConfig, apiKey: string | null, baseUrl: string) {
    const url = new URL(baseUrl);
    this.id = id;
    this.type = config.type;
    this.origin = url.origin;
    const base = url.pathname.replace(/\/+$/, '');
    this.#paths = {
      chat: base + ENDPOINT_PATHS.chat + url.search,
      completions: base + ENDPOINT_PATHS.completions + url.search,
      embeddings: base + ENDPOINT_PATHS.embeddings + url.search,
    };
    const headers: string[] = ['content-type', 'application/json', 'accept-encoding', 'identity'];
    for (const [name, value] of Object.entries(config.headers)) headers.push(name.toLowerCase(), value);
    if (apiKey !== null && config.authScheme !== 'none') {
      if (config.authScheme === 'bearer') headers.push('authorization', `Bearer ${apiKey}`);
      else headers.push(config.authScheme.slice('header:'.length).toLowerCase(), apiKey);
    }
    this.headers = headers;
    this.#forward = new Set(config.forwardHeaders.map((name) => name.toLowerCase()));
    this.#defaultPolicy = FieldPolicy.compile(config.fields);
    const policies = new Map<string, FieldPolicy | null>();
    for (const [model, overrides] of Object.entries(config.models)) {
      policies.set(model, FieldPolicy.compile(config.fields, overrides.fields));
    }
    this.#modelPolicies = policies;
  }

  path(endpoint: Endpoint): string {
    return this.#paths[endpoint];
  }

  get forwardsAnyHeader(): boolean {
    return this.#forward.size > 0;
  }

  forwardsHeader(name: string): boolean {
    return this.#forward.has(name);
  }

  fieldPolicy(model: string): FieldPolicy | null {
    const policy = this.#modelPolicies.get(model);
    return policy === undefined ? this.#defaultPolicy : policy;
  }
}
