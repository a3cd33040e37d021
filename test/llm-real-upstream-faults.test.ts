/**
 * Failures of real, hand-written OpenAI-like upstreams (node:http servers, not the mock) as the
 * official `openai` client sees them through a Switchyard listener: JSON 401 and 500 bodies
 * intact, Retry-After waited out before a retry and then the alias's fallback, tool calls both
 * ways, a stream cut by the upstream, and client aborts reaching the upstream as a closed request.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, beforeEach, test } from 'node:test';
import OpenAI from 'openai';
import { request } from 'undici';
import type { ConfigInput } from '../src/config/schema.ts';
import { Switchyard } from '../src/runtime/switchyard.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { openAiClient, type TestOpenAi, weatherTool } from './helpers/llm.ts';
import { captureLogs } from './helpers/logs.ts';
import { freePort, waitFor } from './helpers/net.ts';

const baseline = handleSnapshot();
/** Per-test bound, so a hang fails the test instead of stalling the file. */
const TIMEOUT = { timeout: 20_000 };

/** One request as the upstream received it. */
interface Arrival {
  /** `performance.now()` when the request (headers and body) had arrived. */
  at: number;
  url: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
  res: ServerResponse;
  /** When the response was handed to the OS in full, or -1. */
  finishedAt: number;
  /** When the connection closed before the response finished (the gateway hung up), or -1. */
  closedAt: number;
}

type Handler = (arrival: Arrival) => void;

/** An OpenAI-like upstream whose behaviour each test sets with `handle`. */
class RealUpstream {
  readonly server: Server;
  readonly sockets = new Set<Socket>();
  readonly arrivals: Arrival[] = [];
  handle: Handler = answerText('ok');
  url = '';

  constructor() {
    this.server = createServer((req, res) => {
      let raw = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => {
        raw += chunk;
      });
      req.on('end', () => {
        const arrival: Arrival = {
          at: performance.now(),
          url: req.url ?? '',
          headers: req.headers,
          body: JSON.parse(raw) as Record<string, unknown>,
          res,
          finishedAt: -1,
          closedAt: -1,
        };
        res.once('finish', () => {
          arrival.finishedAt = performance.now();
        });
        res.once('close', () => {
          if (!res.writableFinished) arrival.closedAt = performance.now();
        });
        this.arrivals.push(arrival);
        this.handle(arrival);
      });
    });
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  async listen(): Promise<void> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1`;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.server.close();
    await once(this.server, 'close');
  }
}

function completion(model: string, content: string): string {
  return JSON.stringify({
    id: 'chatcmpl-real',
    object: 'chat.completion',
    created: 1,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop', logprobs: null }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  });
}

/** A handler answering 200 with `content`. */
function answerText(content: string): Handler {
  return ({ res, body }) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(completion(String(body.model), content));
  };
}

/** A handler answering `status` with an OpenAI error body and extra headers. */
function answerError(status: number, body: string, headers: Record<string, string> = {}): Handler {
  return ({ res }) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(body);
  };
}

/** SSE bytes of chat chunks, LF-framed. */
function sse(deltas: Array<{ delta: Record<string, unknown>; finish_reason?: string }>, done: boolean): Buffer {
  const base = { id: 'chatcmpl-real', object: 'chat.completion.chunk', created: 1, model: 'up-model' };
  const events = deltas.map(
    ({ delta, finish_reason }) =>
      `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, finish_reason: finish_reason ?? null }] })}\n\n`,
  );
  return Buffer.from(events.join('') + (done ? 'data: [DONE]\n\n' : ''));
}

/** Writes `bytes` in `size`-byte pieces, one per event-loop turn, then calls `then`. */
function writeInPieces(res: ServerResponse, bytes: Buffer, size: number, then: () => void): void {
  let at = 0;
  const next = (): void => {
    if (res.destroyed) return;
    if (at >= bytes.length) {
      then();
      return;
    }
    res.write(bytes.subarray(at, at + size));
    at += size;
    setImmediate(next);
  };
  next();
}

const STREAM_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' };

let primary: RealUpstream;
let backup: RealUpstream;
let proxy: Switchyard;
let oa: TestOpenAi;
let baseURL: string;

before(async () => {
  primary = new RealUpstream();
  backup = new RealUpstream();
  await primary.listen();
  await backup.listen();
  const port = await freePort();
  const config: ConfigInput = {
    bind: '127.0.0.1',
    log: { level: 'info' },
    llm: {
      providers: {
        // A short backoff, so a wait of a second or more can only come from Retry-After.
        primary: { type: 'openai', baseUrl: primary.url, retry: { maxRetries: 1, baseDelayMs: 10, maxDelayMs: 20 } },
        direct: { type: 'openai', baseUrl: primary.url, retry: { maxRetries: 0 } },
        backup: { type: 'openai', baseUrl: backup.url, retry: { maxRetries: 0 } },
      },
      aliases: {
        main: { provider: 'primary', model: 'up-model', fallbacks: ['spare'] },
        retrying: { provider: 'primary', model: 'up-model' },
        direct: { provider: 'direct', model: 'up-model' },
        spare: { provider: 'backup', model: 'spare-model' },
      },
    },
    routes: [{ name: 'llm', match: { ports: port, paths: ['/v1/*'] }, action: { type: 'llm' } }],
  };
  proxy = await Switchyard.start(config, { logger: captureLogs('info').logger });
  baseURL = `http://127.0.0.1:${port}/v1`;
  oa = openAiClient(baseURL);
});

