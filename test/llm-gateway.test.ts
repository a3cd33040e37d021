/**
 * The LLM gateway end to end with the official `openai` client against built-in mock
 * providers: chat (plain and streamed), legacy completions, embeddings, tool calls, field
 * policy, alias parameters, model addressing, request errors, usage accounting and the log line.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type Bindings, type ChildLoggerOptions, type Logger, pino } from 'pino';
import { request } from 'undici';
import { LlmGateway } from '../src/llm/gateway.ts';
import type { MockLlmServer } from '../src/llm/providers/mock-server.ts';
import { checkLlmConfig, type LlmConfigInput, LlmConfigSchema } from '../src/llm/schema.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { type LlmFront, openAiClient, startLlmFront, type TestOpenAi, weatherTool } from './helpers/llm.ts';
import { type CapturedLogs, captureLogs } from './helpers/logs.ts';

const baseline = handleSnapshot();
const PROVIDER_KEY = 'sk-provider-secret-1234';
const CLIENT_KEY = 'sk-client-secret-5678';
process.env.SY_TEST_LLM_KEY = PROVIDER_KEY;

const config: LlmConfigInput = {
  providers: {
    mock: { type: 'mock', apiKeyEnv: 'SY_TEST_LLM_KEY' },
    strict: {
      type: 'mock',
      fields: {
        deny: ['logit_bias'],
        rename: { max_tokens: 'max_completion_tokens' },
        transform: { cache: 'to-boolean' },
      },
      models: { 'strict-b': { fields: { deny: ['seed'] } } },
    },
  },
  aliases: {
    fast: { provider: 'mock', model: 'mock-1' },
    tuned: { provider: 'mock', model: 'mock-1', params: { temperature: 0.1, top_p: 0.5 } },
    strict: { provider: 'strict', model: 'strict-a' },
    'strict-b': { provider: 'strict', model: 'strict-b' },
  },
};

let logs: CapturedLogs;
let gateway: LlmGateway;
let front: LlmFront;
let oa: TestOpenAi;
let mock: MockLlmServer;
let strictMock: MockLlmServer;

before(async () => {
  const parsed = LlmConfigSchema.parse(config);
  assert.deepEqual(checkLlmConfig(parsed), []);
  logs = captureLogs('debug');
  gateway = new LlmGateway(parsed, { logger: logs.logger });
  await gateway.ready();
  mock = gateway.mockServer('mock')!;
  strictMock = gateway.mockServer('strict')!;
  front = await startLlmFront(gateway);
  oa = openAiClient(front.url, { apiKey: CLIENT_KEY });
});

after(async () => {
  await oa.close();
  await front.close();
  await gateway.close();
  await assertNoLeaks(baseline);
});

/** A raw request to the front, for what the openai client hides. */
async function raw(
  method: 'GET' | 'POST',
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const res = await request(front.url.replace('/v1', '') + path, {
    method,
    body,
    headers: { 'content-type': 'application/json', ...headers },
    dispatcher: oa.agent,
  });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

test('non-streaming chat: echo reply, usage, and who served it', async () => {
  const { data, response } = await oa.client.chat.completions
    .create({ model: 'fast', messages: [{ role: 'user', content: 'hello there' }] })
    .withResponse();
  assert.equal(data.choices[0].message.content, 'echo: hello there');
  assert.equal(data.choices[0].finish_reason, 'stop');
  assert.equal(data.model, 'mock-1', 'the alias resolved to the provider model');
  assert.deepEqual(data.usage, { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 });
  assert.equal(response.headers.get('x-switchyard-provider'), 'mock');
  assert.equal(response.headers.get('x-switchyard-attempts'), '1');
  assert.equal(mock.lastRequest?.body?.model, 'mock-1');
});

test('streaming chat: deltas reassemble the reply, usage arrives in the final chunk, [DONE] ends it', async () => {
  const stream = await oa.client.chat.completions.create({
    model: 'fast',
    stream: true,
    stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'stream me please' }],
  });
  let text = '';
  let usage: unknown = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, 'echo: stream me please');
  assert.deepEqual(usage, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
  const line = logs.lines.findLast((l) => l.msg === 'llm request')!;
  assert.equal(line.stream, true);
  assert.equal(line.promptTokens, 3);
  assert.equal(line.completionTokens, 4);
});

