/**
 * Adapter for the built-in mock provider: OpenAI conventions against the gateway's own
 * {@link MockLlmServer}, plus every `x-mock-*` client header passed on so a request can pick
 * its fault and pacing.
 */
import type { LlmProviderConfig } from '../schema.ts';
import { OpenAiAdapter } from './openai.ts';

/** The mock adapter; see the file comment. */
export class MockAdapter extends OpenAiAdapter {
  /** @param serverUrl the started mock server's base URL ({@link MockLlmServer.url}). */
  constructor(id: string, config: LlmProviderConfig, apiKey: string | null, serverUrl: string) {
    super(id, config, apiKey, serverUrl);
  }

  override get forwardsAnyHeader(): boolean {
    return true;
  }

  override forwardsHeader(name: string): boolean {
    return name.startsWith('x-mock-') || super.forwardsHeader(name);
  }
}
