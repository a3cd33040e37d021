/**
 * Regression: a client that wrote a request with a body and its FIN at once (`printf ... | nc`, a
 * one-shot script) got no response while the proxy opened a new upstream connection: the body was
 * still buffered, so the FIN was taken for a body cut short and the client connection destroyed,
 * yet that opening connection then carried the whole request upstream anyway, to a client that was
 * gone. A request whose whole body is buffered is complete and is answered; one whose buffered body
 * falls short is cut, and never reaches the upstream whole.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Switchyard } from '../../src/runtime/switchyard.ts';
import { parseAll } from '../helpers/http.ts';
import { startHttpForward, stopHttpForward, waitForNoClients } from '../helpers/http-forward.ts';
import { assertNoLeaks, handleSnapshot } from '../helpers/leaks.ts';

const baseline = handleSnapshot();
/** Requests whose body arrived whole, as `METHOD url:body`. */
const completed: string[] = [];
let upstream: Server;
let proxy: Switchyard;
let port: number;

before(async () => {
  // `connection: close` on every response, so each request waits for a new upstream connection.
  upstream = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = `${req.method} ${req.url}:${Buffer.concat(chunks).toString()}`;
      completed.push(text);
      res.setHeader('connection', 'close');
      res.end(text);
    });
  });
  ({ proxy, port } = await startHttpForward(upstream));
});

after(async () => {
  await stopHttpForward(proxy, upstream);
  await assertNoLeaks(baseline);
});

/** Writes `bytes` and FIN in one go; resolves with everything the proxy sent before it closed. */
async function writeAndEnd(bytes: string): Promise<Buffer> {
  const socket = connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.end(bytes);
  await once(socket, 'close');
  return Buffer.concat(chunks);
}

test('a request whose whole body came with the FIN is answered, Content-Length or chunked', async () => {
  completed.length = 0;
  for (let i = 0; i < 5; i++) {
    const cl = await writeAndEnd(`POST /cl${i} HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello`);
    const [clRes] = parseAll(cl);
    assert.equal(clRes?.status, 200, JSON.stringify(cl.toString()));
    assert.equal(clRes.body.toString(), `POST /cl${i}:hello`);
    const chunked = await writeAndEnd(
      `PUT /ch${i} HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    );
    const [chRes] = parseAll(chunked);
    assert.equal(chRes?.status, 200, JSON.stringify(chunked.toString()));
    assert.equal(chRes.body.toString(), `PUT /ch${i}:hello`);
  }
  assert.equal(completed.length, 10);
});

test('a body the FIN cut short gets no response and never reaches the upstream whole', async () => {
  completed.length = 0;
  for (let i = 0; i < 5; i++) {
    const cl = await writeAndEnd(`POST /short${i} HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\nhello`);
    assert.equal(cl.length, 0, JSON.stringify(cl.toString()));
    const chunked = await writeAndEnd(
      `POST /cut${i} HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel`,
    );
    assert.equal(chunked.length, 0, JSON.stringify(chunked.toString()));
  }
  // Give a connection that was still opening the time to (wrongly) carry a request.
  await sleep(100);
  assert.deepEqual(completed, []);
  await waitForNoClients(proxy, 2000);
});