test('stream bytes are passed through unchanged: gateway and direct call match byte for byte', async () => {
  const body = JSON.stringify({
    model: 'mock-1',
    stream: true,
    stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'byte for byte ✓ 🚂' }],
  });
  const headers = { 'x-mock-line-ending': 'crlf', 'x-mock-chunk-size': '5', 'x-mock-chunk-delay-ms': '1' };
  const direct = await request(`${mock.url}/chat/completions`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...headers },
    dispatcher: oa.agent,
  });
  const expected = Buffer.from(await direct.body.arrayBuffer());
  const via = await request(`${front.url}/chat/completions`, {
    method: 'POST',
    body: body.replace('"mock-1"', '"fast"'),
    headers: { 'content-type': 'application/json', ...headers },
    dispatcher: oa.agent,
  });
  assert.equal(via.statusCode, 200);
  assert.match(String(via.headers['content-type']), /text\/event-stream/);
  const got = Buffer.from(await via.body.arrayBuffer());
  assert.ok(got.toString().includes('\r\n\r\n'), 'CRLF framing kept');
  assert.ok(got.toString().endsWith('data: [DONE]\r\n\r\n'));
  assert.deepEqual(got, expected);
});

test('multi-byte UTF-8 split across upstream chunks arrives intact', async () => {
  const content = 'héllo wörld 🚂 日本語テキスト ✓ ñ';
  const stream = await oa.client.chat.completions.create(
    { model: 'fast', stream: true, messages: [{ role: 'user', content }] },
    { headers: { 'x-mock-chunk-size': '3', 'x-mock-chunk-delay-ms': '1' } },
  );
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(text, `echo: ${content}`);
});

test('legacy completions, plain and streamed', async () => {
  const plain = await oa.client.completions.create({ model: 'fast', prompt: 'say this' });
  assert.equal(plain.choices[0].text, 'echo: say this');
  const stream = await oa.client.completions.create({ model: 'fast', prompt: 'say that', stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, 'echo: say that');
});

test('embeddings: base64 (the client default) and float, deterministic, with usage', async () => {
  const a = await oa.client.embeddings.create({ model: 'fast', input: ['alpha beta', 'gamma'] });
  assert.equal(a.data.length, 2);
  assert.equal(a.data[0].embedding.length, 8);
  assert.deepEqual(a.usage, { prompt_tokens: 3, total_tokens: 3 });
  const b = await oa.client.embeddings.create({ model: 'fast', input: 'alpha beta', encoding_format: 'float' });
  assert.equal(b.data[0].embedding.length, 8);
  for (let i = 0; i < 8; i++) assert.ok(Math.abs(b.data[0].embedding[i] - a.data[0].embedding[i]) < 1e-6);
  const norm = Math.hypot(...b.data[0].embedding);
  assert.ok(Math.abs(norm - 1) < 1e-5);
  const sized = await oa.client.embeddings.create({ model: 'fast', input: 'x', dimensions: 3 });
  assert.equal(sized.data[0].embedding.length, 3);
});

test('GET /v1/models lists the aliases', async () => {
  const list = await oa.client.models.list();
  assert.deepEqual(
    list.data.map((m) => m.id),
    ['fast', 'tuned', 'strict', 'strict-b'],
  );
});

test('tool calls: tools, tool_choice, response_format, logprobs and unknown fields reach the provider untouched', async () => {
  const request = {
    model: 'fast',
    messages: [{ role: 'user' as const, content: 'weather in Oslo?' }],
    tools: [weatherTool],
    tool_choice: { type: 'function' as const, function: { name: 'get_weather' } },
    response_format: { type: 'json_object' as const },
    logprobs: true,
    top_logprobs: 2,
    brand_new_vendor_field: { nested: [1, 2] },
  };
  const reply = await oa.client.chat.completions.create(request as never);
  const call = (
    reply as { choices: Array<{ message: { tool_calls?: Array<{ function: { name: string; arguments: string } }> } }> }
  ).choices[0].message.tool_calls![0];
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { echo: 'weather in Oslo?' });
  const seen = mock.lastRequest!.body!;
  for (const key of [
    'tools',
    'tool_choice',
    'response_format',
    'logprobs',
    'top_logprobs',
    'brand_new_vendor_field',
  ] as const) {
    assert.deepEqual(seen[key], (request as Record<string, unknown>)[key], key);
  }
});

test('tool calls streamed: deltas carry the call id, name and arguments in pieces', async () => {
  const stream = await oa.client.chat.completions.create({
    model: 'fast',
    stream: true,
    messages: [{ role: 'user', content: 'weather in Bergen?' }],
    tools: [weatherTool],
  });
  let name = '';
  let args = '';
  let finish: string | null = null;
  for await (const chunk of stream) {
    const choice = chunk.choices[0];
    for (const call of choice?.delta?.tool_calls ?? []) {
      name += call.function?.name ?? '';
      args += call.function?.arguments ?? '';
    }
    finish = choice?.finish_reason ?? finish;
  }
  assert.equal(name, 'get_weather');
  assert.deepEqual(JSON.parse(args), { echo: 'weather in Bergen?' });
  assert.equal(finish, 'tool_calls');
});

