import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { acceptFast, FAST_READ, type FastSocket, kOnData, kOnShared, readDirect } from './fast-read.ts';

interface Handle {
  onread: unknown;
}

/** A listener whose accepted sockets read through FAST_READ (and readDirect, via acceptFast). */
async function fastServer(): Promise<{ server: Server; port: number; accepted: Promise<FastSocket> }> {
  const server = createServer({ allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  let resolve!: (socket: FastSocket) => void;
  const accepted = new Promise<FastSocket>((r) => {
    resolve = r;
  });
  assert.equal(
    acceptFast(server, true, (socket) => resolve(socket)),
    true,
  );
  return { server, port: (server.address() as { port: number }).port, accepted };
}

async function closeServer(server: Server): Promise<void> {
  server.close();
  await once(server, 'close');
}

/** A client connected to a {@link fastServer}, its accepted socket, and one call to close all. */
async function fastPair(): Promise<{ peer: Socket; socket: FastSocket; close(): Promise<void> }> {
  const { server, port, accepted } = await fastServer();
  const peer = connect({ port, host: '127.0.0.1' });
  const socket = await accepted;
  return {
    peer,
    socket,
    async close() {
      peer.destroy();
      socket.destroy();
      await closeServer(server);
    },
  };
}

test('a socket reading directly gets its data through kOnData and its FIN through Node as before', async () => {
  const { peer, socket, close } = await fastPair();
  try {
    // The accepted socket's handle no longer calls Node's onStreamRead for data.
    const peerHandle = (peer as unknown as { _handle: Handle })._handle;
    assert.notEqual((socket as unknown as { _handle: Handle })._handle.onread, peerHandle.onread);
    const chunks: string[] = [];
    socket[kOnData] = (chunk) => chunks.push(chunk.toString('latin1'));
    const ended = once(socket, 'end');
    socket.resume();
    peer.write('first');
    await new Promise((r) => setTimeout(r, 20));
    peer.end('second');
    await ended;
    assert.equal(chunks.join(''), 'firstsecond');
  } finally {
    await close();
  }
});

test('a paused direct reader takes nothing until resumed', async () => {
  const { peer, socket, close } = await fastPair();
  try {
    const chunks: string[] = [];
    socket[kOnData] = (chunk) => chunks.push(chunk.toString('latin1'));
    peer.write('waiting');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(chunks, [], 'accepted sockets start paused');
    const ended = once(socket, 'end');
    socket.resume();
    peer.end();
    await ended;
    assert.equal(chunks.join(''), 'waiting');
  } finally {
    await close();
  }
});

test('a socket destroyed while handling a read gets no more data', async () => {
  const { peer, socket, close } = await fastPair();
  try {
    let calls = 0;
    socket[kOnData] = () => {
      calls++;
      socket.destroy();
    };
    socket.resume();
    peer.write('a');
    await once(socket, 'close');
    peer.write('b');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(calls, 1);
  } finally {
    await close();
  }
});

test('an outgoing socket reads directly once connected; a read error still fails it', async () => {
  const server = createServer((s: Socket) => {
    s.write('hello');
    // A reset after the data: the reader sees ECONNRESET through Node's own path.
    setTimeout(() => s.resetAndDestroy(), 20);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const socket = connect({ port, host: '127.0.0.1', onread: FAST_READ }) as FastSocket;
  const chunks: string[] = [];
  socket[kOnData] = (chunk) => chunks.push(chunk.toString('latin1'));
  try {
    await once(socket, 'connect');
    const before = (socket as unknown as { _handle: Handle })._handle.onread;
    readDirect(socket);
    const after = (socket as unknown as { _handle: Handle })._handle.onread;
    assert.notEqual(after, before);
    // Installing twice changes nothing.
    readDirect(socket);
    assert.equal((socket as unknown as { _handle: Handle })._handle.onread, after);
    const [error] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
    assert.equal(error.code, 'ECONNRESET');
    assert.equal(chunks.join(''), 'hello');
  } finally {
    socket.destroy();
    await closeServer(server);
  }
});

test('reads refresh a socket timeout as they do through Node', async () => {
  const { peer, socket, close } = await fastPair();
  try {
    socket[kOnData] = () => {};
    socket.resume();
    let timedOut = false;
    socket.setTimeout(400, () => {
      timedOut = true;
    });
    // 800 ms of data 50 ms apart: well past the timeout, which each read pushes back.
    for (let i = 0; i < 16; i++) {
      peer.write('x');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(timedOut, false);
    await once(socket, 'timeout');
  } finally {
    await close();
  }
});

test('kOnShared sees each read in the shared buffer first; what it declines comes copied through kOnData', async () => {
  const { peer, socket, close } = await fastPair();
  try {
    const offered: string[] = [];
    const copied: string[] = [];
    socket[kOnShared] = (shared, length) => {
      const text = shared.toString('latin1', 0, length);
      offered.push(text);
      return text.startsWith('take');
    };
    socket[kOnData] = (chunk) => copied.push(chunk.toString('latin1'));
    const ended = once(socket, 'end');
    socket.resume();
    const pieces = ['take-1', 'keep-2', 'take-3', 'keep-4'];
    for (const [n, piece] of pieces.entries()) {
      peer.write(piece);
      // One read per piece: wait until this one was offered before writing the next.
      for (let i = 0; i < 200 && offered.length <= n; i++) await new Promise((r) => setTimeout(r, 5));
    }
    peer.end();
    await ended;
    assert.deepEqual(offered, pieces);
    assert.deepEqual(copied, ['keep-2', 'keep-4'], 'declined reads arrive copied, taken ones do not');
  } finally {
    await close();
  }
});
