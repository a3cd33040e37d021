/**
 * Responses the engine forwards are held to the end of the event loop's pass (fast-write.ts
 * `writeSoon`), while the responses it makes itself (respond, redirect, 404) and the close after
 * `Connection: close` go out at once. Pipelined in one write, each of these is handled in the same
 * pass as the forwarded response before it, so only the rule that a direct write or end() first
 * sends what is held keeps them in order and keeps the last response ahead of the FIN.
 *
 * The TCP tunnel holds its writes too. Its second test has data and FIN arrive together in the
 * kernel, both ways, and checks that both are forwarded, data first. Here libuv hands the FIN
 * over on a later read than the data (removing the tunnel's flushHeld before end() does not make
 * it fail), so that call is a guard for a FIN reported in the same pass; the test guards the
 * delivery itself.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
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

/**
 * The peer process: an upstream that reads until FIN and answers `got:<what it read>` with its own
 * FIN, and a client that, for each line on stdin naming a port, connects there, sends a message
 * with FIN and prints what came back before the FIN. Both ends live outside the proxy's process,
 * so they run while the proxy's event loop is blocked.
 */
const PEER = `
const net = require('node:net');
const upstream = net.createServer({ allowHalfOpen: true }, (s) => {
  const parts = [];
  s.on('data', (c) => parts.push(c));
  s.on('end', () => s.end('got:' + Buffer.concat(parts).toString()));
});
upstream.listen(0, '127.0.0.1', () => console.log('upstream ' + upstream.address().port));
require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const [port, n] = line.split(' ').map(Number);
  let done = 0;
  const replies = [];
  for (let i = 0; i < n; i++) {
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => c.end('message ' + i));
    const parts = [];
    c.on('data', (d) => parts.push(d));
    c.on('end', () => {
      replies[i] = Buffer.concat(parts).toString();
      c.destroy();
      if (++done === n) console.log('replies ' + JSON.stringify(replies));
    });
    c.on('error', (e) => console.log('error ' + e.message));
  }
});
`;

test('through the TCP tunnel, data that arrives with its FIN is forwarded whole before the FIN, both ways', async () => {
  const peer = spawn(process.execPath, ['-e', PEER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const seen: string[] = [];
  let wake: (() => void) | null = null;
  let exited = false;
  createInterface({ input: peer.stdout! }).on('line', (line) => {
    seen.push(line);
    wake?.();
  });
  peer.on('exit', () => {
    exited = true;
    wake?.();
  });
  const next = async (prefix: string): Promise<string> => {
    for (;;) {
      const line = seen.find((l) => l.startsWith(prefix));
      if (line !== undefined) return line.slice(prefix.length);
      if (exited) throw new Error(`peer exited before "${prefix}"; it printed ${JSON.stringify(seen)}`);
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  };
  let proxy: Switchyard | null = null;
  try {
    const target = `127.0.0.1:${await next('upstream ')}`;
    const port = await freePort();
    proxy = await Switchyard.start({
      bind: '127.0.0.1',
      log: { level: 'silent' },
      routes: [{ name: 'tcp', match: { ports: port }, action: { type: 'forward', mode: 'tcp', targets: [target] } }],
    });
    const n = 20;
    const replies = next('replies ');
    peer.stdin!.write(`${port} ${n}\n`);
    // Block this process's event loop in bursts: what the peer sends meanwhile (data, then FIN a
    // moment later) waits in the kernel and is read in one pass, data and FIN together.
    let settled = false;
    void replies.finally(() => {
      settled = true;
    });
    for (let burst = 0; burst < 200 && !settled; burst++) {
      const until = performance.now() + 20;
      while (performance.now() < until);
      await sleep(1);
    }
    const got = JSON.parse(await replies) as string[];
    assert.deepEqual(
      got,
      Array.from({ length: n }, (_, i) => `got:message ${i}`),
    );
  } finally {
    await proxy?.close();
    if (!exited) {
      peer.kill();
      await once(peer, 'exit');
    }
  }
});
