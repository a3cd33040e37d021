import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LlmConfigSchema } from '../schema.ts';
import { MockAdapter } from './mock.ts';
import { adapterContract } from './provider-adapter.contract.ts';

adapterContract('mock', (config, key, url) => new MockAdapter('p', config, key, url));

test('mock adapter: x-mock-* headers pass so a request can pick its fault', () => {
  const config = LlmConfigSchema.parse({ providers: { p: { type: 'mock' } } }).providers.p;
  const adapter = new MockAdapter('p', config, null, 'http://127.0.0.1:1/v1');
  assert.ok(adapter.forwardsHeader('x-mock-fault'));
  assert.ok(!adapter.forwardsHeader('authorization'));
});