after(async () => {
  await oa.close();
  await proxy.close();
  await primary.close();
  await backup.close();
  await assertNoLeaks(baseline);
});

/** Waits until `check` holds, polling; fails after `timeoutMs`. */
beforeEach(async () => {
  // The previous test's exchange (an aborted or broken one included) is over before the next.
  await waitFor(() => proxy.llm!.stats().inFlight === 0, 3000, 'the gateway is idle');
  primary.arrivals.length = 0;
  backup.arrivals.length = 0;
  primary.handle = answerText('primary');
  backup.handle = answerText('backup');
});

const UNAUTHORIZED = {
  error: {
    message:
      'Incorrect API key provided: sk-****. You can find your API key at https://platform.openai.com/account/api-keys.',
    type: 'invalid_request_error',
    param: null,
    code: 'invalid_api_key',
  },
};

test(
  "a provider's JSON 401 reaches the client as an AuthenticationError, not retried, no fallback",
  TIMEOUT,
  async () => {
    primary.handle = answerError(401, JSON.stringify(UNAUTHORIZED), { 'x-request-id': 'req-401' });
    await assert.rejects(
      oa.client.chat.completions.create({ model: 'main', messages: [{ role: 'user', content: 'hi' }] }),
      (error: unknown) => {
        assert.ok(error instanceof OpenAI.AuthenticationError, String(error));
        assert.equal(error.status, 401);
        assert.equal(error.type, 'invalid_request_error');
        assert.equal(error.code, 'invalid_api_key');
        assert.deepEqual(error.error, UNAUTHORIZED.error);
        assert.equal(error.message, `401 ${UNAUTHORIZED.error.message}`);
        assert.equal(error.headers.get('x-switchyard-attempts'), '1');
        assert.equal(error.headers.get('x-switchyard-error'), null, "the provider's error, not ours");
        return true;
      },
    );
    assert.equal(primary.arrivals.length, 1);
    assert.equal(backup.arrivals.length, 0, 'a 401 is not a reason to fall back');
  },
);

