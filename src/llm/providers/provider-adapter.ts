/**
 * What the gateway needs from a provider type: where each endpoint lives, which headers carry
 * auth, which client headers may pass, and the field policy per model. Adapters are built once
 * per provider at start; nothing here runs per chunk.
 */
import type { Endpoint } from '../endpoint.ts';
import type { FieldPolicy } from '../field-policy.ts';

/** One provider's wire conventions; see the file comment. */
export interface ProviderAdapter {
  /** Provider id from the config. */
  readonly id: string;
  /** Provider type (`openai`, `mock`). */
  readonly type: string;
  /** Scheme, host and port, e.g. `https://api.openai.com`: the key of the connection pool. */
  readonly origin: string;
  /** Path and query of an endpoint, e.g. `/v1/chat/completions`. */
  path(endpoint: Endpoint): string;
  /** Headers of every request, as a flat `[name, value, ...]` list: auth, extra headers, content type. */
  readonly headers: readonly string[];
  /** False when no client header is ever passed on, so callers skip looking. */
  readonly forwardsAnyHeader: boolean;
  /** True when the client request header `name` (lower case) is passed on to this provider. */
  forwardsHeader(name: string): boolean;
  /** Field policy for an upstream model (the provider's, merged with the model's), or null for none. */
  fieldPolicy(model: string): FieldPolicy | null;
}
