/**
 * The LLM gateway behind Switchyard's own HTTP engine (not node:http), driven by the official
 * `openai` client: the quick start's path from a newcomer's code to the mock provider.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import type { ConfigInput } from '../src/config/schema.ts';
import { Switchyard } from '../src/runtime/switchyard.ts';
import { parseAll, RawClient, rawExchange } from './helpers/http.ts';
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
      providers: { mock: { type: 'mock', mock: { chunkSize: 3, reply } }, echo: { type: 'mock' } },
      aliases: {
        chat: { provider: 'mock', model: 'mock-chat' },
        embed: { provider: 'mock', model: 'mock-embed' },
        echo: { provider: 'echo', model: 'mock-chat' },
      },
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

test('client headers reach a provider that forwards them (the header record is built on demand)', async () => {
  // The mock provider forwards x-mock-* headers; a mixed-case name must arrive lower-cased.
  await assert.rejects(
    client.chat.completions.create(
      { model: 'chat', messages: [{ role: 'user', content: 'hi' }] },
      { headers: { 'X-Mock-Fault': '400' } },
    ),
    (e: InstanceType<typeof OpenAI.APIError>) => e.status === 400,
  );
  const reply = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(reply.choices[0].message.content, 'héllo wörld ✓ — ok');
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

/** `switchyard_http_responses_total` of the llm route for one status. */
async function llmResponses(status: number): Promise<number> {
  const text = await proxy.metrics.registry.metrics();
  const m = text.match(new RegExp(`^switchyard_http_responses_total\\{route="llm",status="${status}"\\} (\\d+)$`, 'm'));
  return m === null ? 0 : Number(m[1]);
}

function post(path: string, body: string, version: string): string {
  return (
    `POST ${path} HTTP/${version}\r\nhost: llm.test\r\ncontent-type: application/json\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

function chatPost(stream: boolean, version = '1.1'): string {
  const body = JSON.stringify({ model: 'chat', stream, messages: [{ role: 'user', content: 'hi' }] });
  return post('/v1/chat/completions', body, version);
}

/** Embeddings of 64 inputs: a reply of several KiB. */
function bigPost(): string {
  return post('/v1/embeddings', JSON.stringify({ model: 'embed', input: Array.from({ length: 64 }, String) }), '1.1');
}

/** The `content` deltas of an SSE body, joined; throws unless the body ends with `[DONE]`. */
function streamedText(body: Buffer): string {
  const text = body.toString();
  assert.ok(text.endsWith('data: [DONE]\n\n') || text.endsWith('data: [DONE]\r\n\r\n'), 'ends with [DONE]');
  let out = '';
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith('data: {')) continue;
    out += JSON.parse(line.slice(6)).choices[0]?.delta?.content ?? '';
  }
  return out;
}

test('on the wire: events that arrive together leave as one valid chunk, small or over 4 KiB, byte for byte', async () => {
  const client = await new RawClient(port).connected();
  try {
    // The mock writes the whole stream at once: one read upstream holds many events.
    for (const [words, eol] of [
      [2, 'lf'],
      [300, 'lf'],
      [300, 'crlf'],
    ] as const) {
      const content = Array.from({ length: words }, (_, i) => `w${i}`).join(' ');
      const body = JSON.stringify({ model: 'echo', stream: true, messages: [{ role: 'user', content }] });
      client.write(
        `POST /v1/chat/completions HTTP/1.1\r\nhost: llm.test\r\ncontent-type: application/json\r\n` +
          `x-mock-chunk-size: 1000000\r\nx-mock-line-ending: ${eol}\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      const res = await client.read('POST');
      assert.equal(res.status, 200);
      assert.equal(res.headers['transfer-encoding'], 'chunked');
      if (words > 2) assert.ok(res.body.length > 4096, `a large burst (${res.body.length} bytes)`);
      if (eol === 'crlf') assert.ok(res.body.includes('\r\n\r\n'), 'CRLF framing passed as is');
      assert.equal(streamedText(res.body), `echo: ${content}`);
    }
  } finally {
    client.close();
  }
});

test('on the wire: pipelined replies in order, HEAD without a body, HTTP/1.0 streams to the close, each counted once', async () => {
  const ok = await llmResponses(200);
  const refused = await llmResponses(405);
  const client = await new RawClient(port).connected();
  try {
    // The third reply is over 4 KiB: written beside its head rather than copied into one buffer.
    client.write(chatPost(false) + chatPost(false) + bigPost());
    for (let i = 0; i < 3; i++) {
      const res = await client.read('POST');
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-length'], String(res.body.length));
      assert.equal(res.headers['transfer-encoding'], undefined);
      assert.ok(res.headers['x-request-id'], 'request id');
      const reply = JSON.parse(res.body.toString());
      if (i < 2) assert.equal(reply.object, 'chat.completion');
      else {
        assert.equal(reply.data.length, 64);
        assert.ok(res.body.length > 4096, `a large reply (${res.body.length} bytes)`);
      }
    }
    client.write('HEAD /v1/models HTTP/1.1\r\nhost: llm.test\r\n\r\n');
    const head = await client.read('HEAD');
    assert.equal(head.status, 405);
    assert.ok(Number(head.headers['content-length']) > 0, 'the length a GET would have had');
    assert.equal(head.body.length, 0);
    client.write(chatPost(true));
    const stream = await client.read('POST');
    assert.equal(stream.headers['transfer-encoding'], 'chunked');
    assert.ok(stream.body.toString().endsWith('data: [DONE]\n\n'), 'the connection still frames responses');
  } finally {
    client.close();
  }
  const old = await rawExchange(port, chatPost(true, '1.0'), { end: false });
  const [res] = parseAll(old.data, ['POST']);
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-length'], undefined);
  assert.equal(res.headers['transfer-encoding'], undefined);
  assert.ok(res.body.toString().endsWith('data: [DONE]\n\n'), 'read to the close');
  assert.equal(await llmResponses(200), ok + 5);
  assert.equal(await llmResponses(405), refused + 1);
});
