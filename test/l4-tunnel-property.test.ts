/**
 * Property test of the TCP forward over real sockets, on bare handles (src/l4/raw-tunnel.ts) and
 * on Sockets (src/l4/tunnel.ts): random conversations, run in concurrent batches.
 *
 * Each conversation is drawn with fast-check from a fixed seed: how much the upstream says first,
 * how much the client sends and in what pieces, whether the client reads slowly, and whether
 * either side vanishes (destroy) part way. The client's first 5 bytes tell the upstream its part.
 *
 * Properties, for every conversation:
 * - when neither side vanishes: the client gets the upstream's greeting, then the SHA-256 of every
 *   byte it sent, then the upstream's FIN (so the client's own FIN was passed on after its last
 *   byte, and the greeting's bytes kept their order under backpressure);
 * - when one side vanishes: both ends are closed within a bounded time, never left hanging;
 * and after every batch the proxy holds no tunnel and no connection, and after all of them no
 * handle leaks.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { Switchyard } from '../src/runtime/switchyard.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { freePort, startServer, type TestServer } from './helpers/net.ts';

const baseline = handleSnapshot();
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_122);
const RUNS = Number(process.env.FUZZ_RUNS ?? 60);
const BATCH = 12;
const WITHIN_MS = 8000;

/** What the upstream does, as the client's first 5 bytes tell it. */
const U_GRACEFUL = 0;
/** The upstream destroys its socket once it has read `cutAfter` bytes. */
const U_VANISH = 1;

interface Conversation {
  /** Bytes the upstream writes before it reads anything. */
  greeting: number;
  /** What the client sends after its 5-byte header, as chunk sizes. */
  chunks: number[];
  /** The client pauses reading this long once connected (a slow reader), in ms. */
  slowReadMs: number;
  /** The client destroys its socket after this many of its chunks instead of ending; -1: never. */
  clientVanishAfter: number;
  upstreamMode: number;
}

const conversationArb: fc.Arbitrary<Conversation> = fc.record({
  greeting: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 3_000_000 })),
  chunks: fc.array(fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: 200_000 })), {
    maxLength: 8,
  }),
  slowReadMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 200 })),
  clientVanishAfter: fc.oneof({ weight: 3, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.nat(3) }),
  upstreamMode: fc.oneof(
    { weight: 3, arbitrary: fc.constant(U_GRACEFUL) },
    { weight: 1, arbitrary: fc.constant(U_VANISH) },
  ),
});

/** Deterministic bytes: position `offset` onwards of a repeating 251-byte pattern. */
function pattern(length: number, offset = 0): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = (offset + i) % 251;
  return out;
}

let upstream: TestServer;

/** The upstream: reads the header, greets, then either digests the rest or vanishes part way. */
function onUpstream(socket: Socket): void {
  let header: Buffer | null = null;
  let pending = Buffer.alloc(0);
  const hash = createHash('sha256');
  let read = 0;
  socket.on('data', (chunk: Buffer) => {
    if (header === null) {
      pending = Buffer.concat([pending, chunk]);
      if (pending.length < 5) return;
      header = pending.subarray(0, 5);
      chunk = pending.subarray(5);
      const greeting = header.readUInt32BE(0);
      if (greeting > 0) socket.write(pattern(greeting));
    }
    hash.update(chunk);
    read += chunk.length;
    if (header[4] === U_VANISH && read > 0) socket.destroy();
  });
  socket.on('end', () => {
    if (header === null || header[4] !== U_VANISH) socket.end(hash.digest('hex'));
    else socket.destroy();
  });
}

before(async () => {
  upstream = await startServer(onUpstream, { allowHalfOpen: true });
});

after(async () => {
  await upstream.close();
  await assertNoLeaks(baseline);
});

/** Runs one conversation; resolves with a failure message, or null when it held. */
async function converse(port: number, c: Conversation): Promise<string | null> {
  const client = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  client.on('error', () => {});
  const received: Buffer[] = [];
  let gotEnd = false;
  client.on('data', (chunk: Buffer) => received.push(chunk));
  client.on('end', () => {
    gotEnd = true;
    client.end();
  });
  const closedWithin = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), WITHIN_MS);
    client.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  if (c.slowReadMs > 0) {
    client.pause();
    setTimeout(() => client.resume(), c.slowReadMs);
  }
  const header = Buffer.alloc(5);
  header.writeUInt32BE(c.greeting, 0);
  header[4] = c.upstreamMode;
  const sent = createHash('sha256');
  client.write(header);
  let offset = 0;
  for (let i = 0; i < c.chunks.length; i++) {
    if (i === c.clientVanishAfter) break;
    const chunk = pattern(c.chunks[i], offset);
    offset += chunk.length;
    sent.update(chunk);
    if (!client.write(chunk)) await new Promise((resolve) => client.once('drain', resolve));
    if (i % 2 === 1) await new Promise((resolve) => setImmediate(resolve));
  }
  const vanishes = c.clientVanishAfter !== -1 && c.clientVanishAfter < c.chunks.length;
  if (vanishes) client.destroy();
  else client.end();
  if (!(await closedWithin)) {
    client.destroy();
    return 'the client was not closed in time';
  }
  if (vanishes || c.upstreamMode === U_VANISH) return null;
  const got = Buffer.concat(received);
  const expected = Buffer.concat([pattern(c.greeting), Buffer.from(sent.digest('hex'))]);
  if (!gotEnd) return `no FIN after ${got.length} bytes`;
  if (!got.equals(expected)) return `got ${got.length} bytes, expected ${expected.length} (greeting and digest)`;
  return null;
}

for (const bareHandles of [true, false]) {
  test(`random conversations through a TCP forward (${bareHandles ? 'bare handles' : 'sockets'})`, async () => {
    const port = await freePort();
    const proxy = await Switchyard.start({
      bind: '127.0.0.1',
      log: { level: 'silent' },
      routes: [
        {
          name: 'prop',
          match: { ports: port },
          action: {
            type: 'forward',
            mode: 'tcp',
            targets: [`127.0.0.1:${upstream.port}`],
            engine: bareHandles ? 'handles' : 'sockets',
            idleTimeoutMs: 5000,
          },
        },
      ],
    });
    try {
      const conversations = fc.sample(conversationArb, { seed: SEED, numRuns: RUNS });
      for (let i = 0; i < conversations.length; i += BATCH) {
        const batch = conversations.slice(i, i + BATCH);
        const results = await Promise.all(batch.map((c) => converse(port, c)));
        results.forEach((failure, j) => {
          assert.equal(failure, null, `conversation ${JSON.stringify(batch[j])}: ${failure}`);
        });
        const deadline = Date.now() + WITHIN_MS;
        while ((proxy.connectionCount > 0 || proxy.ctx.tunnels.tunnels.size > 0) && Date.now() < deadline)
          await sleep(20);
        assert.equal(proxy.connectionCount, 0, 'no client connection left');
        assert.equal(proxy.ctx.tunnels.tunnels.size, 0, 'no tunnel left');
      }
      const deadline = Date.now() + WITHIN_MS;
      while (upstream.sockets.size > 0 && Date.now() < deadline) await sleep(20);
      assert.equal(upstream.sockets.size, 0, 'every upstream connection closed');
    } finally {
      await proxy.close();
    }
  });
}
