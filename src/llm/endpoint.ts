/**
 * The OpenAI-compatible endpoints the gateway serves, recognised by the end of the path so a
 * route may mount them under any prefix (`/v1/chat/completions`, `/llm/v1/chat/completions`).
 */

/** An endpoint forwarded to providers. */
export type Endpoint = 'chat' | 'completions' | 'embeddings';

/** An endpoint the gateway answers, `models` locally from its aliases. */
export type GatewayEndpoint = Endpoint | 'models';

/** Path suffix sent to providers, after their base URL path. */
export const ENDPOINT_PATHS: Readonly<Record<Endpoint, string>> = {
  chat: '/chat/completions',
  completions: '/completions',
  embeddings: '/embeddings',
};

/** The endpoint a request path (query excluded) names, or null. */
export function matchEndpoint(path: string): GatewayEndpoint | null {
  if (path.endsWith('/chat/completions')) return 'chat';
  if (path.endsWith('/completions')) return 'completions';
  if (path.endsWith('/embeddings')) return 'embeddings';
  if (path.endsWith('/models')) return 'models';
  return null;
}
