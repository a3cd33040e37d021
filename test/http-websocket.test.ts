/**
 * WebSocket through the HTTP engine with the `ws` package on both ends: echo of text and binary,
 * large and many messages, a tunnel that outlives the response timeout but not its idle timeout,
 * close in either direction, and upgrades the upstream refuses.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import type { ConfigInput } from '../src/config/schema.ts';
import { Switchyard } from '../src/runtime/switchyard.ts';
import { RawClient } from './helpers/http.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { freePort, startServer, waitFor } from './helpers/net.ts';

const baseline = handleSnapshot();
const RESPONSE_TIMEOUT_MS = 300;
const IDLE_TIMEOUT_MS = 1000;

let wss: WebSocketServer;
let wsPort: number;
/** The upgrade requests the ws server accepted, newest last. */
const upgrades: IncomingMessage[] = [];
/** Server-side sockets, newest last. */
const serverSockets: WebSocket[] = [];
let refuser: Server;
let refuserPort: number;
let proxy: Switchyard;
let port: number;

before(async () => {
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 8 * 1024 * 1024 });
  await once(wss, 'listening');
  wsPort = (wss.address() as AddressInfo).port;
  wss.on('connection', (socket, req) => {
    upgrades.push(req);
    serverSockets.push(socket);
    socket.on('message', (data, isBinary) => {
      if (!isBinary && data.toString() === 'close-me') socket.close(4001, 'server says bye');
      else socket.send(data, { binary: isBinary });
    });
    socket.on('error', () => {});
  });
  // Answers every request, upgrades included, as plain HTTP (no 'upgrade' listener).
  refuser = createServer((req, res) => {
    const status = req.url === '/bad' ? 400 : 404;
    res.writeHead(status, { 'content-type': 'text/plain', 'x-refuser': 'yes' });
    res.end(`no websocket at ${req.url}`);
  });
  refuser.listen(0, '127.0.0.1');
  await once(refuser, 'listening');
  refuserPort = (refuser.address() as AddressInfo).port;
  port = await freePort();
  proxy = await Switchyard.start(config());
});

after(async () => {
  await proxy?.close();
  for (const socket of wss?.clients ?? []) socket.terminate();
  wss?.close();
  if (wss !== undefined) await once(wss, 'close').catch(() => {});
  refuser?.closeAllConnections();
  refuser?.close();
  await assertNoLeaks(baseline);
});

function config(): ConfigInput {
  const ws = `127.0.0.1:${wsPort}`;
  return {
    bind: '127.0.0.1',
    log: { level: 'silent' },
    routes: [
      {
        name: 'refused',
        match: { ports: port, paths: ['/refused/*', '/bad'] },
        action: { type: 'forward', mode: 'http', targets: [`127.0.0.1:${refuserPort}`] },
      },
      {
        name: 'idle',
        match: { ports: port, paths: ['/idle'] },
        action: { type: 'forward', mode: 'http', targets: [ws], idleTimeoutMs: IDLE_TIMEOUT_MS },
      },
      {
        name: 'ws',
        match: { ports: port },
        action: { type: 'forward', mode: 'http', targets: [ws], responseTimeoutMs: RESPONSE_TIMEOUT_MS },
      },
    ],
  };
}

/** Opens a client through the proxy and waits for the upgrade. */
async function openClient(path = '/echo'): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { maxPayload: 8 * 1024 * 1024 });
  await once(ws, 'open');
  return ws;
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve, reject) => {
    const onClose = (): void => reject(new Error('closed before a message'));
    ws.once('message', (data: RawData, isBinary: boolean) => {
      ws.off('close', onClose);
      resolve({ data: data as Buffer, isBinary });
    });
    ws.once('close', onClose);
  });
}

function closeOf(ws: WebSocket): Promise<{ code: number; reason: string; at: number }> {
  return new Promise((resolve) => {
    ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString(), at: Date.now() }));
  });
}