test('field policy: dropped, transformed and renamed fields are applied and reported, never silent', async () => {
  const { response } = await oa.client.chat.completions
    .create({
      model: 'strict',
      messages: [{ role: 'user', content: 'policy' }],
      max_tokens: 50,
      logit_bias: { '42': 1 },
      seed: 7,
      cache: { ttl: 60 },
      response_format: { type: 'json_object' },
    } as never)
    .withResponse();
  assert.equal(response.headers.get('x-switchyard-dropped-fields'), 'logit_bias');
  assert.equal(response.headers.get('x-switchyard-renamed-fields'), 'max_tokens=max_completion_tokens');
  assert.equal(response.headers.get('x-switchyard-transformed-fields'), 'cache');
  const seen = strictMock.lastRequest!.body!;
  assert.equal(seen.max_completion_tokens, 50);
  assert.equal(seen.max_tokens, undefined);
  assert.equal(seen.logit_bias, undefined);
  assert.equal(seen.cache, true);
  assert.equal(seen.seed, 7);
  assert.deepEqual(seen.response_format, { type: 'json_object' });
  const debug = logs.lines.findLast((l) => l.msg === 'llm request fields adapted')!;
  assert.deepEqual(debug.dropped, ['logit_bias']);
  assert.equal(debug.level, 20);

  const perModel = await oa.client.chat.completions
    .create({ model: 'strict-b', messages: [{ role: 'user', content: 'x' }], seed: 7, logit_bias: {} } as never)
    .withResponse();
  assert.equal(perModel.response.headers.get('x-switchyard-dropped-fields'), 'seed, logit_bias');
  assert.equal(strictMock.lastRequest!.body!.seed, undefined);
});

test('alias params fill in what the request leaves out, and never override it', async () => {
  await oa.client.chat.completions.create({ model: 'tuned', messages: [{ role: 'user', content: 'a' }] });
  assert.equal(mock.lastRequest!.body!.temperature, 0.1);
  assert.equal(mock.lastRequest!.body!.top_p, 0.5);
  await oa.client.chat.completions.create({
    model: 'tuned',
    temperature: 0.9,
    messages: [{ role: 'user', content: 'a' }],
  });
  assert.equal(mock.lastRequest!.body!.temperature, 0.9);
});

test('provider:model addressing for configured providers only', async () => {
  const reply = await oa.client.chat.completions.create({
    model: 'mock:any-model',
    messages: [{ role: 'user', content: 'hi' }],
  });
  assert.equal(reply.model, 'any-model');
  await assert.rejects(
    oa.client.chat.completions.create({ model: 'elsewhere:gpt-x', messages: [{ role: 'user', content: 'hi' }] }),
    (error: { status?: number; code?: string; param?: string }) =>
      error.status === 400 && error.code === 'SY_LLM_UNKNOWN_MODEL' && error.param === 'model',
  );
});

test('bad requests get the right 4xx in the OpenAI error shape and never reach a provider', async () => {
  const before = mock.counters.requests;
  const cases: Array<[Promise<{ status: number; text: string; headers: Record<string, unknown> }>, number, string]> = [
    [raw('POST', '/v1/chat/completions', '{"model":'), 400, 'SY_LLM_BAD_REQUEST'],
    [raw('POST', '/v1/chat/completions', '[1,2]'), 400, 'SY_LLM_BAD_REQUEST'],
    [raw('POST', '/v1/chat/completions', '{"messages":[]}'), 400, 'SY_LLM_BAD_REQUEST'],
    [raw('POST', '/v1/chat/completions', '{"model":"no-such-alias","messages":[]}'), 400, 'SY_LLM_UNKNOWN_MODEL'],
    [raw('POST', '/v1/images/generations', '{"model":"fast"}'), 404, 'SY_LLM_NOT_FOUND'],
    [raw('GET', '/v1/chat/completions'), 405, 'SY_LLM_METHOD_NOT_ALLOWED'],
    [raw('POST', '/v1/models', '{}'), 405, 'SY_LLM_METHOD_NOT_ALLOWED'],
  ];
  for (const [pending, status, code] of cases) {
    const res = await pending;
    assert.equal(res.status, status, res.text);
    const body = JSON.parse(res.text) as { error: { code: string; type: string; message: string } };
    assert.equal(body.error.code, code);
    assert.equal(typeof body.error.message, 'string');
    assert.equal(res.headers['x-switchyard-error'], code);
  }
  assert.equal(mock.counters.requests, before);
});

