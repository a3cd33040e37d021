/**
 * How the engine ends a client connection after its last response. A client that asked for
 * `Connection: close` and whose request was read in full sends nothing more, so the connection is
 * closed as soon as the kernel has the response, without waiting for the client's FIN
 * (`closeAfterHeld`). A client still sending when the response ends (the rest of a body, a request
 * pipelined after the last) is not cut off: its connection is ended (FIN) and stays readable, so
 * what it sends draws no reset.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Switchyard } from '../src/runtime/switchyard.ts';
import { parseAll } from './helpers/http.ts';
import { startHttpForward, stopHttpForward, waitForNoClients } from './helpers/http-forward.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';

const baseline = handleSnapshot();
let upstream: Server;
let proxy: Switchyard;
let port: number;

before(async () => {
  upstream = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/early') {
      // Answers before reading the body, as an upstream refusing an upload does.
      res.writeHead(413, { 'content-length': '8' });
      res.end('too big\n');
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => res.end(`${req.method} ${req.url} ${Buffer.concat(chunks).length}`));
  });
  ({ proxy, port } = await startHttpForward(upstream));
});

after(async () => {
  await stopHttpForward(proxy, upstream);
  await assertNoLeaks(baseline);
});

/** A client that keeps its side open after the proxy's FIN, recording bytes and errors. */
async function halfOpenClient(): Promise<{ socket: Socket; chunks: Buffer[]; errors: Error[]; ended: Promise<void> }> {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const chunks: Buffer[] = [];
  const errors: Error[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', (e: Error) => errors.push(e));
  const ended = once(socket, 'end').then(() => undefined);
  await once(socket, 'connect');
  return { socket, chunks, errors, ended };
}

test('a Connection: close request read in full is answered, then closed without waiting for the client', async () => {
  const requests = [
    ['GET /a HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n', 'GET /a 0'],
    ['POST /b HTTP/1.1\r\nhost: a\r\nconnection: close\r\ncontent-length: 5\r\n\r\nhello', 'POST /b 5'],
    ['GET /c HTTP/1.0\r\nhost: a\r\n\r\n', 'GET /c 0'],
  ];
  for (const [request, body] of requests) {
    const client = await halfOpenClient();
    client.socket.write(request);
    await client.ended;
    const [res, extra] = parseAll(Buffer.concat(client.chunks));
    assert.equal(res?.status, 200);
    assert.equal(res.body.toString(), body);
    assert.equal(extra, undefined);
    // The client has not sent its FIN: the proxy's side is gone all the same, well before the
    // 5 s it gives a closing connection.
    await waitForNoClients(proxy, 1000);
    assert.deepEqual(client.errors, []);
    client.socket.end();
    await once(client.socket, 'close');
  }
});

test('a client still sending when the response ends gets the response and no reset', async () => {
  const cases = [
    // The upstream answered before the body was all sent.
    ['POST /early HTTP/1.1\r\nhost: a\r\nconnection: close\r\ncontent-length: 1048576\r\n\r\n' + 'x'.repeat(1024), 413],
    // A request pipelined after one that asked for close.
    ['GET /a HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\nGET /b HTTP/1.1\r\nhost: a\r\n', 200],
  ] as const;
  for (const [request, status] of cases) {
    const client = await halfOpenClient();
    client.socket.write(request);
    await client.ended;
    const [res, extra] = parseAll(Buffer.concat(client.chunks));
    assert.equal(res?.status, status);
    assert.equal(extra, undefined);
    // The proxy ended its side and still reads: more bytes are taken in, not answered with RST (a
    // closed socket would reset, and the next write would fail with EPIPE or ECONNRESET).
    for (let i = 0; i < 4; i++) {
      client.socket.write(Buffer.alloc(1024, 'y'));
      await sleep(20);
    }
    assert.deepEqual(client.errors, []);
    assert.equal(proxy.ctx.http.connections.size, 1);
    client.socket.destroy();
    await waitForNoClients(proxy, 1000);
  }
});
