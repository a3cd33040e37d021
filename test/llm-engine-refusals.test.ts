/**
 * Requests the engine refuses on an LLM route before the gateway sees them (a chunked body, a
 * body over the route's limit, a body that stalls) are answered in OpenAI's error shape like the
 * gateway's own errors, so the SDKs raise a typed error instead of choking on plain text.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ConfigInput } from '../src/config/schema.ts';
import { Switchyard } from '../src/runtime/switchyard.ts';
import { RawClient, type RawResponse } from './helpers/http.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { freePort } from './helpers/net.ts';

const baseline = handleSnapshot();
let proxy: Switchyard;
let port: number;

before(async () => {
  port = await freePort();
  const config: ConfigInput = {
    bind: '127.0.0.1',
    log: { level: 'silent' },
    timeouts: { idleMs: 300 },
    llm: { providers: { mock: { type: 'mock' } }, aliases: { chat: { provider: 'mock', model: 'm' } } },
    routes: [{ name: 'llm', match: { ports: port, paths: ['/v1/*'] }, action: { type: 'llm', maxBodyBytes: 1000 } }],
  };
  proxy = await Switchyard.start(config);
});

after(async () => {
  await proxy.close();
  await assertNoLeaks(baseline);
});

/** Sends `head` (and `body`) on a fresh connection; returns the response once the proxy closed. */
async function refused(head: string, body = ''): Promise<RawResponse> {
  const client = await new RawClient(port).connected();
  try {
    client.write(
      `POST /v1/chat/completions HTTP/1.1\r\nhost: llm.test\r\ncontent-type: application/json\r\n${head}\r\n${body}`,
    );
    const res = await client.read('POST');
    // The rest of the stream cannot be trusted after a body we did not read: the proxy closes.
    await client.waitEnd();
    return res;
  } finally {
    client.close();
  }
}

function assertOpenAiError(res: RawResponse, status: number, type: string, code: string): void {
  assert.equal(res.status, status);
  assert.equal(res.headers['content-type'], 'application/json');
  assert.equal(res.headers['x-switchyard-error'], code);
  const { error } = JSON.parse(res.body.toString());
  assert.equal(error.type, type);
  assert.equal(error.code, code);
  assert.equal(error.param, null);
  assert.equal(typeof error.message, 'string');
}

test('a chunked body is refused with 411 in the OpenAI error shape, and the connection closes', async () => {
  const res = await refused('transfer-encoding: chunked\r\n', '2\r\n{}\r\n0\r\n\r\n');
  assertOpenAiError(res, 411, 'invalid_request_error', 'SY_LLM_LENGTH_REQUIRED');
});

test("a Content-Length over the route's maxBodyBytes is a 413 in the OpenAI error shape", async () => {
  const res = await refused('content-length: 5000\r\n');
  assertOpenAiError(res, 413, 'invalid_request_error', 'SY_HTTP_BODY_TOO_LARGE');
  assert.match(JSON.parse(res.body.toString()).error.message, /5000 .* 1000 bytes/);
});

test('a body that stalls is a 408 in the OpenAI error shape', async () => {
  const res = await refused('content-length: 100\r\n', '{"model":');
  assertOpenAiError(res, 408, 'invalid_request_error', 'SY_HTTP_BODY_TIMEOUT');
});
