/**
 * The contract every {@link ProviderAdapter} passes. A new adapter adds a three-line test file
 * calling {@link adapterContract} with a factory.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LlmConfigSchema, type LlmProviderConfig } from '../schema.ts';
import type { ProviderAdapter } from './provider-adapter.ts';

/** Builds an adapter of the type under test from a provider config (type fixed by the factory), a key and a base URL. */
export type AdapterFactory = (config: LlmProviderConfig, apiKey: string | null, baseUrl: string) => ProviderAdapter;

function provider(type: string, extra: Record<string, unknown> = {}): LlmProviderConfig {
  const base = type === 'mock' ? {} : { baseUrl: 'http://127.0.0.1:1/v1' };
  return LlmConfigSchema.parse({ providers: { p: { type, ...base, ...extra } } }).providers.p;
}

/** Runs the adapter contract for the provider `type`. */
export function adapterContract(type: string, make: AdapterFactory): void {
  test(`${type} adapter: endpoint paths sit under the base URL path and keep its query`, () => {
    const adapter = make(provider(type), null, 'https://llm.example:8443/api/v1/?api-version=2');
    assert.equal(adapter.origin, 'https://llm.example:8443');
    assert.equal(adapter.path('chat'), '/api/v1/chat/completions?api-version=2');
    assert.equal(adapter.path('completions'), '/api/v1/completions?api-version=2');
    assert.equal(adapter.path('embeddings'), '/api/v1/embeddings?api-version=2');
  });

  test(`${type} adapter: auth schemes put the key where they say, and only there`, () => {
    const pairs = (a: ProviderAdapter) => {
      const out: Record<string, string> = {};
      for (let i = 0; i < a.headers.length; i += 2) out[a.headers[i]] = a.headers[i + 1];
      return out;
    };
    const bearer = pairs(make(provider(type, { headers: { 'X-Extra': '1' } }), 'sk-1', 'http://h/v1'));
    assert.equal(bearer.authorization, 'Bearer sk-1');
    assert.equal(bearer['x-extra'], '1');
    assert.equal(bearer['content-type'], 'application/json');
    const named = pairs(make(provider(type, { authScheme: 'header:Api-Key' }), 'sk-2', 'http://h/v1'));
    assert.equal(named['api-key'], 'sk-2');
    assert.equal(named.authorization, undefined);
    const none = make(provider(type, { authScheme: 'none' }), 'sk-3', 'http://h/v1');
    assert.ok(!none.headers.includes('sk-3') && !none.headers.some((h) => h.includes('sk-3')));
    assert.equal(make(provider(type), null, 'http://h/v1').headers.length % 2, 0);
  });

  test(`${type} adapter: client auth is never forwarded; listed headers are`, () => {
    const adapter = make(provider(type, { forwardHeaders: ['X-Request-Id'] }), null, 'http://h/v1');
    assert.ok(adapter.forwardsAnyHeader);
    assert.ok(adapter.forwardsHeader('x-request-id'));
    for (const name of ['authorization', 'cookie', 'host', 'content-length']) assert.ok(!adapter.forwardsHeader(name));
  });

  test(`${type} adapter: field policy per model, provider policy otherwise`, () => {
    const adapter = make(
      provider(type, { fields: { deny: ['a'] }, models: { special: { fields: { deny: ['b'] } } } }),
      null,
      'http://h/v1',
    );
    const body = { a: 1, b: 2 };
    assert.deepEqual(adapter.fieldPolicy('special')!.apply({ ...body }).dropped, ['a', 'b']);
    assert.deepEqual(adapter.fieldPolicy('other')!.apply({ ...body }).dropped, ['a']);
    assert.equal(make(provider(type), null, 'http://h/v1').fieldPolicy('any'), null);
  });
}
