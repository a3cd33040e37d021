/**
 * Error mapping, retries and fallbacks through the gateway, with the `openai` client: upstream
 * statuses keep their meaning, Retry-After is honoured, retries then fallbacks happen before the
 * first byte, and our own failures (connect, timeouts, deadline, missing key) are coded.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI from 'openai';
import { pino } from 'pino';
import { LlmGateway } from '../src/llm/gateway.ts';
import { checkLlmConfig, type LlmConfigInput, LlmConfigSchema } from '../src/llm/schema.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { type LlmFront, openAiClient, startLlmFront, type TestOpenAi } from './helpers/llm.ts';
import { SilentTargets } from './helpers/silent-targets.ts';

const baseline = handleSnapshot();
const quiet = pino({ level: 'silent' });
const fastRetry = { baseDelayMs: 10, maxDelayMs: 50 };

let gateway: LlmGateway;
let front: LlmFront;
let oa: TestOpenAi;
let deadPort: number;
let silent: SilentTargets;

before(async () => {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  deadPort = (probe.address() as { port: number }).port;
  probe.close();
  await once(probe, 'close');
  silent = await SilentTargets.start(1);

  const config: LlmConfigInput = {
    providers: {
      once: { type: 'mock', retry: { maxRetries: 0 } },
      retrying: { type: 'mock', retry: { maxRetries: 2, ...fastRetry } },
      broken: { type: 'mock', mock: { fault: '500' }, retry: { maxRetries: 1, ...fastRetry } },
      overloaded: { type: 'mock', mock: { fault: '429', retryAfterS: 120 }, retry: { maxRetries: 3 } },
      healthy: { type: 'mock' },
      dead: {
        type: 'openai',
        baseUrl: `http://127.0.0.1:${deadPort}/v1`,
        retry: { maxRetries: 1, ...fastRetry },
        timeouts: { connectMs: 1000 },
      },
      silent: {
        type: 'openai',
        baseUrl: `http://127.0.0.1:${silent.ports[0]}/v1`,
        retry: { maxRetries: 1, ...fastRetry },
        timeouts: { connectMs: 300 },
      },
      slow: { type: 'mock', timeouts: { firstByteMs: 150 }, retry: { maxRetries: 0 } },
      short: { type: 'mock', timeouts: { totalMs: 300 }, retry: { maxRetries: 0 } },
      busy: { type: 'mock', concurrency: { max: 1, queue: 4, maxWaitMs: 60_000 }, retry: { maxRetries: 0 } },
      // Refused at once, so its request moves on to the busy fallback with its own 300 ms deadline.
      hurried: {
        type: 'openai',
        baseUrl: `http://127.0.0.1:${deadPort}/v1`,
        retry: { maxRetries: 0 },
        timeouts: { totalMs: 300 },
      },
      keyless: { type: 'openai', baseUrl: 'http://127.0.0.1:1/v1', apiKeyEnv: 'SY_TEST_SURELY_UNSET_KEY' },
    },
    aliases: {
      once: { provider: 'once', model: 'm' },
      retrying: { provider: 'retrying', model: 'm' },
      primary: { provider: 'broken', model: 'm', fallbacks: ['backup'] },
      backup: { provider: 'healthy', model: 'backup-model' },
      patient: { provider: 'overloaded', model: 'm', fallbacks: ['backup'] },
      unreachable: { provider: 'dead', model: 'm' },
      unreachable2: { provider: 'dead', model: 'm', fallbacks: ['backup'] },
      silent: { provider: 'silent', model: 'm' },
      silent2: { provider: 'silent', model: 'm', fallbacks: ['backup'] },
      slow: { provider: 'slow', model: 'm' },
      short: { provider: 'short', model: 'm' },
      busy: { provider: 'busy', model: 'm' },
      hurried: { provider: 'hurried', model: 'm', fallbacks: ['busy'] },
      keyless: { provider: 'keyless', model: 'm', fallbacks: ['backup'] },
      keylessOnly: { provider: 'keyless', model: 'm' },
    },
  };
  const parsed = LlmConfigSchema.parse(config);
  assert.deepEqual(checkLlmConfig(parsed), []);
  gateway = new LlmGateway(parsed, { logger: quiet });
  await assert.rejects(gateway.ready(), (error: AggregateError) => {
    assert.equal(error.errors.length, 1);
    assert.equal(error.errors[0].code, 'SY_LLM_API_KEY');
    assert.match(error.message, /SY_TEST_SURELY_UNSET_KEY/);
    return true;
  });
  front = await startLlmFront(gateway);
  oa = openAiClient(front.url);
});

after(async () => {
  await oa.close();
  await front.close();
  await gateway.close();
  await silent.close();
  await assertNoLeaks(baseline);
});

function chat(model: string, fault?: string) {
  return oa.client.chat.completions
    .create(
      { model, messages: [{ role: 'user', content: 'hi' }] },
      fault === undefined ? undefined : { headers: { 'x-mock-fault': fault } },
    )
    .withResponse();
}

/** Awaits a rejection and returns it as the APIError it must be. */
async function apiError(pending: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await pending;
  } catch (error) {
    assert.ok(error instanceof OpenAI.APIError, `expected an APIError, got ${error}`);
    return error;
  }
  assert.fail('expected the request to fail');
}

