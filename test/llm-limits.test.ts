/**
 * Per-provider concurrency through the gateway: the limit holds for whole streams, the queue is
 * bounded in size and in time (429 with Retry-After), and the limit adapts to upstream 429s.
 * The upstream is a standalone MockLlmServer behind an `openai`-type provider, so the test reads
 * its counters directly.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI from 'openai';
import { pino } from 'pino';
import { LlmGateway } from '../src/llm/gateway.ts';
import { MockLlmServer } from '../src/llm/providers/mock-server.ts';
import { type LlmConfigInput, LlmConfigSchema } from '../src/llm/schema.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { type LlmFront, openAiClient, startLlmFront, type TestOpenAi } from './helpers/llm.ts';

const baseline = handleSnapshot();
const words = 'one two three four five six seven eight';

let upstream: MockLlmServer;
let gateway: LlmGateway;
let front: LlmFront;
let oa: TestOpenAi;

before(async () => {
  upstream = new MockLlmServer();
  const url = await upstream.listen();
  const provider = (concurrency: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    type: 'openai' as const,
    baseUrl: url,
    forwardHeaders: ['x-mock-fault', 'x-mock-chunk-delay-ms', 'x-mock-first-byte-delay-ms'],
    retry: { maxRetries: 0 },
    concurrency,
    ...extra,
  });
  const config: LlmConfigInput = {
    providers: {
      two: provider({ max: 2, queue: 10 }),
      tight: provider({ max: 1, queue: 1, maxWaitMs: 60_000 }),
      brief: provider({ max: 1, queue: 5, maxWaitMs: 200 }),
      adaptive: provider({ max: 8, queue: 50 }),
      spill: provider({ max: 1, queue: 0 }),
      spare: provider({ max: 4 }),
    },
    aliases: {
      two: { provider: 'two', model: 'm' },
      tight: { provider: 'tight', model: 'm' },
      brief: { provider: 'brief', model: 'm' },
      adaptive: { provider: 'adaptive', model: 'm' },
      spill: { provider: 'spill', model: 'm', fallbacks: ['spare'] },
      spare: { provider: 'spare', model: 'spare-model' },
    },
  };
  gateway = new LlmGateway(LlmConfigSchema.parse(config), { logger: pino({ level: 'silent' }) });
  await gateway.ready();
  front = await startLlmFront(gateway);
  oa = openAiClient(front.url);
});

after(async () => {
  await oa.close();
  await front.close();
  await gateway.close();
  await upstream.close();
  await assertNoLeaks(baseline);
});

function limiter(id: string) {
  return gateway.stats().providers.find((p) => p.id === id)!;
}

/** A streamed chat read to the end; resolves with the text. */
async function streamed(model: string, delayMs: number): Promise<string> {
  const stream = await oa.client.chat.completions.create(
    { model, stream: true, messages: [{ role: 'user', content: words }] },
    { headers: { 'x-mock-chunk-delay-ms': String(delayMs) } },
  );
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  return text;
}

async function idle(): Promise<void> {
  while (gateway.stats().inFlight > 0 || upstream.counters.inFlight > 0) await sleep(5);
}

test('the limit holds across whole streams, not just until headers', async () => {
  await idle();
  upstream.resetCounters();
  const texts = await Promise.all(Array.from({ length: 6 }, () => streamed('two', 20)));
  for (const text of texts) assert.equal(text, `echo: ${words}`);
  assert.equal(upstream.counters.requests, 6);
  assert.equal(upstream.counters.maxInFlight, 2);
  assert.deepEqual([limiter('two').inFlight, limiter('two').queued], [0, 0]);
});

test('a full queue is answered 429 with Retry-After at once', async () => {
  await idle();
  const first = streamed('tight', 100);
  await sleep(50);
  const second = streamed('tight', 0);
  await sleep(20);
  assert.deepEqual([limiter('tight').inFlight, limiter('tight').queued], [1, 1]);
  const started = performance.now();
  await assert.rejects(streamed('tight', 0), (error: unknown) => {
    assert.ok(error instanceof OpenAI.RateLimitError);
    assert.equal(error.code, 'SY_LLM_QUEUE_FULL');
    assert.equal(error.headers.get('retry-after'), '1');
    return true;
  });
  assert.ok(performance.now() - started < 200, 'refused without waiting');
  assert.equal(await first, `echo: ${words}`);
  assert.equal(await second, `echo: ${words}`);
  assert.equal(limiter('tight').rejectedFull, 1);
});

test('waiting longer than maxWaitMs is answered 429 with Retry-After', async () => {
  await idle();
  const first = streamed('brief', 100);
  await sleep(50);
  const started = performance.now();
  await assert.rejects(streamed('brief', 0), (error: unknown) => {
    assert.ok(error instanceof OpenAI.RateLimitError);
    assert.equal(error.code, 'SY_LLM_QUEUE_TIMEOUT');
    assert.ok(Number(error.headers.get('retry-after')) >= 1);
    return true;
  });
  const waited = performance.now() - started;
  assert.ok(waited >= 200 && waited < 800, `waited ${waited} ms`);
  assert.equal(await first, `echo: ${words}`);
});

test('a client that leaves the queue frees its place', async () => {
  await idle();
  const first = streamed('tight', 80);
  await sleep(30);
  const controller = new AbortController();
  const queued = oa.client.chat.completions.create(
    { model: 'tight', messages: [{ role: 'user', content: 'x' }] },
    { signal: controller.signal },
  );
  await sleep(20);
  assert.equal(limiter('tight').queued, 1);
  controller.abort();
  await assert.rejects(queued);
  while (limiter('tight').queued > 0) await sleep(5);
  const requests = upstream.counters.requests;
  await first;
  await sleep(20);
  assert.equal(upstream.counters.requests, requests, 'the abandoned request never went upstream');
});

test('a provider at its limit with no queue spills over to the fallback', async () => {
  await idle();
  const first = streamed('spill', 80);
  await sleep(30);
  const reply = await oa.client.chat.completions.create({ model: 'spill', messages: [{ role: 'user', content: 'x' }] });
  assert.equal(reply.model, 'spare-model');
  await first;
});

test('the adaptive limit halves under upstream 429s and recovers with successes', async () => {
  await idle();
  assert.equal(limiter('adaptive').limit, 8);
  // Sequential 429s: each slot was taken after the previous cut, so each one halves.
  for (const expected of [4, 2, 1]) {
    await assert.rejects(
      oa.client.chat.completions.create(
        { model: 'adaptive', messages: [{ role: 'user', content: 'x' }] },
        { headers: { 'x-mock-fault': '429' } },
      ),
      (error: unknown) => error instanceof OpenAI.RateLimitError,
    );
    assert.equal(limiter('adaptive').limit, expected);
  }
  // The shrunk limit is enforced: the second stream waits for the first (whose success then
  // raises the limit to 2).
  upstream.resetCounters();
  await Promise.all([streamed('adaptive', 10), streamed('adaptive', 10)]);
  assert.equal(upstream.counters.maxInFlight, 1);
  assert.equal(limiter('adaptive').limit, 2);
  // Keep succeeding until back at 8: one step up per full window (the current limit) of successes.
  let successes = 2;
  while (limiter('adaptive').limit < 8 && successes < 100) {
    await oa.client.chat.completions.create({ model: 'adaptive', messages: [{ role: 'user', content: 'x' }] });
    successes++;
  }
  assert.equal(limiter('adaptive').limit, 8);
  assert.equal(successes, 1 + 2 + 3 + 4 + 5 + 6 + 7, 'one step up per full window of successes');
  assert.equal(limiter('adaptive').decreases, 3);
});
