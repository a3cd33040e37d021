/**
 * A client that gives up cancels its upstream call at once, through Switchyard's own engine and
 * listener (not the node:http front of the other gateway tests): listeners allow half-open
 * connections, so an SDK abort or `curl -m` arrives as a FIN, not a close, and must still reach
 * the provider as a closed request (or keep a queued one from ever being sent).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConfigInput } from '../src/config/schema.ts';
import { MockLlmServer } from '../src/llm/providers/mock-server.ts';
import { Switchyard } from '../src/runtime/switchyard.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { openAiClient, type TestOpenAi } from './helpers/llm.ts';
import { type CapturedLogs, captureLogs } from './helpers/logs.ts';
import { freePort, waitFor } from './helpers/net.ts';

const baseline = handleSnapshot();
let upstream: MockLlmServer;
let proxy: Switchyard;
let oa: TestOpenAi;
let logs: CapturedLogs;

before(async () => {
  upstream = new MockLlmServer();
  const url = await upstream.listen();
  const port = await freePort();
  const provider = (concurrency: Record<string, unknown>) => ({
    type: 'openai' as const,
    baseUrl: url,
    forwardHeaders: ['x-mock-first-byte-delay-ms', 'x-mock-chunk-delay-ms', 'x-mock-chunk-size'],
    retry: { maxRetries: 0 },
    concurrency,
  });
  const config: ConfigInput = {
    bind: '127.0.0.1',
    log: { level: 'info' },
    llm: {
      providers: { open: provider({ max: 8 }), single: provider({ max: 1, queue: 4, maxWaitMs: 60_000 }) },
      aliases: { open: { provider: 'open', model: 'm' }, single: { provider: 'single', model: 'm' } },
    },
    routes: [{ name: 'llm', match: { ports: port, paths: ['/v1/*'] }, action: { type: 'llm' } }],
  };
  logs = captureLogs('info');
  proxy = await Switchyard.start(config, { logger: logs.logger });
  oa = openAiClient(`http://127.0.0.1:${port}/v1`);
});

after(async () => {
  await oa.close();
  await proxy.close();
  await upstream.close();
  await assertNoLeaks(baseline);
});

function gatewayStats() {
  return proxy.llm!.stats();
}

/** Waits until `check` holds, polling; fails after `timeoutMs`. */
async function idle(): Promise<void> {
  await waitFor(() => gatewayStats().inFlight === 0 && upstream.counters.inFlight === 0, 5000, 'idle');
  upstream.resetCounters();
}

/** Log lines of requests that ended because the client left. */
function closedLines(): number {
  return logs.lines.filter((l) => l.msg === 'llm request' && l.status === 499).length;
}

test('an SDK abort before the first byte closes the upstream request at once', async () => {
  await idle();
  const before = closedLines();
  const controller = new AbortController();
  const started = performance.now();
  const call = oa.client.chat.completions.create(
    { model: 'open', messages: [{ role: 'user', content: 'wait for me' }] },
    { signal: controller.signal, headers: { 'x-mock-first-byte-delay-ms': '3000' } },
  );
  await waitFor(() => upstream.counters.inFlight === 1, 1500, 'the upstream has the request');
  controller.abort();
  await assert.rejects(call);
  await waitFor(() => upstream.counters.disconnects === 1, 1500, 'the upstream sees its request closed');
  assert.ok(performance.now() - started < 2000, 'long before the upstream would have answered');
  await waitFor(() => gatewayStats().inFlight === 0, 1500, 'the exchange ended');
  await waitFor(() => closedLines() === before + 1, 1500, 'logged as 499');
});

test('an SDK abort while queued leaves the queue; the request never goes upstream', async () => {
  await idle();
  const first = oa.client.chat.completions.create(
    { model: 'single', messages: [{ role: 'user', content: 'holds the slot' }] },
    { headers: { 'x-mock-first-byte-delay-ms': '400' } },
  );
  await waitFor(() => upstream.counters.inFlight === 1, 1500, 'the slot is taken');
  const controller = new AbortController();
  const queued = oa.client.chat.completions.create(
    { model: 'single', messages: [{ role: 'user', content: 'queued' }] },
    { signal: controller.signal },
  );
  const single = () => gatewayStats().providers.find((p) => p.id === 'single')!;
  await waitFor(() => single().queued === 1, 1500, 'queued');
  controller.abort();
  await assert.rejects(queued);
  await waitFor(() => single().queued === 0, 300, 'the queue place is freed at once');
  const reply = await first;
  assert.equal(reply.choices[0].message.content, 'echo: holds the slot');
  await sleep(50);
  assert.equal(upstream.counters.requests, 1, 'the abandoned request never went upstream');
  assert.equal(single().inFlight, 0);
});

test('an SDK abort mid-stream closes the upstream stream', async () => {
  await idle();
  const controller = new AbortController();
  const stream = await oa.client.chat.completions.create(
    { model: 'open', stream: true, messages: [{ role: 'user', content: 'one two three four five six' }] },
    { signal: controller.signal, headers: { 'x-mock-chunk-delay-ms': '2000' } },
  );
  let chunks = 0;
  // The SDK ends the iteration quietly when its own signal aborts it.
  await (async () => {
    for await (const _ of stream) {
      if (++chunks === 1) controller.abort();
    }
  })().catch(() => {});
  assert.equal(chunks, 1);
  // Well before the mock's next write, which would find the socket gone on its own.
  await waitFor(() => upstream.counters.disconnects === 1, 1000, 'the upstream sees its stream closed');
  await waitFor(() => gatewayStats().inFlight === 0, 1500, 'the exchange ended');
});
