/**
 * The `openai` provider type against a real, hand-written OpenAI-like HTTP server (not the
 * mock): auth from a key file in a named header, base path and query kept, extra and forwarded
 * headers, field renames, CRLF streams cut at odd byte offsets, error bodies passed through,
 * connection reuse, and the key never logged.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { request } from 'undici';
import { LlmGateway } from '../src/llm/gateway.ts';
import { checkLlmConfig, LlmConfigSchema } from '../src/llm/schema.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { type LlmFront, openAiClient, startLlmFront, type TestOpenAi } from './helpers/llm.ts';
import { type CapturedLogs, captureLogs } from './helpers/logs.ts';

const baseline = handleSnapshot();
const FILE_KEY = 'sk-from-a-file-0000';
const CLIENT_KEY = 'sk-client-should-not-travel';
const REPLY = 'Grüße aus Köln 🚆 — 東京へ';
const BAD_REQUEST_BODY =
  '{"error":{"message":"max_completion_tokens too large","type":"invalid_request_error","param":"max_completion_tokens","code":"too_large"}}';

interface Seen {
  url: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
}

/** Exact bytes of the streamed reply, CRLF-framed as some providers do. */
function streamBytes(): Buffer {
  const base = { id: 'chatcmpl-real', object: 'chat.completion.chunk', created: 1, model: 'real-model' };
  const events = [
    { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] },
    ...Array.from(REPLY, (char) => ({
      ...base,
      choices: [{ index: 0, delta: { content: char }, finish_reason: null }],
    })),
    { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
    { ...base, choices: [], usage: { prompt_tokens: 11, completion_tokens: 22, total_tokens: 33 } },
  ];
  return Buffer.from(`${events.map((e) => `data: ${JSON.stringify(e)}\r\n\r\n`).join('')}data: [DONE]\r\n\r\n`);
}

let server: Server;
let connections = 0;
const seen: Seen[] = [];
let dir: string;
let logs: CapturedLogs;
let gateway: LlmGateway;
let front: LlmFront;
let oa: TestOpenAi;

function answer(req: IncomingMessage, res: ServerResponse, raw: string): void {
  const body = JSON.parse(raw) as Record<string, unknown>;
  seen.push({ url: req.url ?? '', headers: req.headers, body });
  if (req.headers['api-key'] !== FILE_KEY) {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end('{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key","param":null}}');
    return;
  }
  const content = (body.messages as Array<{ content: string }> | undefined)?.[0]?.content;
  if (content === 'html-error') {
    res.writeHead(502, { 'content-type': 'text/html' });
    res.end('<html><body><h1>502 Bad Gateway</h1></body></html>');
    return;
  }
  if (content === 'plain-429') {
    res.writeHead(429, { 'content-type': 'text/plain', 'retry-after': '7' });
    res.end('Too Many Requests');
    return;
  }
  if (content === 'json-400') {
    res.writeHead(400, { 'content-type': 'application/json', 'x-request-id': 'req-400' });
    res.end(BAD_REQUEST_BODY);
    return;
  }
  if (req.url?.startsWith('/api/v1/embeddings')) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        object: 'list',
        data: [{ object: 'embedding', index: 0, embedding: [0.5, -0.5] }],
        model: 'real-embed',
        usage: { prompt_tokens: 2, total_tokens: 2 },
      }),
    );
    return;
  }
  if (body.stream === true) {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'x-request-id': 'req-stream' });
    const bytes = streamBytes();
    // Odd-sized writes, so events and multi-byte characters straddle TCP segments.
    let at = 0;
    const next = (): void => {
      if (at >= bytes.length) {
        res.end();
        return;
      }
      res.write(bytes.subarray(at, at + 7));
      at += 7;
      setImmediate(next);
    };
    next();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': 'req-json', 'openai-processing-ms': '12' });
  res.end(
    JSON.stringify({
      id: 'chatcmpl-real',
      object: 'chat.completion',
      created: 1,
      model: 'real-model',
      choices: [{ index: 0, message: { role: 'assistant', content: REPLY }, finish_reason: 'stop', logprobs: null }],
      usage: { prompt_tokens: 5, completion_tokens: 6, total_tokens: 11 },
    }),
  );
}

before(async () => {
  server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      raw += chunk;
    });
    req.on('end', () => answer(req, res, raw));
  });
  server.on('connection', () => connections++);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  dir = await mkdtemp(join(tmpdir(), 'switchyard-llm-'));
  const keyFile = join(dir, 'key');
  await writeFile(keyFile, `${FILE_KEY}\n`);
  const config = LlmConfigSchema.parse({
    providers: {
      real: {
        type: 'openai',
        baseUrl: `http://127.0.0.1:${port}/api/v1?api-version=2024-10-21`,
        apiKeyFile: keyFile,
        authScheme: 'header:api-key',
        headers: { 'x-org': 'switchyard' },
        forwardHeaders: ['x-request-id'],
        fields: { rename: { max_tokens: 'max_completion_tokens' } },
        retry: { maxRetries: 0 },
      },
    },
    aliases: { real: { provider: 'real', model: 'real-model' } },
  });
  assert.deepEqual(checkLlmConfig(config), []);
  logs = captureLogs('debug');
  gateway = new LlmGateway(config, { logger: logs.logger });
  await gateway.ready();
  front = await startLlmFront(gateway);
  oa = openAiClient(front.url, { apiKey: CLIENT_KEY });
});