test('text and binary echo; the upstream sees a proper upgrade request', async () => {
  const ws = await openClient('/echo?x=1');
  try {
    ws.send('hello');
    const text = await nextMessage(ws);
    assert.equal(text.isBinary, false);
    assert.equal(text.data.toString(), 'hello');
    const bin = randomBytes(1000);
    ws.send(bin);
    const got = await nextMessage(ws);
    assert.equal(got.isBinary, true);
    assert.deepEqual(got.data, bin);
    const req = upgrades.at(-1)!;
    assert.equal(req.url, '/echo?x=1');
    assert.equal(req.headers.upgrade?.toLowerCase(), 'websocket');
    assert.match(req.headers.connection ?? '', /upgrade/i);
    assert.equal(req.headers['x-forwarded-for'], '127.0.0.1');
    assert.ok(req.headers['sec-websocket-key']);
    assert.ok(req.headers['x-request-id']);
  } finally {
    ws.close();
    await closeOf(ws);
  }
  assert.equal(await proxy.metrics.value('switchyard_http_responses_total', { route: 'ws', status: '101' }), 1);
});

test('a 1 MiB message and 1000 small ones, in order', async () => {
  const ws = await openClient();
  try {
    const big = randomBytes(1024 * 1024);
    ws.send(big);
    assert.deepEqual((await nextMessage(ws)).data, big);

    const received: string[] = [];
    const all = new Promise<void>((resolve) => {
      const onMessage = (data: RawData): void => {
        received.push(data.toString());
        if (received.length === 1000) {
          ws.off('message', onMessage);
          resolve();
        }
      };
      ws.on('message', onMessage);
    });
    for (let i = 0; i < 1000; i++) ws.send(`m${i}`);
    await all;
    assert.deepEqual(
      received,
      Array.from({ length: 1000 }, (_, i) => `m${i}`),
    );
  } finally {
    ws.close();
    await closeOf(ws);
  }
});

test('the tunnel outlives responseTimeoutMs while traffic flows', async () => {
  const ws = await openClient();
  try {
    const until = Date.now() + RESPONSE_TIMEOUT_MS * 5;
    let n = 0;
    while (Date.now() < until) {
      ws.send(`tick${n}`);
      assert.equal((await nextMessage(ws)).data.toString(), `tick${n}`);
      n++;
      await sleep(RESPONSE_TIMEOUT_MS / 3);
    }
    // Even a silent stretch longer than the response timeout is fine: only idleTimeoutMs applies.
    await sleep(RESPONSE_TIMEOUT_MS * 2);
    assert.equal(ws.readyState, WebSocket.OPEN);
    ws.send('still here');
    assert.equal((await nextMessage(ws)).data.toString(), 'still here');
  } finally {
    ws.close();
    await closeOf(ws);
  }
});

test('an idle tunnel is closed after the route idleTimeoutMs, on both sides', async () => {
  const ws = await openClient('/idle');
  const server = serverSockets.at(-1)!;
  const serverClosed = closeOf(server);
  const start = Date.now();
  // Traffic first keeps it open past the timeout.
  for (let i = 0; i < 4; i++) {
    await sleep(IDLE_TIMEOUT_MS / 3);
    ws.send('keep');
    await nextMessage(ws);
  }
  assert.equal(ws.readyState, WebSocket.OPEN);
  const quietFrom = Date.now();
  assert.ok(quietFrom - start > IDLE_TIMEOUT_MS);
  const closed = await closeOf(ws);
  // The tunnel is cut without a close frame: ws reports 1006.
  assert.equal(closed.code, 1006);
  const idleFor = closed.at - quietFrom;
  assert.ok(idleFor >= IDLE_TIMEOUT_MS - 50, `closed after ${idleFor} ms idle`);
  assert.ok(idleFor < IDLE_TIMEOUT_MS + 2000, `closed after ${idleFor} ms idle`);
  await serverClosed;
  await waitFor(() => proxy.connectionCount === 0);
});

test('close from the client reaches the server, with its code', async () => {
  const ws = await openClient();
  const server = serverSockets.at(-1)!;
  const serverClosed = closeOf(server);
  ws.close(4000, 'client says bye');
  const s = await serverClosed;
  assert.equal(s.code, 4000);
  assert.equal(s.reason, 'client says bye');
  await closeOf(ws);
  await waitFor(() => proxy.connectionCount === 0);
});