test(
  "a provider's JSON 500 is retried, then reaches the client as an InternalServerError, body intact",
  TIMEOUT,
  async () => {
    const body = {
      error: {
        message: 'The server had an error while processing your request.',
        type: 'server_error',
        param: null,
        code: null,
      },
    };
    primary.handle = answerError(500, JSON.stringify(body));
    const res = await request(`${baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'retrying', messages: [{ role: 'user', content: 'raw' }] }),
      dispatcher: oa.agent,
    });
    assert.equal(res.statusCode, 500);
    assert.equal(await res.body.text(), JSON.stringify(body), 'byte for byte');
    assert.equal(res.headers['x-switchyard-attempts'], '2');
    primary.arrivals.length = 0;

    await assert.rejects(
      oa.client.chat.completions.create({ model: 'retrying', messages: [{ role: 'user', content: 'hi' }] }),
      (error: unknown) => {
        assert.ok(error instanceof OpenAI.InternalServerError, String(error));
        assert.equal(error.status, 500);
        assert.equal(error.type, 'server_error');
        assert.equal(error.code, null);
        assert.deepEqual(error.error, body.error);
        assert.equal(error.message, `500 ${body.error.message}`);
        return true;
      },
    );
    assert.equal(primary.arrivals.length, 2, 'the first try and one retry');
  },
);

test('a JSON 429 with Retry-After is waited out before the retry; then the fallback answers', TIMEOUT, async () => {
  const limited = {
    error: { message: 'Rate limit reached for requests', type: 'requests', param: null, code: 'rate_limit_exceeded' },
  };
  primary.handle = answerError(429, JSON.stringify(limited), { 'retry-after': '1' });
  const { data, response } = await oa.client.chat.completions
    .create({ model: 'main', messages: [{ role: 'user', content: 'hi' }] })
    .withResponse();
  assert.equal(data.choices[0].message.content, 'backup');
  assert.equal(response.headers.get('x-switchyard-provider'), 'backup');
  assert.equal(response.headers.get('x-switchyard-attempts'), '3');

  const [first, retry] = primary.arrivals;
  assert.equal(primary.arrivals.length, 2, 'the first try and one retry');
  const waitedMs = retry.at - first.finishedAt;
  // The 429 was on the wire at `finishedAt`; the gateway read it later still.
  assert.ok(waitedMs >= 1000, `retried ${waitedMs.toFixed(1)} ms after the 429, before its Retry-After: 1`);
  assert.ok(waitedMs < 6000, `retried ${waitedMs.toFixed(1)} ms after the 429`);
  assert.equal(backup.arrivals.length, 1);
  assert.equal(backup.arrivals[0].body.model, 'spare-model');
  assert.ok(backup.arrivals[0].at >= retry.finishedAt, 'the fallback only after the retries were spent');
});

test('a 503 with retry-after-ms is waited out, and the retry on the same provider answers', TIMEOUT, async () => {
  let calls = 0;
  primary.handle = (arrival) => {
    if (calls++ === 0) {
      answerError(503, '{"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}', {
        'retry-after-ms': '700',
      })(arrival);
    } else {
      answerText('second time lucky')(arrival);
    }
  };
  const { data, response } = await oa.client.chat.completions
    .create({ model: 'main', messages: [{ role: 'user', content: 'hi' }] })
    .withResponse();
  assert.equal(data.choices[0].message.content, 'second time lucky');
  assert.equal(response.headers.get('x-switchyard-provider'), 'primary');
  assert.equal(response.headers.get('x-switchyard-attempts'), '2');
  const [first, retry] = primary.arrivals;
  const waitedMs = retry.at - first.finishedAt;
  assert.ok(waitedMs >= 700, `retried ${waitedMs.toFixed(1)} ms after the 503, before its retry-after-ms: 700`);
  assert.equal(backup.arrivals.length, 0);
});

test(
  'tools and tool_choice reach the upstream unchanged; streamed tool_call deltas reach the SDK intact',
  TIMEOUT,
  async () => {
    const toolStream = sse(
      [
        {
          delta: {
            role: 'assistant',
            content: null,
            tool_calls: [
              { index: 0, id: 'call_oslo', type: 'function', function: { name: 'get_weather', arguments: '' } },
            ],
          },
        },
        { delta: { tool_calls: [{ index: 0, function: { arguments: '{"ci' } }] } },
        { delta: { tool_calls: [{ index: 0, function: { arguments: 'ty":"Oslo"}' } }] } },
        {
          delta: {
            tool_calls: [
              { index: 1, id: 'call_koln', type: 'function', function: { name: 'get_weather', arguments: '{"city":' } },
            ],
          },
        },
        { delta: { tool_calls: [{ index: 1, function: { arguments: '"Köln"}' } }] } },
        { delta: {}, finish_reason: 'tool_calls' },
      ],
      true,
    );
    primary.handle = ({ res }) => {
      res.writeHead(200, STREAM_HEADERS);
      // 5-byte pieces: events and the multi-byte "ö" straddle TCP segments.
      writeInPieces(res, toolStream, 5, () => res.end());
    };
    const tools = [weatherTool];
    const toolChoice = { type: 'function' as const, function: { name: 'get_weather' } };
    const stream = oa.client.chat.completions.stream({
      model: 'main',
      messages: [{ role: 'user', content: 'weather in Oslo and Köln?' }],
      tools,
      tool_choice: toolChoice,
      parallel_tool_calls: true,
    });
    const final = await stream.finalChatCompletion();

    const seen = primary.arrivals[0].body;
    assert.deepEqual(seen.tools, tools);
    assert.deepEqual(seen.tool_choice, toolChoice);
    assert.equal(seen.parallel_tool_calls, true);
    assert.equal(seen.stream, true);
    assert.equal(seen.model, 'up-model');

    const choice = final.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    const calls = (choice.message.tool_calls ?? []).map((call) => {
      assert.equal(call.type, 'function');
      return { id: call.id, name: call.function.name, arguments: call.function.arguments };
    });
    assert.deepEqual(calls, [
      { id: 'call_oslo', name: 'get_weather', arguments: '{"city":"Oslo"}' },
      { id: 'call_koln', name: 'get_weather', arguments: '{"city":"Köln"}' },
    ]);
  },
);

/** A handler that streams three content events, then destroys the socket. */
const cutAfterThree: Handler = ({ res }) => {
  res.writeHead(200, STREAM_HEADERS);
  const events = sse(
    [
      { delta: { role: 'assistant', content: 'one ' } },
      { delta: { content: 'two ' } },
      { delta: { content: 'three' } },
    ],
    false,
  );
  res.write(events, () => {
    // Past the point of retrying: the events have reached the client before the cut.
    setTimeout(() => res.socket?.destroy(), 100);
  });
};

test('an upstream that cuts the stream mid-way: the SDK iteration throws, no [DONE] arrives', TIMEOUT, async () => {
  primary.handle = cutAfterThree;
  const stream = await oa.client.chat.completions.create({
    model: 'direct',
    stream: true,
    messages: [{ role: 'user', content: 'count' }],
  });
  let text = '';
  await assert.rejects(
    (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    })(),
    (error: unknown) => {
      assert.ok(error instanceof OpenAI.APIError, String(error));
      assert.equal(error.code, 'SY_UPS_STREAM_BROKEN');
      assert.equal(error.type, 'server_error');
      assert.match(error.message, /provider direct broke/);
      return true;
    },
  );
  assert.equal(text, 'one two three', 'what came before the cut was delivered');

  // The same on the wire: the three events, one error event, and the end; no [DONE].
  const res = await request(`${baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'direct', stream: true, messages: [{ role: 'user', content: 'count' }] }),
    dispatcher: oa.agent,
  });
  const body = await res.body.text();
  assert.ok(!body.includes('[DONE]'), body);
  const events = body.split('\n\n').filter((e) => e !== '');
  assert.equal(events.length, 4, body);
  assert.match(events[3], /^data: \{"error":\{.*"code":"SY_UPS_STREAM_BROKEN"/);
  assert.equal(primary.arrivals.length, 2, 'a stream that had started is never retried');
});

