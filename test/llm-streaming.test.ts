/**
 * Streams through the gateway when things go wrong: an upstream that dies mid-stream, one that
 * stalls, a client that leaves, a client that reads slowly, and a gateway that shuts down.
 */
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI from 'openai';
import { request } from 'undici';
import { LlmGateway } from '../src/llm/gateway.ts';
import type { MockLlmServer } from '../src/llm/providers/mock-server.ts';
import { type LlmConfigInput, LlmConfigSchema } from '../src/llm/schema.ts';
import { clientGone, type LlmRequest, type LlmResponse } from '../src/llm/types.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { type LlmFront, openAiClient, startLlmFront, type TestOpenAi } from './helpers/llm.ts';
import { type CapturedLogs, captureLogs } from './helpers/logs.ts';

const baseline = handleSnapshot();

const config: LlmConfigInput = {
  providers: {
    plain: { type: 'mock', retry: { maxRetries: 0 } },
    retrying: { type: 'mock', retry: { maxRetries: 1, baseDelayMs: 10 } },
    idle: { type: 'mock', timeouts: { idleMs: 300 }, retry: { maxRetries: 0 } },
  },
  aliases: {
    plain: { provider: 'plain', model: 'm' },
    retrying: { provider: 'retrying', model: 'm' },
    idle: { provider: 'idle', model: 'm' },
  },
};

let logs: CapturedLogs;
let gateway: LlmGateway;
let front: LlmFront;
let oa: TestOpenAi;
let plain: MockLlmServer;
/** Largest amount the gateway left queued in a response at once (node:http's writableLength). */
let maxQueuedBytes = 0;

before(async () => {
  logs = captureLogs('info');
  gateway = new LlmGateway(LlmConfigSchema.parse(config), { logger: logs.logger });
  await gateway.ready();
  plain = gateway.mockServer('plain')!;
  // Watches how much the gateway makes node:http buffer: with backpressure it stays near the
  // stream's high-water mark however slow the client is.
  front = await startLlmFront({
    handle(req: LlmRequest, res: LlmResponse) {
      const node = res as ServerResponse;
      const write = node.write.bind(node) as (chunk: Buffer | string) => boolean;
      node.write = ((chunk: Buffer | string) => {
        const ok = write(chunk);
        maxQueuedBytes = Math.max(maxQueuedBytes, node.writableLength);
        return ok;
      }) as typeof node.write;
      gateway.handle(req, res);
    },
  });
  oa = openAiClient(front.url);
});

after(async () => {
  await oa.close();
  await front.close();
  await gateway.close();
  await assertNoLeaks(baseline);
});

const words = 'one two three four five six seven eight nine ten';