after(async () => {
  await oa.close();
  await front.close();
  await gateway.close();
  server.close();
  server.closeAllConnections();
  await once(server, 'close');
  await rm(dir, { recursive: true });
  await assertNoLeaks(baseline);
});

test('a non-streamed chat reaches the real server as configured, and its answer comes back', async () => {
  const { data, response } = await oa.client.chat.completions
    .create(
      { model: 'real', max_tokens: 64, messages: [{ role: 'user', content: 'hello' }] },
      { headers: { 'x-request-id': 'trace-1', 'x-not-forwarded': 'no' } },
    )
    .withResponse();
  assert.equal(data.choices[0].message.content, REPLY);
  assert.equal(response.headers.get('x-request-id'), 'req-json', 'provider headers come back');
  assert.equal(response.headers.get('openai-processing-ms'), '12');
  const last = seen.at(-1)!;
  assert.equal(last.url, '/api/v1/chat/completions?api-version=2024-10-21');
  assert.equal(last.headers['api-key'], FILE_KEY);
  assert.equal(last.headers.authorization, undefined, "the client's own key never travels upstream");
  assert.equal(last.headers['x-org'], 'switchyard');
  assert.equal(last.headers['x-request-id'], 'trace-1');
  assert.equal(last.headers['x-not-forwarded'], undefined);
  assert.equal(last.headers['accept-encoding'], 'identity');
  assert.equal(last.body.model, 'real-model');
  assert.equal(last.body.max_completion_tokens, 64);
  assert.equal(last.body.max_tokens, undefined);
});

test('a CRLF stream written in 7-byte pieces passes through byte for byte', async () => {
  const res = await request(`${front.url}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'real', stream: true, messages: [{ role: 'user', content: 'stream' }] }),
    dispatcher: oa.agent,
  });
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
  assert.equal(res.headers['x-request-id'], 'req-stream');
  assert.deepEqual(Buffer.from(await res.body.arrayBuffer()), streamBytes());

  const stream = await oa.client.chat.completions.create({
    model: 'real',
    stream: true,
    messages: [{ role: 'user', content: 'stream' }],
  });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(text, REPLY);
  const usage = gateway.stats().usage.find((u) => u.alias === 'real')!;
  assert.ok(usage.promptTokens >= 5 + 11 + 11, 'usage from JSON bodies and final stream chunks');
});

test("a provider's 400 reaches the client with its status and exact body", async () => {
  const res = await request(`${front.url}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'real', messages: [{ role: 'user', content: 'json-400' }] }),
    dispatcher: oa.agent,
  });
  assert.equal(res.statusCode, 400);
  assert.equal(res.headers['x-request-id'], 'req-400');
  assert.equal(await res.body.text(), BAD_REQUEST_BODY);
});

test('a non-JSON error page keeps its status and is wrapped in the OpenAI error shape', async () => {
  await assert.rejects(
    oa.client.chat.completions.create({ model: 'real', messages: [{ role: 'user', content: 'html-error' }] }),
    (error: unknown) => {
      assert.ok(error instanceof OpenAI.APIError);
      assert.equal(error.status, 502);
      assert.equal(error.code, 'SY_UPS_BAD_STATUS');
      assert.equal(error.type, 'server_error');
      assert.equal(error.headers.get('x-switchyard-error'), 'SY_UPS_BAD_STATUS');
      assert.match(error.message, /502 Bad Gateway/);
      return true;
    },
  );
});

test('a plain-text 429 is wrapped as a rate_limit_error and keeps its Retry-After', async () => {
  await assert.rejects(
    oa.client.chat.completions.create({ model: 'real', messages: [{ role: 'user', content: 'plain-429' }] }),
    (error: unknown) => {
      assert.ok(error instanceof OpenAI.RateLimitError);
      assert.equal(error.code, 'SY_UPS_BAD_STATUS');
      assert.equal(error.type, 'rate_limit_error');
      assert.equal(error.headers.get('retry-after'), '7');
      assert.equal(error.headers.get('x-switchyard-error'), 'SY_UPS_BAD_STATUS');
      assert.match(error.message, /Too Many Requests/);
      return true;
    },
  );
});

test('embeddings through the openai provider type', async () => {
  const reply = await oa.client.embeddings.create({ model: 'real', input: 'two words', encoding_format: 'float' });
  assert.deepEqual(reply.data[0].embedding, [0.5, -0.5]);
  assert.equal(seen.at(-1)!.url, '/api/v1/embeddings?api-version=2024-10-21');
});

test('connections to the provider are pooled and reused', async () => {
  const before = connections;
  for (let i = 0; i < 5; i++) {
    await oa.client.chat.completions.create({ model: 'real', messages: [{ role: 'user', content: 'again' }] });
  }
  assert.equal(connections - before, 0, 'the kept-alive connection served them all');
});

test('the key from the file never appears in the logs', () => {
  const text = JSON.stringify(logs.lines);
  assert.ok(logs.lines.some((l) => l.msg === 'llm request'));
  assert.ok(!text.includes(FILE_KEY));
  assert.ok(!text.includes(CLIENT_KEY));
});