test('a default alias catches unknown models', async () => {
  const parsed = LlmConfigSchema.parse({
    providers: { m: { type: 'mock' } },
    aliases: { main: { provider: 'm', model: 'main-model' } },
    defaultAlias: 'main',
    providerModels: false,
  });
  const gw = new LlmGateway(parsed, { logger: logs.logger });
  const f = await startLlmFront(gw);
  const client = openAiClient(f.url);
  try {
    const reply = await client.client.chat.completions.create({
      model: 'whatever',
      messages: [{ role: 'user', content: 'x' }],
    });
    assert.equal(reply.model, 'main-model');
    const direct = await client.client.chat.completions.create({
      model: 'm:other',
      messages: [{ role: 'user', content: 'x' }],
    });
    assert.equal(direct.model, 'main-model', 'provider:model disabled: the default alias answers');
  } finally {
    await client.close();
    await f.close();
    await gw.close();
  }
});

test('a config that fails the cross-checks is refused at construction', () => {
  const parsed = LlmConfigSchema.parse({
    providers: { m: { type: 'mock' } },
    aliases: { a: { provider: 'nobody', model: 'x' } },
  });
  assert.throws(
    () => new LlmGateway(parsed, { logger: logs.logger }),
    (error: { code?: string; message: string }) =>
      error.code === 'SY_CFG_INVALID' && error.message.includes('llm.aliases."a".provider: unknown provider "nobody"'),
  );
});

test('usage is counted per alias and provider', () => {
  const stats = gateway.stats();
  const fast = stats.usage.find((u) => u.alias === 'fast' && u.provider === 'mock')!;
  assert.ok(fast.requests >= 8);
  assert.ok(fast.promptTokens > 0 && fast.completionTokens > 0);
  assert.equal(fast.totalTokens, fast.promptTokens + fast.completionTokens);
  assert.ok(stats.usage.some((u) => u.alias === 'mock:*'));
  assert.equal(stats.inFlight, 0);
  const provider = stats.providers.find((p) => p.id === 'mock')!;
  assert.deepEqual([provider.inFlight, provider.queued, provider.available], [0, 0, true]);
});

test('one log line per request with the essentials; keys and Authorization never logged', async () => {
  const before = logs.lines.length;
  await oa.client.chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'log me' }] });
  const lines = logs.lines.slice(before).filter((l) => l.msg === 'llm request');
  assert.equal(lines.length, 1);
  const line = lines[0];
  for (const key of [
    'alias',
    'provider',
    'model',
    'status',
    'attempts',
    'ttfbMs',
    'durationMs',
    'promptTokens',
    'completionTokens',
  ]) {
    assert.ok(key in line, key);
  }
  assert.equal(line.alias, 'fast');
  assert.equal(line.status, 200);
  assert.equal(mock.lastRequest!.headers.authorization, `Bearer ${PROVIDER_KEY}`, 'the provider key is sent');
  const everything = JSON.stringify(logs.lines);
  assert.ok(!everything.includes(PROVIDER_KEY));
  assert.ok(!everything.includes(CLIENT_KEY));
});

test("the gateway's logger redacts keys by itself, under a parent logger that redacts nothing", async () => {
  const lines: string[] = [];
  const parent = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
  // The child the gateway makes for itself (component: llm, its own redact list).
  let own: Logger | null = null;
  const child = parent.child.bind(parent);
  parent.child = ((bindings: Bindings, options?: ChildLoggerOptions) => {
    own ??= child(bindings, options) as Logger;
    return own;
  }) as unknown as typeof parent.child;
  const gw = new LlmGateway(LlmConfigSchema.parse({ providers: {}, aliases: {} }), { logger: parent });
  try {
    assert.ok(own !== null);
    const logged = own as Logger;
    logged.info({
      upstreamHeaders: { authorization: `Bearer ${PROVIDER_KEY}`, 'api-key': PROVIDER_KEY, 'x-api-key': PROVIDER_KEY },
      headers: { 'api-key': CLIENT_KEY, cookie: `session=${CLIENT_KEY}` },
      apiKey: PROVIDER_KEY,
      provider: { apiKey: PROVIDER_KEY },
    });
    assert.equal(lines.length, 1);
    const line = JSON.parse(lines[0]);
    assert.equal(line.component, 'llm');
    assert.equal(line.upstreamHeaders['x-api-key'], '[redacted]');
    assert.ok(!lines[0].includes(PROVIDER_KEY), lines[0]);
    assert.ok(!lines[0].includes(CLIENT_KEY), lines[0]);
    // The parent itself leaves such fields alone: the redaction above is the gateway's own.
    parent.info({ apiKey: PROVIDER_KEY });
    assert.ok(lines[1].includes(PROVIDER_KEY));
  } finally {
    await gw.close();
  }
});