test('an upstream 400 passes through with its body, and is not retried', async () => {
  const mock = gateway.mockServer('retrying')!;
  const before = mock.counters.requests;
  const error = await apiError(chat('retrying', '400'));
  assert.ok(error instanceof OpenAI.BadRequestError);
  assert.equal(error.status, 400);
  assert.equal(error.message, '400 mock: bad request');
  assert.equal(error.code, 'invalid_request_error');
  assert.equal(error.param, 'messages');
  assert.equal(error.headers.get('x-switchyard-attempts'), '1');
  assert.equal(mock.counters.requests - before, 1);
});

test('an upstream 401 stays 401', async () => {
  const error = await apiError(chat('retrying', '401'));
  assert.ok(error instanceof OpenAI.AuthenticationError);
  assert.equal(error.status, 401);
  assert.equal(error.headers.get('x-switchyard-attempts'), '1');
});

test('an upstream 429 stays 429 with its Retry-After', async () => {
  const error = await apiError(chat('once', '429'));
  assert.ok(error instanceof OpenAI.RateLimitError);
  assert.equal(error.status, 429);
  assert.equal(error.headers.get('retry-after'), '1');
});

test('an upstream 500 is retried, then passed through as 500 when it persists', async () => {
  const mock = gateway.mockServer('retrying')!;
  const before = mock.counters.requests;
  const error = await apiError(chat('retrying', '500'));
  assert.ok(error instanceof OpenAI.InternalServerError);
  assert.equal(error.status, 500);
  assert.equal(error.message, '500 mock: internal error');
  assert.equal(error.headers.get('x-switchyard-attempts'), '3');
  assert.equal(mock.counters.requests - before, 3);
});

test('Retry-After is honoured before the retry', async () => {
  const mock = gateway.mockServer('retrying')!;
  mock.enqueueFaults('429');
  const started = performance.now();
  const { data, response } = await chat('retrying');
  const elapsed = performance.now() - started;
  assert.equal(data.choices[0].message.content, 'echo: hi');
  assert.equal(response.headers.get('x-switchyard-attempts'), '2');
  assert.ok(elapsed >= 1000, `waited ${elapsed} ms for a Retry-After of 1 s`);
  assert.ok(elapsed < 3000, `waited ${elapsed} ms`);
});

test('retries, then the fallback alias serves the request', async () => {
  const broken = gateway.mockServer('broken')!;
  const before = broken.counters.requests;
  const { data, response } = await chat('primary');
  assert.equal(data.model, 'backup-model');
  assert.equal(response.headers.get('x-switchyard-provider'), 'healthy');
  assert.equal(response.headers.get('x-switchyard-attempts'), '3');
  assert.equal(broken.counters.requests - before, 2, 'one try and one retry on the broken provider');
});

test('a Retry-After longer than maxRetryAfterMs skips to the fallback at once', async () => {
  const started = performance.now();
  const { data, response } = await chat('patient');
  assert.equal(data.model, 'backup-model');
  assert.equal(response.headers.get('x-switchyard-attempts'), '2');
  assert.ok(performance.now() - started < 1000);
});

test('connection refused: retried, then 502 SY_UPS_CONNECT; with a fallback, the fallback serves', async () => {
  const error = await apiError(chat('unreachable'));
  assert.equal(error.status, 502);
  assert.equal(error.code, 'SY_UPS_CONNECT');
  assert.equal(error.type, 'server_error');
  assert.match(error.message, /ECONNREFUSED/);
  assert.equal(error.headers?.get('x-switchyard-attempts'), '2');
  const { data } = await chat('unreachable2');
  assert.equal(data.model, 'backup-model');
});