test('an SDK abort mid-stream closes the real upstream request promptly', TIMEOUT, async () => {
  primary.handle = ({ res }) => {
    res.writeHead(200, STREAM_HEADERS);
    // One event, then nothing: only the gateway hanging up ends this response.
    res.write(sse([{ delta: { role: 'assistant', content: 'first' } }], false));
  };
  const controller = new AbortController();
  const stream = await oa.client.chat.completions.create(
    { model: 'direct', stream: true, messages: [{ role: 'user', content: 'long story' }] },
    { signal: controller.signal },
  );
  let chunks = 0;
  let abortedAt = 0;
  // The SDK ends its iteration quietly when its own signal aborts it.
  await (async () => {
    for await (const _ of stream) {
      if (++chunks === 1) {
        abortedAt = performance.now();
        controller.abort();
      }
    }
  })().catch(() => {});
  assert.equal(chunks, 1);
  const upstream = primary.arrivals[0];
  await waitFor(() => upstream.closedAt >= 0, 3000, 'the upstream request sees close');
  const afterMs = upstream.closedAt - abortedAt;
  assert.ok(afterMs < 1000, `closed ${afterMs.toFixed(1)} ms after the abort`);
});

test('an SDK abort before the first byte closes the real upstream request promptly', TIMEOUT, async () => {
  primary.handle = () => {
    // Never answers: only the gateway hanging up ends this request.
  };
  const controller = new AbortController();
  const call = oa.client.chat.completions.create(
    { model: 'direct', messages: [{ role: 'user', content: 'think hard' }] },
    { signal: controller.signal },
  );
  await waitFor(() => primary.arrivals.length === 1, 3000, 'the upstream has the request');
  const abortedAt = performance.now();
  controller.abort();
  await assert.rejects(call, (error: unknown) => error instanceof OpenAI.APIUserAbortError);
  const upstream = primary.arrivals[0];
  await waitFor(() => upstream.closedAt >= 0, 3000, 'the upstream request sees close');
  const afterMs = upstream.closedAt - abortedAt;
  assert.ok(afterMs < 1000, `closed ${afterMs.toFixed(1)} ms after the abort`);
});

test("regression: a provider's x-request-id reaches the client alone, not joined with ours", TIMEOUT, async () => {
  primary.handle = answerError(401, JSON.stringify(UNAUTHORIZED), { 'x-request-id': 'req-401' });
  await assert.rejects(
    oa.client.chat.completions.create({ model: 'direct', messages: [{ role: 'user', content: 'hi' }] }),
    (error: unknown) => {
      assert.ok(error instanceof OpenAI.AuthenticationError, String(error));
      assert.equal(error.requestID, 'req-401', 'the id to quote to the provider');
      return true;
    },
  );

  primary.handle = ({ res }) => {
    res.writeHead(200, { ...STREAM_HEADERS, 'x-request-id': 'req-stream' });
    res.end(sse([{ delta: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], true));
  };
  const streamed = await oa.client.chat.completions
    .create({ model: 'direct', stream: true, messages: [{ role: 'user', content: 'hi' }] })
    .withResponse();
  for await (const _ of streamed.data);
  assert.equal(streamed.response.headers.get('x-request-id'), 'req-stream');

  // Without one from the provider, the client gets ours.
  primary.handle = answerText('no id');
  const { response } = await oa.client.chat.completions
    .create({ model: 'direct', messages: [{ role: 'user', content: 'hi' }] })
    .withResponse();
  assert.match(String(response.headers.get('x-request-id')), /^[0-9a-f]{12}-\w+$/);
});
