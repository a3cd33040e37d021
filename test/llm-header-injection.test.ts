/**
 * Regression: field names a client chose reached a response header raw. A body key with CR LF in
 * it, dropped by a field policy, was copied into `x-switchyard-dropped-fields` and split the head
 * (injected fields, a `set-cookie` of the client's choosing). Through the real engine, on the wire.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ConfigInput } from '../src/config/schema.ts';
import { Switchyard } from '../src/runtime/switchyard.ts';
import { RawClient } from './helpers/http.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { type CapturedLogs, captureLogs } from './helpers/logs.ts';
import { freePort } from './helpers/net.ts';

const baseline = handleSnapshot();
const evil = 'x\r\nx-injected: yes\r\nset-cookie: evil=1';
let proxy: Switchyard;
let port: number;
let logs: CapturedLogs;

before(async () => {
  port = await freePort();
  const config: ConfigInput = {
    bind: '127.0.0.1',
    log: { level: 'info' },
    llm: {
      providers: {
        allowed: { type: 'mock', fields: { allow: ['temperature'] } },
        // An operator's own config can hold such a name too: the engine leaves the field out.
        renamer: { type: 'mock', fields: { rename: { [evil]: 'b' } } },
      },
      aliases: { allowed: { provider: 'allowed', model: 'm' }, renamer: { provider: 'renamer', model: 'm' } },
    },
    routes: [{ name: 'llm', match: { ports: port, paths: ['/v1/*'] }, action: { type: 'llm' } }],
  };
  logs = captureLogs('info');
  proxy = await Switchyard.start(config, { logger: logs.logger });
});

after(async () => {
  await proxy.close();
  await assertNoLeaks(baseline);
});

function chat(model: string): string {
  const body = JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], [evil]: 1, seed: 2 });
  return (
    `POST /v1/chat/completions HTTP/1.1\r\nhost: llm.test\r\ncontent-type: application/json\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

test('a dropped field named with CR LF is reported escaped and injects nothing', async () => {
  const client = await new RawClient(port).connected();
  try {
    client.write(chat('allowed'));
    const res = await client.read('POST');
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-injected'], undefined);
    assert.equal(res.headers['set-cookie'], undefined);
    assert.equal(
      res.headers['x-switchyard-dropped-fields'],
      'x%0D%0Ax-injected%3A%20yes%0D%0Aset-cookie%3A%20evil%3D1, seed',
    );
    assert.equal(JSON.parse(res.body.toString()).choices[0].message.content, 'echo: hi');
  } finally {
    client.close();
  }
});

test('a header value with CR LF never reaches the head: the field is left out and logged', async () => {
  const client = await new RawClient(port).connected();
  try {
    client.write(chat('renamer'));
    const res = await client.read('POST');
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-injected'], undefined);
    assert.equal(res.headers['set-cookie'], undefined);
    assert.equal(res.headers['x-switchyard-renamed-fields'], undefined);
    assert.equal(res.headers['x-switchyard-provider'], 'renamer');
    // The connection is still in step: a second request on it is answered normally.
    client.write(chat('allowed'));
    assert.equal((await client.read('POST')).status, 200);
  } finally {
    client.close();
  }
  assert.ok(logs.lines.some((l) => l.header === 'x-switchyard-renamed-fields' && l.level === 40));
});