test('close from the server reaches the client, with its code', async () => {
  const ws = await openClient();
  const closed = closeOf(ws);
  ws.send('close-me');
  const c = await closed;
  assert.equal(c.code, 4001);
  assert.equal(c.reason, 'server says bye');
  await waitFor(() => proxy.connectionCount === 0);
});

test('a server that drops the TCP connection closes the client too', async () => {
  const ws = await openClient();
  const closed = closeOf(ws);
  serverSockets.at(-1)!.terminate();
  assert.equal((await closed).code, 1006);
  await waitFor(() => proxy.connectionCount === 0);
});

test('a client that drops the TCP connection closes the server side too', async () => {
  const ws = await openClient();
  const server = serverSockets.at(-1)!;
  const serverClosed = closeOf(server);
  ws.terminate();
  assert.equal((await serverClosed).code, 1006);
  await waitFor(() => proxy.connectionCount === 0);
});

test('an upgrade the upstream refuses is relayed as a normal response', async () => {
  for (const [path, status] of [
    ['/refused/chat', 404],
    ['/bad', 400],
  ] as const) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
    ws.on('error', () => {});
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, IncomingMessage];
    assert.equal(res.statusCode, status);
    assert.equal(res.headers['x-refuser'], 'yes');
    res.destroy();
    ws.terminate();
  }
  // Byte level: the full response, body included, and no 101.
  const client = await new RawClient(port).connected();
  try {
    client.write(
      'GET /refused/raw HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n' +
        'sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    const res = await client.read();
    assert.equal(res.status, 404);
    assert.equal(res.body.toString(), 'no websocket at /refused/raw');
    assert.equal(res.headers.upgrade, undefined);
    // If the proxy kept the connection open, it must still speak HTTP on it.
    if (!client.ended) {
      client.write('GET /refused/again HTTP/1.1\r\nhost: x\r\n\r\n');
      assert.equal((await client.read()).body.toString(), 'no websocket at /refused/again');
    }
  } finally {
    client.close();
  }
  await waitFor(() => proxy.connectionCount === 0);
});

/** A masked client text frame (RFC 6455 §5.2), payload under 126 bytes. */
function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

const HANDSHAKE =
  'GET /raw HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n' +
  'sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';

test('a frame sent right behind the handshake (same write) reaches the upstream after the 101', async () => {
  const client = await new RawClient(port).connected();
  try {
    client.write(Buffer.concat([Buffer.from(HANDSHAKE), clientFrame('early bird')]));
    const res = await client.read();
    assert.equal(res.status, 101);
    assert.equal(res.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    await waitFor(() => client.buf.length >= 12);
    // Unmasked server frame: FIN+text, length 10, payload.
    assert.deepEqual(client.buf, Buffer.concat([Buffer.from([0x81, 10]), Buffer.from('early bird')]));
  } finally {
    client.close();
  }
  await waitFor(() => proxy.connectionCount === 0);
});

test('bytes the upstream sends in the same packet as its 101 reach the client', async () => {
  const raw = await startServer((socket) => {
    socket.once('data', (head) => {
      const key = /sec-websocket-key: *(\S+)/i.exec(head.toString())?.[1] ?? '';
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n' +
          `sec-websocket-accept: ${accept}\r\n\r\n\x81\x05hello`,
        'latin1',
      );
      socket.on('data', (chunk) => socket.write(chunk));
    });
  });
  const rawPort = await freePort();
  const rawProxy = await Switchyard.start({
    bind: '127.0.0.1',
    log: { level: 'silent' },
    routes: [
      {
        name: 'raw',
        match: { ports: rawPort },
        action: { type: 'forward', mode: 'http', targets: [`127.0.0.1:${raw.port}`] },
      },
    ],
  });
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${rawPort}/`);
    const first = nextMessage(ws);
    await once(ws, 'open');
    assert.equal((await first).data.toString(), 'hello');
    ws.terminate();
  } finally {
    await rawProxy.close();
    await raw.close();
  }
});
