/**
 * The LLM gateway behind Switchyard's own HTTP engine (not node:http), driven by the official
 * `openai` client: the quick start's path from a newcomer's code to the mock provider.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import type { ConfigInput } from '../src/config/schema.ts';
import { Switchyard } from '../src/runtime/switchyard.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { freePort } from './helpers/net.ts';

const baseline = handleSnapshot();
let proxy: Switchyard;
let client: OpenAI;
let port: number;

function config(p: number, reply: string): ConfigInput {
  return {
    bind: '127.0.0.1',
    log: { level: 'silent' },
    llm: {
      providers: { mock: { type: 'mock', mock: { chunkSize: 3, reply } } },
      aliases: { chat: { provider: 'mock', model: 'mock-chat' }, embed: { provider: 'mock', model: 'mock-embed' } },
    },
    routes: [
      { name: 'llm', match: { ports: p, paths: ['/v1/*'] }, action: { type: 'llm' } },
      { name: 'other', match: { ports: p }, action: { type: 'respond', status: 200, body: 'not llm' } },
    ],
  };
}

before(async () => {
  port = await freePort();
  proxy = await Switchyard.start(config(port, 'héllo wörld ✓ — ok'));
  client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  await proxy.close();
  await assertNoLeaks(baseline);
});

test('non-streaming chat and embeddings through the engine', async () => {
  const reply = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(reply.choices[0].message.content, 'héllo wörld ✓ — ok');
  const emb = await client.embeddings.create({ model: 'embed', input: ['a', 'b'] });
  assert.equal(emb.data.length, 2);
});

test('a stream arrives intact, multi-byte characters split by the mock into 3-byte writes', async () => {
  const stream = await client.chat.completions.create({
    model: 'chat',
    messages: [{ role: 'user', content: 'hi' }],
    stream: true,
  });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(text, 'héllo wörld ✓ — ok');
});

test('an unknown model is a 400 in the OpenAI error shape', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'hi' }] }),
    (e: InstanceType<typeof OpenAI.APIError>) => e.status === 400 && e.code === 'SY_LLM_UNKNOWN_MODEL',
  );
});

test('a reload with a changed llm block swaps the gateway', async () => {
  await proxy.update(config(port, 'second config'));
  const reply = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(reply.choices[0].message.content, 'second config');
});

test('usage per alias and provider reaches the Prometheus registry', async () => {
  await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'count me' }] });
  const text = await proxy.metrics.registry.metrics();
  const requests = text.match(/^switchyard_llm_requests\{alias="chat",provider="mock"\} (\d+)$/m);
  assert.ok(requests !== null && Number(requests[1]) >= 1, text);
  const tokens = text.match(/^switchyard_llm_completion_tokens\{alias="chat",provider="mock"\} (\d+)$/m);
  assert.ok(tokens !== null && Number(tokens[1]) > 0, 'completion tokens counted');
  assert.match(text, /^switchyard_llm_provider_limit\{provider="mock",kind="limit"\} \d+$/m);
});