test('a connect that hangs past connectMs: retried, then 502 SY_UPS_CONNECT; with a fallback, the fallback serves', async () => {
  const started = performance.now();
  const error = await apiError(chat('silent'));
  const elapsed = performance.now() - started;
  assert.equal(error.status, 502);
  assert.equal(error.code, 'SY_UPS_CONNECT');
  assert.match(error.message, /UND_ERR_CONNECT_TIMEOUT/);
  assert.equal(error.headers?.get('x-switchyard-attempts'), '2');
  // Two connects of 300 ms each (on undici's timer wheel, each up to ~1 s late) and a short
  // backoff; a refused connect would fail in about a millisecond.
  assert.ok(elapsed >= 600 && elapsed < 4000, `failed after ${elapsed} ms`);
  const { data, response } = await chat('silent2');
  assert.equal(data.model, 'backup-model');
  assert.equal(response.headers.get('x-switchyard-attempts'), '3');
});

test('no response headers within firstByteMs: 504 SY_UPS_FIRST_BYTE_TIMEOUT', async () => {
  const started = performance.now();
  const error = await apiError(
    oa.client.chat.completions.create(
      { model: 'slow', messages: [{ role: 'user', content: 'hi' }] },
      { headers: { 'x-mock-fault': 'slow-first-byte', 'x-mock-first-byte-delay-ms': '5000' } },
    ),
  );
  assert.equal(error.status, 504);
  assert.equal(error.code, 'SY_UPS_FIRST_BYTE_TIMEOUT');
  // undici's header timer ticks every ~0.5 s, so 150 ms fires within about a second.
  assert.ok(performance.now() - started < 2500, 'gave up well before the mock answered');
});

test('the total deadline ends a request that outlives it: 504 SY_LLM_DEADLINE', async () => {
  const started = performance.now();
  const error = await apiError(chat('short', 'slow-first-byte'));
  const elapsed = performance.now() - started;
  assert.equal(error.status, 504);
  assert.equal(error.code, 'SY_LLM_DEADLINE');
  assert.ok(elapsed >= 300 && elapsed < 900, `ended after ${elapsed} ms`);
});

test('a deadline that passes while queued is a 429 with Retry-After, not a 504', async () => {
  const holder = oa.client.chat.completions.create(
    { model: 'busy', messages: [{ role: 'user', content: 'holds the slot' }] },
    { headers: { 'x-mock-first-byte-delay-ms': '900' } },
  );
  const busy = () => gateway.stats().providers.find((p) => p.id === 'busy')!;
  while (busy().inFlight === 0) await sleep(5);
  const timeoutsBefore = busy().rejectedTimeout;
  const started = performance.now();
  const error = await apiError(chat('hurried'));
  const elapsed = performance.now() - started;
  assert.ok(error instanceof OpenAI.RateLimitError);
  assert.equal(error.code, 'SY_LLM_QUEUE_TIMEOUT');
  assert.equal(error.headers.get('retry-after'), '1');
  assert.equal(error.headers.get('x-switchyard-error'), 'SY_LLM_QUEUE_TIMEOUT');
  assert.equal(error.headers.get('x-switchyard-provider'), 'busy');
  assert.ok(elapsed >= 300 && elapsed < 800, `answered after ${elapsed} ms`);
  assert.equal(busy().queued, 0, 'the queue place is given up');
  assert.equal(busy().rejectedTimeout, timeoutsBefore + 1, 'counted with the queue timeouts');
  assert.equal((await holder).choices[0].message.content, 'echo: holds the slot');
});

test('a provider without its key is unavailable: 503, or its fallback serves', async () => {
  const error = await apiError(chat('keylessOnly'));
  assert.equal(error.status, 503);
  assert.equal(error.code, 'SY_LLM_PROVIDER_UNAVAILABLE');
  assert.doesNotMatch(error.message, /sk-/);
  const { data } = await chat('keyless');
  assert.equal(data.model, 'backup-model');
  assert.equal(gateway.stats().providers.find((p) => p.id === 'keyless')!.available, false);
});

test('after all that, no slot is left taken and nothing is in flight', () => {
  const stats = gateway.stats();
  assert.equal(stats.inFlight, 0);
  for (const provider of stats.providers) assert.equal(provider.inFlight, 0, provider.id);
});