async function rawStream(model: string, headers: Record<string, string>, content = words): Promise<string> {
  const res = await request(`${front.url}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model, stream: true, messages: [{ role: 'user', content }] }),
    dispatcher: oa.agent,
  });
  assert.equal(res.statusCode, 200);
  return res.body.text();
}

test('an upstream cut mid-stream reaches the client as an error event, never as [DONE]', async () => {
  const stream = await oa.client.chat.completions.create(
    { model: 'plain', stream: true, messages: [{ role: 'user', content: words }] },
    { headers: { 'x-mock-fault': 'cut', 'x-mock-cut-after': '4' } },
  );
  let text = '';
  await assert.rejects(
    async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    },
    (error: unknown) => error instanceof OpenAI.APIError && error.code === 'SY_UPS_STREAM_BROKEN',
  );
  assert.equal(text, 'echo: one two ', 'the events before the cut were delivered');

  const raw = await rawStream('plain', { 'x-mock-fault': 'cut', 'x-mock-cut-after': '4', 'x-mock-chunk-size': '7' });
  assert.ok(!raw.includes('[DONE]'));
  const events = raw.split('\n\n');
  assert.equal(events.pop(), '', 'the stream ends at an event boundary');
  const last = JSON.parse(events.pop()!.slice('data: '.length)) as { error: { code: string; type: string } };
  assert.equal(last.error.code, 'SY_UPS_STREAM_BROKEN');
  assert.equal(last.error.type, 'server_error');
  for (const event of events) JSON.parse(event.slice('data: '.length));
});

test('the error event of a broken CRLF stream is CRLF-framed too', async () => {
  const raw = await rawStream('plain', {
    'x-mock-fault': 'cut',
    'x-mock-cut-after': '4',
    'x-mock-chunk-size': '7',
    'x-mock-line-ending': 'crlf',
  });
  assert.ok(raw.endsWith('\r\n\r\n'), 'ends with a CRLF blank line');
  const events = raw.split('\r\n\r\n');
  assert.equal(events.pop(), '');
  assert.equal(events.length, 5, 'four upstream events and the error event, no LF-only frame among them');
  for (const event of events) assert.ok(!/(^|[^\r])\n/.test(event), 'no bare LF');
  const last = JSON.parse(events.pop()!.slice('data: '.length)) as { error: { code: string } };
  assert.equal(last.error.code, 'SY_UPS_STREAM_BROKEN');
});

test('a stream that breaks before its first event is retried, invisibly to the client', async () => {
  const mock = gateway.mockServer('retrying')!;
  mock.enqueueFaults('cut');
  const { data: stream, response } = await oa.client.chat.completions
    .create(
      { model: 'retrying', stream: true, messages: [{ role: 'user', content: words }] },
      { headers: { 'x-mock-cut-after': '0' } },
    )
    .withResponse();
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(text, `echo: ${words}`);
  assert.equal(response.headers.get('x-switchyard-attempts'), '2');
});

test('an upstream that stalls mid-stream is ended by the idle timeout with an error event', async () => {
  const stream = await oa.client.chat.completions.create(
    { model: 'idle', stream: true, messages: [{ role: 'user', content: words }] },
    { headers: { 'x-mock-fault': 'stall' } },
  );
  const started = performance.now();
  await assert.rejects(
    async () => {
      for await (const _ of stream);
    },
    (error: unknown) => error instanceof OpenAI.APIError && error.code === 'SY_UPS_IDLE_TIMEOUT',
  );
  assert.ok(performance.now() - started < 3000);
});

test('a client that disconnects cancels the upstream call at once', async () => {
  const disconnects = plain.counters.disconnects;
  const stream = await oa.client.chat.completions.create(
    { model: 'plain', stream: true, messages: [{ role: 'user', content: words }] },
    { headers: { 'x-mock-chunk-delay-ms': '100' } },
  );
  let chunks = 0;
  for await (const _ of stream) {
    if (++chunks === 2) break;
  }
  const left = performance.now();
  while (plain.counters.disconnects === disconnects && performance.now() - left < 2000) await sleep(5);
  assert.equal(plain.counters.disconnects, disconnects + 1, 'the mock saw its client go');
  assert.ok(performance.now() - left < 500, 'well before the stream would have ended');
  while (gateway.stats().inFlight > 0) await sleep(5);
  assert.equal(gateway.stats().providers.find((p) => p.id === 'plain')!.inFlight, 0, 'slot released');
  const line = logs.lines.findLast((l) => l.msg === 'llm request')!;
  assert.equal(line.status, 499);
  assert.equal(line.code, 'SY_LLM_CLIENT_CLOSED');
});

test('a client that leaves in the same tick as its request still cancels the upstream call', async () => {
  // The exchange arms its deadline once undici has written the request (after the tick); a
  // disconnect before that must not be lost. Undici may drop the aborted request before it is
  // written, and then the mock never sees it: either way the call must end at once, not when the
  // mock would have answered.
  const disconnects = plain.counters.disconnects;
  const requests = plain.counters.requests;
  const res = new SlowResponse();
  const req: LlmRequest = {
    method: 'POST',
    url: '/v1/chat/completions',
    headers: { 'x-mock-first-byte-delay-ms': '2000' },
    body: Buffer.from(JSON.stringify({ model: 'plain', messages: [{ role: 'user', content: 'hi' }] })),
    clientAddress: '127.0.0.1',
    gone: false,
    goneListener: null,
  };
  gateway.handle(req, res);
  clientGone(req);
  const left = performance.now();
  while (gateway.stats().inFlight > 0 && performance.now() - left < 3000) await sleep(5);
  assert.ok(performance.now() - left < 1000, 'ended well before the mock would have answered');
  const reached = plain.counters.requests > requests;
  if (reached) {
    while (plain.counters.disconnects === disconnects && performance.now() - left < 3000) await sleep(5);
    assert.equal(plain.counters.disconnects, disconnects + 1, 'the mock saw its client go');
    assert.ok(performance.now() - left < 1000, 'well before the mock would have answered');
  }
  assert.equal(res.headersSent, false, 'nothing written to a client that left');
  const line = logs.lines.findLast((l) => l.msg === 'llm request')!;
  assert.equal(line.status, 499);
  assert.equal(line.code, 'SY_LLM_CLIENT_CLOSED');
});

/** A response whose every write() "fills the buffer": the gateway must wait for 'drain' each time. */
class SlowResponse implements LlmResponse {
  readonly chunks: Buffer[] = [];
  headersSent = false;
  destroyed = false;
  status = 0;
  /** True from a write() that returned false until drain() is emitted. */
  full = false;
  writesWhileFull = 0;
  ended: Promise<void>;
  #onEnd: () => void = () => {};
  #onDrain: (() => void) | null = null;

  constructor() {
    this.ended = new Promise((resolve) => {
      this.#onEnd = resolve;
    });
  }
  writeHead(status: number): void {
    this.status = status;
    this.headersSent = true;
  }
  write(chunk: Buffer | string): boolean {
    if (this.full) this.writesWhileFull++;
    this.chunks.push(Buffer.from(chunk));
    this.full = true;
    return false;
  }
  end(chunk?: Buffer | string): void {
    if (chunk !== undefined) this.chunks.push(Buffer.from(chunk));
    this.#onEnd();
  }
  once(event: 'drain' | 'close', listener: () => void): void {
    if (event === 'drain') this.#onDrain = listener;
  }
  /** The client caught up. */
  drain(): void {
    this.full = false;
    const listener = this.#onDrain;
    this.#onDrain = null;
    listener?.();
  }
}

test('write() returning false stops the gateway until drain, event after event', async () => {
  const res = new SlowResponse();
  const body = JSON.stringify({ model: 'plain', stream: true, messages: [{ role: 'user', content: words }] });
  gateway.handle(
    {
      method: 'POST',
      url: '/v1/chat/completions',
      headers: {},
      body: Buffer.from(body),
      clientAddress: '127.0.0.1',
      gone: false,
      goneListener: null,
    },
    res,
  );
  let done = false;
  res.ended.then(() => {
    done = true;
  });
  let drains = 0;
  while (!done) {
    await sleep(10);
    if (res.full) {
      drains++;
      res.drain();
    }
  }
  assert.equal(res.status, 200);
  assert.equal(res.writesWhileFull, 0, 'nothing written between a false write() and its drain');
  assert.ok(drains >= 5, `waited for drain ${drains} times`);
  const text = Buffer.concat(res.chunks).toString();
  assert.ok(text.endsWith('data: [DONE]\n\n'));
  let echoed = '';
  for (const event of text.split('\n\n')) {
    if (event.startsWith('data: {')) echoed += JSON.parse(event.slice(6)).choices[0]?.delta?.content ?? '';
  }
  assert.equal(echoed, `echo: ${words}`);
});

test('a slow client over real sockets holds the upstream back instead of filling memory', async () => {
  // About 64 MB of events: more than loopback socket buffers (up to 32 MB here) can absorb, so
  // without backpressure the mock would finish and the gateway would queue the rest in memory.
  const word = 'x'.repeat(50_000);
  maxQueuedBytes = 0;
  const res = await request(`${front.url}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-mock-reply-repeat': '1300' },
    body: JSON.stringify({ model: 'plain', stream: true, messages: [{ role: 'user', content: word }] }),
    dispatcher: oa.agent,
  });
  assert.equal(res.statusCode, 200);
  await sleep(500);
  assert.equal(plain.counters.inFlight, 1, 'the mock is held back while the client does not read');
  let bytes = 0;
  let events = 0;
  let tail = '';
  for await (const chunk of res.body) {
    bytes += chunk.length;
    const text = tail + chunk.toString('latin1');
    const parts = text.split('\n\n');
    tail = parts.pop()!;
    events += parts.length;
  }
  assert.ok(bytes > 64_000_000, `${bytes} bytes`);
  assert.equal(events, 1 + 1 + 1300 + 1 + 1, 'role, "echo: ", one event per word, finish, [DONE]');
  assert.ok(maxQueuedBytes < 4_000_000, `gateway queued up to ${maxQueuedBytes} bytes`);
});

test('closing the gateway ends a live stream with an error event and releases everything', async () => {
  const gw = new LlmGateway(
    LlmConfigSchema.parse({ providers: { m: { type: 'mock' } }, aliases: { a: { provider: 'm', model: 'm' } } }),
    {
      logger: logs.logger,
    },
  );
  const f = await startLlmFront(gw);
  const client = openAiClient(f.url);
  try {
    const stream = await client.client.chat.completions.create(
      { model: 'a', stream: true, messages: [{ role: 'user', content: words }] },
      { headers: { 'x-mock-chunk-delay-ms': '100' } },
    );
    const closing = (async () => {
      await sleep(150);
      await gw.close();
    })();
    await assert.rejects(
      async () => {
        for await (const _ of stream);
      },
      (error: unknown) => error instanceof OpenAI.APIError && error.code === 'SY_ADMIN_SHUTDOWN',
    );
    await closing;
    const refused = await request(`${f.url}/chat/completions`, {
      method: 'POST',
      body: '{"model":"a"}',
      dispatcher: client.agent,
    });
    assert.equal(refused.statusCode, 503);
    await refused.body.text();
  } finally {
    await client.close();
    await f.close();
    await gw.close();
  }
});
