import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { flushHeld, type HeldWriteOwner, writeGathered, writeSoon } from './fast-write.ts';

/** A connected pair on loopback: `local` writes, `remote` is the peer's end. */
async function pair(): Promise<{ local: Socket; remote: Socket; server: Server; close(): Promise<void> }> {
  const server = createServer({ allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const accepted = once(server, 'connection');
  const local = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await once(local, 'connect');
  const [remote] = (await accepted) as [Socket];
  return {
    local,
    remote,
    server,
    async close() {
      local.destroy();
      remote.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** Everything `socket` receives until its peer ends. */
async function readAll(socket: Socket): Promise<string> {
  const parts: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => parts.push(chunk));
  await once(socket, 'end');
  return Buffer.concat(parts).toString('latin1');
}

test('a held write goes out at the end of the poll phase, not before', async () => {
  const p = await pair();
  try {
    assert.equal(writeSoon(p.local, Buffer.from('held'), false, null), true);
    assert.equal(p.local.bytesWritten, 0, 'nothing dispatched while the pass runs');
    await tick();
    assert.equal(p.local.bytesWritten, 4, 'dispatched by the check phase');
    const received = readAll(p.remote);
    p.local.end();
    assert.equal(await received, 'held');
  } finally {
    await p.close();
  }
});

test('writes keep their order on a socket whatever path they take', async () => {
  const p = await pair();
  try {
    const received = readAll(p.remote);
    writeSoon(p.local, Buffer.from('1'), false, null);
    writeSoon(p.local, '2', false, null);
    // A gathered write dispatches what is held first.
    writeGathered(p.local, '3', [Buffer.from('4')]);
    writeSoon(p.local, Buffer.from('5'), false, null);
    // A write too large to hold goes now, after what is held.
    writeSoon(p.local, Buffer.alloc(20_000, 'x'), false, null);
    writeSoon(p.local, Buffer.from('6'), false, null);
    // A caller that ends the socket flushes first; the FIN follows every byte.
    flushHeld(p.local);
    p.local.end();
    assert.equal(await received, `12345${'x'.repeat(20_000)}6`);
  } finally {
    await p.close();
  }
});

test('flushHeld on one socket leaves the others held, in order', async () => {
  const a = await pair();
  const b = await pair();
  try {
    writeSoon(a.local, Buffer.from('a1'), false, null);
    writeSoon(b.local, Buffer.from('b1'), false, null);
    writeSoon(a.local, Buffer.from('a2'), false, null);
    flushHeld(a.local);
    assert.equal(a.local.bytesWritten, 4);
    assert.equal(b.local.bytesWritten, 0);
    flushHeld(a.local);
    await tick();
    assert.equal(a.local.bytesWritten, 4, 'flushed writes are not written twice');
    assert.equal(b.local.bytesWritten, 2);
  } finally {
    await a.close();
    await b.close();
  }
});

test('a held write to a socket destroyed before the flush is dropped quietly', async () => {
  const p = await pair();
  try {
    const errors: Error[] = [];
    p.local.on('error', (e) => errors.push(e));
    writeSoon(p.local, Buffer.from('gone'), false, null);
    p.local.destroy();
    await tick();
    await tick();
    assert.deepEqual(errors, []);
    assert.equal(p.local.bytesWritten, 0);
  } finally {
    await p.close();
  }
});

test("a held write that stays pending is reported to its owner, and 'drain' follows", async () => {
  const p = await pair();
  try {
    // The peer reads nothing, so the buffers fill during the flush.
    const stalled: Socket[] = [];
    const owner: HeldWriteOwner = { heldWriteStalled: (socket) => stalled.push(socket) };
    p.remote.pause();
    const small = Buffer.alloc(8 * 1024, 'w');
    let held = 0;
    // Each small write is held; at the flush the first ones go in whole and a later one stays
    // pending once the buffers fill.
    for (let i = 0; i < 2048; i++) if (writeSoon(p.local, small, false, owner)) held++;
    assert.equal(held, 2048);
    await tick();
    assert.ok(stalled.length > 0, 'the owner heard of the stalled write');
    assert.ok(stalled.every((s) => s === p.local));
    const drainedAgain = once(p.local, 'drain');
    p.remote.resume();
    await drainedAgain;
  } finally {
    await p.close();
  }
});

test('direct writes refresh a socket timeout as socket.write() does', async () => {
  const p = await pair();
  try {
    p.remote.resume();
    let timedOut = false;
    p.local.setTimeout(400, () => {
      timedOut = true;
    });
    // 800 ms of writes 50 ms apart: well past the timeout, which each write pushes back.
    for (let i = 0; i < 16; i++) {
      writeSoon(p.local, Buffer.from('x'), false, null);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(timedOut, false);
    await once(p.local, 'timeout');
  } finally {
    await p.close();
  }
});
