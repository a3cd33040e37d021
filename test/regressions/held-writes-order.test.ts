/**
 * Responses the engine forwards are held to the end of the event loop's pass (fast-write.ts
 * `writeSoon`), while the responses it makes itself (respond, redirect, 404) and the close after
 * `Connection: close` go out at once. Pipelined in one write, each of these is handled in the same
 * pass as the forwarded response before it, so only the rule that a direct write or end() first
 * sends what is held keeps them in order and keeps the last response ahead of the FIN.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { Switchyard } from '../../src/runtime/switchyard.ts';
import { RawClient } from '../helpers/http.ts';
import { assertNoLeaks, handleSnapshot } from '../helpers/leaks.ts';
import { freePort } from '../helpers/net.ts';

const baseline = handleSnapshot();

after(async () => {
  await assertNoLeaks(baseline);
});

test('forwarded, local and closing responses pipelined in one write come back in order', async () => {
  const upstream = createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(`up:${req.url}`);
  });
  upstream.listen(0, '127.0.0.1');
  await new Promise((resolve) => upstream.once('listening', resolve));
  const target = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const port = await freePort();
  const proxy = await Switchyard.start({
    bind: '127.0.0.1',
    log: { level: 'silent' },
    routes: [
      {
        name: 'static',
        match: { ports: port, paths: ['/static'] },
        action: { type: 'respond', status: 200, body: 'static' },
      },
      {
        name: 'moved',
        match: { ports: port, paths: ['/moved'] },
        action: { type: 'redirect', status: 301, to: 'http://elsewhere.example' },
      },
      {
        name: 'up',
        match: { ports: port, paths: ['/up/*'] },
        action: { type: 'forward', mode: 'http', targets: [target] },
      },
    ],
  });
  const client = await new RawClient(port).connected();
  try {
    const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nhost: x\r\n${extra}\r\n`;
    client.write(
      get('/up/1') +
        get('/static') +
        get('/up/2') +
        get('/moved') +
        get('/up/3') +
        get('/nowhere') +
        get('/up/4') +
        get('/up/5', 'connection: close\r\n'),
    );
    const expected: [number, string][] = [
      [200, 'up:/up/1'],
      [200, 'static'],
      [200, 'up:/up/2'],
      [301, ''],
      [200, 'up:/up/3'],
      [404, ''],
      [200, 'up:/up/4'],
      [200, 'up:/up/5'],
    ];
    for (const [status, body] of expected) {
      const r = await client.read();
      assert.equal(r.status, status, `status for ${body || status}`);
      if (body !== '') assert.equal(r.body.toString(), body);
    }
    await client.waitEnd();
    assert.equal(client.buf.length, 0, 'nothing after the last response');
  } finally {
    client.close();
    await proxy.close();
    await new Promise((resolve) => upstream.close(resolve));
  }
});
