/**
 * Layer-4 forwarding over real sockets: TCP round trips with half-close, failover, timeouts,
 * live route updates and graceful shutdown.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConfigInput } from '../src/config/schema.ts';
import { RawTunnel } from '../src/l4/raw-tunnel.ts';
import type { Tunnel } from '../src/l4/tunnel.ts';
import { Switchyard } from '../src/runtime/switchyard.ts';
import { both, engine } from './helpers/engines.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { captureLogs } from './helpers/logs.ts';
import {
  closed,
  exchange,
  freePort,
  freePorts,
  namedEcho,
  readUntil,
  startServer,
  type TestServer,
} from './helpers/net.ts';

const baseline = handleSnapshot();
let echoA: TestServer;
let echoB: TestServer;

before(async () => {
  echoA = await startServer(namedEcho('A'), { allowHalfOpen: true });
  echoB = await startServer(namedEcho('B'), { allowHalfOpen: true });
});

after(async () => {
  await echoA.close();
  await echoB.close();
  await assertNoLeaks(baseline);
});

function forward(port: number, targets: Array<string>, extra: Record<string, unknown> = {}): ConfigInput {
  return {
    bind: '127.0.0.1',
    log: { level: 'silent' },
    routes: [
      {
        name: 'fwd',
        match: { ports: port },
        action: { type: 'forward', mode: 'tcp', targets, engine: engine.name, ...extra },
      },
    ],
  };
}

/** Bytes the proxy holds for the upstream of its only tunnel, which must be of the current kind. */
function heldForUpstream(proxy: Switchyard): number {
  const [tunnel] = proxy.ctx.tunnels.tunnels;
  assert.equal(tunnel instanceof RawTunnel, engine.name === 'handles', 'the tunnel is of the kind under test');
  if (tunnel instanceof RawTunnel)
    return (tunnel.upstream!.handle as unknown as { writeQueueSize: number }).writeQueueSize;
  return heldBy((tunnel as Tunnel).upstream!);
}

both('TCP round trip with half-close in both directions', async () => {
  const port = await freePort();
  const proxy = await Switchyard.start(forward(port, [`127.0.0.1:${echoA.port}`]));
  try {
    // The client half-closes after its request; the upstream still answers, then ends.
    const { data, error } = await exchange(port, 'ping');
    assert.equal(error, null);
    assert.equal(data, 'A:pingbye');
    // Bytes are counted per route once the connection is gone.
    await sleep(20);
    assert.equal(await proxy.metrics.value('switchyard_bytes_total', { route: 'fwd', direction: 'in' }), 4);
    assert.equal(await proxy.metrics.value('switchyard_bytes_total', { route: 'fwd', direction: 'out' }), 9);
    assert.equal(await proxy.metrics.value('switchyard_connections_total', { route: 'fwd' }), 1);
    assert.equal(await proxy.metrics.value('switchyard_connections_active'), 0);
    assert.equal(proxy.connectionCount, 0);
  } finally {
    await proxy.close();
  }
});

/** One exchange with echo A through `port`, whose tunnel must be a Socket one; then closes the proxy. */
async function assertForwardsOnSockets(proxy: Switchyard, port: number): Promise<void> {
  try {
    const client = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    client.write('ping');
    await readUntil(client, 'A:ping');
    const [tunnel] = proxy.ctx.tunnels.tunnels;
    assert.ok(tunnel !== undefined && !(tunnel instanceof RawTunnel), 'a Socket tunnel');
    client.end();
    await closed(client);
  } finally {
    await proxy.close();
  }
}

test('a target given by host name is forwarded on Sockets, with the same result', async () => {
  const port = await freePort();
  const proxy = await Switchyard.start(forward(port, [`localhost:${echoA.port}`]));
  await assertForwardsOnSockets(proxy, port);
});

test('a port with one route on Sockets forwards every connection on Sockets, whichever route it takes', async () => {
  const port = await freePort();
  const proxy = await Switchyard.start({
    bind: '127.0.0.1',
    log: { level: 'silent' },
    routes: [
      {
        name: 'local',
        priority: 10,
        match: { ports: port, clientIps: ['127.0.0.1'] },
        action: { type: 'forward', mode: 'tcp', targets: [`127.0.0.1:${echoA.port}`] },
      },
      {
        name: 'others',
        match: { ports: port },
        action: { type: 'forward', mode: 'tcp', targets: [`127.0.0.1:${echoB.port}`], engine: 'sockets' },
      },
    ],
  });
  await assertForwardsOnSockets(proxy, port);
});

both("a trusted PROXY header is not counted in the route's bytes, only what the tunnel carries", async () => {
  const port = await freePort();
  const proxy = await Switchyard.start({
    ...forward(port, [`127.0.0.1:${echoA.port}`]),
    proxyProtocol: { trustedCidrs: ['127.0.0.1/32'] },
  });
  try {
    const { data, error } = await exchange(port, 'PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\nping');
    assert.equal(error, null);
    assert.equal(data, 'A:pingbye');
    await sleep(20);
    assert.equal(await proxy.metrics.value('switchyard_bytes_total', { route: 'fwd', direction: 'in' }), 4);
    assert.equal(await proxy.metrics.value('switchyard_bytes_total', { route: 'fwd', direction: 'out' }), 9);
  } finally {
    await proxy.close();
  }
});

both('upstream half-close: the client can keep sending after the server ended', async () => {
  const upstream = await startServer(
    (socket) => {
      socket.end('greeting');
      const got: Buffer[] = [];
      socket.on('data', (c) => got.push(c));
      socket.on('end', () => {
        upstream.server.emit('got', Buffer.concat(got).toString());
      });
    },
    { allowHalfOpen: true },
  );
  const port = await freePort();
  const proxy = await Switchyard.start(forward(port, [`127.0.0.1:${upstream.port}`]));
  try {
    const client = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    await readUntil(client, 'greeting');
    await once(client, 'end');
    const got = once(upstream.server, 'got');
    client.end('late data after the server FIN');
    assert.deepEqual(await got, ['late data after the server FIN']);
    await closed(client);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

both('bulk transfer keeps every byte in order', async () => {
  const size = 8 * 1024 * 1024;
  const sink = await startServer(
    (socket) => {
      const hash = createHash('sha256');
      let n = 0;
      socket.on('data', (c: Buffer) => {
        hash.update(c);
        n += c.length;
      });
      socket.on('end', () => socket.end(`${n}:${hash.digest('hex')}`));
    },
    { allowHalfOpen: true },
  );
  const port = await freePort();
  const proxy = await Switchyard.start(forward(port, [`127.0.0.1:${sink.port}`]));
  try {
    const payload = randomBytes(size);
    const { data } = await exchange(port, payload);
    assert.equal(data, `${size}:${createHash('sha256').update(payload).digest('hex')}`);
  } finally {
    await proxy.close();
    await sink.close();
  }
});

/** Reads `socket` to its end with pauses, so writes to it keep going pending; resolves size:sha256. */
function stutteringDigest(socket: import('node:net').Socket): Promise<string> {
  const hash = createHash('sha256');
  let n = 0;
  let reads = 0;
  // Not reading at first fills the kernel's buffers (several MiB on loopback), after which the
  // proxy's writes to this socket stay pending.
  socket.pause();
  setTimeout(() => socket.resume(), 150);
  socket.on('data', (c: Buffer) => {
    hash.update(c);
    n += c.length;
    if (++reads % 64 === 0) {
      socket.pause();
      setTimeout(() => socket.resume(), 10);
    }
  });
  return new Promise((resolve) => socket.on('end', () => resolve(`${n}:${hash.digest('hex')}`)));
}

both('concurrent bulk transfers both ways to stuttering readers keep every byte (recycled read buffers)', async () => {
  // Several tunnels move large reads at once while both ends pause now and then, so writes stay
  // pending in the kernel while other sockets read: a read buffer reused before its write
  // completed would corrupt some stream.
  const size = 16 * 1024 * 1024;
  const streams = 3;
  const upstreamDigests: Promise<string>[] = [];
  const replies: Buffer[] = [];
  const sink = await startServer(
    (socket) => {
      upstreamDigests.push(stutteringDigest(socket));
      const reply = randomBytes(size);
      replies.push(reply);
      socket.end(reply);
    },
    { allowHalfOpen: true },
  );
  const port = await freePort();
  const proxy = await Switchyard.start(forward(port, [`127.0.0.1:${sink.port}`]));
  try {
    const runs = Array.from({ length: streams }, async () => {
      const payload = randomBytes(size);
      const client = connect(port, '127.0.0.1');
      await once(client, 'connect');
      const received = stutteringDigest(client);
      client.end(payload);
      return { sent: `${size}:${createHash('sha256').update(payload).digest('hex')}`, received: await received };
    });
    const results = await Promise.all(runs);
    const sentUp = new Set(results.map((r) => r.sent));
    const gotUp = new Set(await Promise.all(upstreamDigests));
    assert.deepEqual(gotUp, sentUp, 'every client stream reached the upstream intact');
    const sentDown = new Set(replies.map((b) => `${size}:${createHash('sha256').update(b).digest('hex')}`));
    assert.deepEqual(
      new Set(results.map((r) => r.received)),
      sentDown,
      'every upstream stream reached its client intact',
    );
  } finally {
    await proxy.close();
    await sink.close();
  }
});

both('failover: a refused first target is skipped for the second', async () => {
  const [port, dead] = await freePorts(2);
  const logs = captureLogs();
  const proxy = await Switchyard.start(
    forward(port, [`127.0.0.1:${dead}`, `127.0.0.1:${echoB.port}`], { loadBalancing: 'failover' }),
    { logger: logs.logger },
  );
  try {
    for (let i = 0; i < 3; i++) assert.equal((await exchange(port, 'x')).data, 'B:xbye');
    assert.equal(await proxy.metrics.value('switchyard_upstream_errors_total', { target: `127.0.0.1:${dead}` }), 3);
    assert.equal(logs.withCode('SY_L4_CONNECT').length, 3);
  } finally {
    await proxy.close();
  }
});

both('round-robin spreads connections over targets', async () => {
  const port = await freePort();
  const proxy = await Switchyard.start(forward(port, [`127.0.0.1:${echoA.port}`, `127.0.0.1:${echoB.port}`]));
  try {
    const seen = [];
    for (let i = 0; i < 4; i++) seen.push((await exchange(port, 'r')).data[0]);
    assert.deepEqual(seen, ['A', 'B', 'A', 'B']);
  } finally {
    await proxy.close();
  }
});

both('round-robin: a refused target is skipped for the next one and the refusal counted', async () => {
  const [port, dead] = await freePorts(2);
  const logs = captureLogs();
  const proxy = await Switchyard.start(forward(port, [`127.0.0.1:${dead}`, `127.0.0.1:${echoB.port}`]), {
    logger: logs.logger,
  });
  try {
    // The rotation starts connections 1 and 3 at the refused target, 2 and 4 at the live one:
    // each of the four is served by B, and only the two that started at the dead target paid
    // a refused connect (failover would pay one on every connection).
    for (let i = 0; i < 4; i++) assert.equal((await exchange(port, `${i}`)).data, `B:${i}bye`);
    assert.equal(
      await proxy.metrics.value('switchyard_upstream_errors_total', {
        target: `127.0.0.1:${dead}`,
        reason: 'SY_L4_CONNECT',
      }),
      2,
    );
    assert.equal(logs.withCode('SY_L4_CONNECT').length, 2);
    assert.equal(await proxy.metrics.value('switchyard_connections_total', { route: 'fwd' }), 4);
  } finally {
    await proxy.close();
  }
});

both('every target refusing closes the client promptly with a counter', async () => {
  const [port, dead1, dead2] = await freePorts(3);
  const logs = captureLogs();
  const proxy = await Switchyard.start(forward(port, [`127.0.0.1:${dead1}`, `127.0.0.1:${dead2}`]), {
    logger: logs.logger,
  });
  try {
    const started = Date.now();
    const { data } = await exchange(port, 'x', { end: false });
    assert.equal(data, '');
    assert.ok(Date.now() - started < 2000);
    assert.equal(await proxy.metrics.value('switchyard_rejected_connections_total', { reason: 'SY_L4_NO_TARGET' }), 1);
    assert.equal(logs.withCode('SY_L4_NO_TARGET').length, 1);
  } finally {
    await proxy.close();
  }
});

both('a target that never answers the SYN times out and fails over', async () => {
  // A socket that listens with a zero backlog and never accepts: once its queue is full the
  // kernel drops further SYNs, so a connect hangs (Node's own servers always accept).
  const blackhole = spawn('/usr/bin/python3', [
    '-c',
    'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)',
  ]);
  try {
    const [line] = await once(blackhole.stdout, 'data');
    const hole = Number(String(line).trim());
    const fillers = [connect(hole, '127.0.0.1'), connect(hole, '127.0.0.1')];
    for (const f of fillers) f.on('error', () => {});
    await sleep(100);
    const port = await freePort();
    const proxy = await Switchyard.start(
      forward(port, [`127.0.0.1:${hole}`, `127.0.0.1:${echoA.port}`], {
        loadBalancing: 'failover',
        connectTimeoutMs: 300,
      }),
    );
    try {
      const started = Date.now();
      const { data } = await exchange(port, 'slow');
      assert.equal(data, 'A:slowbye');
      assert.ok(Date.now() - started >= 250, 'the connect timeout was waited for');
      assert.equal(
        await proxy.metrics.value('switchyard_upstream_errors_total', { reason: 'SY_L4_CONNECT_TIMEOUT' }),
        1,
      );
    } finally {
      await proxy.close();
      for (const f of fillers) f.destroy();
    }
  } finally {
    blackhole.kill();
    await once(blackhole, 'exit');
  }
});

both('idle timeout closes both sides', async () => {
  const port = await freePort();
  const silent = await startServer(() => {});
  const proxy = await Switchyard.start(forward(port, [`127.0.0.1:${silent.port}`], { idleTimeoutMs: 200 }));
  try {
    const client = connect(port, '127.0.0.1');
    client.on('error', () => {});
    await once(client, 'connect');
    await sleep(50);
    assert.equal(silent.sockets.size, 1);
    assert.equal(proxy.connectionCount, 1);
    assert.equal(await proxy.metrics.value('switchyard_connections_active'), 1);
    await closed(client, 2000);
    await sleep(50);
    assert.equal(silent.sockets.size, 0);
    assert.equal(proxy.connectionCount, 0);
    assert.equal(await proxy.metrics.value('switchyard_connections_active'), 0);
  } finally {
    await proxy.close();
    await silent.close();
  }
});

both('traffic keeps a tunnel open past its idle timeout, which counts from the last byte', async () => {
  const port = await freePort();
  const echo = await startServer((socket) => socket.pipe(socket));
  const proxy = await Switchyard.start(forward(port, [`127.0.0.1:${echo.port}`], { idleTimeoutMs: 300 }));
  try {
    const client = connect(port, '127.0.0.1');
    client.on('error', () => {});
    await once(client, 'connect');
    let echoed = 0;
    client.on('data', (d: Buffer) => {
      echoed += d.length;
    });
    // A byte every 100 ms for 1.2 s: four idle timeouts long, never idle for one.
    for (let i = 0; i < 12; i++) {
      client.write('x');
      await sleep(100);
    }
    assert.equal(client.destroyed, false, 'an active tunnel stays open');
    assert.equal(echoed, 12);
    const last = Date.now();
    await closed(client, 3000);
    const idle = Date.now() - last;
    assert.ok(idle >= 250, `closed ${idle} ms after the last byte, not before its timeout`);
  } finally {
    await proxy.close();
    await echo.close();
  }
});

both('a slow reader does not make the proxy buffer without bound', async () => {
  // The upstream writes as fast as the proxy accepts; the client reads nothing. With
  // backpressure the upstream must see write() return false after a bounded amount.
  let written = 0;
  let blocked = false;
  const firehose = await startServer((socket) => {
    const chunk = Buffer.alloc(64 * 1024, 120);
    const pump = (): void => {
      while (socket.write(chunk)) {
        written += chunk.length;
        if (written > 512 * 1024 * 1024) return;
      }
      blocked = true;
    };
    pump();
    socket.on('drain', pump);
  });
  const port = await freePort();
  const proxy = await Switchyard.start(forward(port, [`127.0.0.1:${firehose.port}`]));
  try {
    const client = connect(port, '127.0.0.1');
    await once(client, 'connect');
    client.pause();
    await sleep(500);
    const after = written;
    await sleep(300);
    assert.ok(blocked, 'upstream saw backpressure');
    assert.equal(written, after, 'no progress while the client does not read');
    assert.ok(written < 64 * 1024 * 1024, `buffered ${written} bytes`);
    client.destroy();
  } finally {
    await proxy.close();
    await firehose.close();
  }
});

/**
 * Bytes a socket has taken to send that the kernel has not: the Writable's buffer plus libuv's
 * write queue, where the tunnel's direct writes wait (fast-write.ts bypasses the Writable).
 */
function heldBy(socket: Socket): number {
  const handle = (socket as unknown as { _handle: { writeQueueSize?: number } | null })._handle;
  return socket.writableLength + (handle?.writeQueueSize ?? 0);
}

both('a slow upstream makes the proxy stop reading its client; every byte arrives once it reads', async () => {
  // The mirror of the slow reader above: the client writes as fast as the proxy accepts and the
  // upstream reads nothing. With backpressure the client must see write() return false after a
  // bounded amount, and the proxy must hold no more than a chunk or so of its own.
  const cap = 256 * 1024 * 1024;
  const chunkSize = 64 * 1024;
  // Chunks are windows of one random block at shifting offsets: distinct, so a reordered or
  // dropped chunk changes the digest, without generating hundreds of MiB of random bytes.
  const block = randomBytes(1024 * 1024);
  let accepted!: (socket: Socket) => void;
  const upstreamSocket = new Promise<Socket>((resolve) => {
    accepted = resolve;
  });
  const sink = await startServer(
    (socket) => {
      socket.pause();
      const hash = createHash('sha256');
      let n = 0;
      socket.on('data', (c: Buffer) => {
        hash.update(c);
        n += c.length;
      });
      socket.on('end', () => socket.end(`${n}:${hash.digest('hex')}`));
      accepted(socket);
    },
    { allowHalfOpen: true },
  );
  const port = await freePort();
  const proxy = await Switchyard.start(forward(port, [`127.0.0.1:${sink.port}`]));
  const client = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  try {
    await once(client, 'connect');
    const upstream = await upstreamSocket;
    const sent = createHash('sha256');
    let written = 0;
    let blocked = false;
    let stopped = false;
    let index = 0;
    const pump = (): void => {
      while (!stopped && written < cap) {
        const offset = (index++ * 4099) % (block.length - chunkSize);
        const chunk = block.subarray(offset, offset + chunkSize);
        sent.update(chunk);
        written += chunk.length;
        if (!client.write(chunk)) {
          blocked = true;
          return;
        }
      }
    };
    client.on('drain', pump);
    pump();
    await sleep(500);
    const settled = written;
    await sleep(300);
    const proxyHeld = heldForUpstream(proxy);
    assert.ok(blocked, 'the client saw backpressure');
    assert.equal(written, settled, 'no progress while the upstream does not read');
    assert.ok(written < 64 * 1024 * 1024, `the client got ${written} bytes in`);
    assert.ok(proxyHeld <= 1024 * 1024, `the proxy buffers ${proxyHeld} bytes`);

    stopped = true;
    client.end();
    upstream.resume();
    // The sink answers with the byte count and digest of what it read.
    const expected = `${written}:${sent.digest('hex')}`;
    assert.equal(await readUntil(client, expected, 10_000), expected);
    await closed(client);
  } finally {
    // Both ends first, so that a failed run does not wait out the drain deadline.
    client.destroy();
    await sink.close();
    await proxy.close();
  }
});

both('live route update: new connections use the new table, open ones keep theirs', async () => {
  const port = await freePort();
  const proxy = await Switchyard.start(forward(port, [`127.0.0.1:${echoA.port}`]));
  try {
    const open = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    open.write('1');
    await readUntil(open, 'A:1');
    await proxy.update(forward(port, [`127.0.0.1:${echoB.port}`]));
    assert.equal((await exchange(port, 'new')).data, 'B:newbye');
    const got = readUntil(open, 'A:2');
    open.write('2');
    await got;
    open.end();
    await closed(open);
  } finally {
    await proxy.close();
  }
});

both('live update opens new ports and closes removed ones', async () => {
  const [p1, p2] = await freePorts(2);
  const proxy = await Switchyard.start(forward(p1, [`127.0.0.1:${echoA.port}`]));
  try {
    assert.deepEqual(proxy.ports, [p1]);
    await proxy.update(forward(p2, [`127.0.0.1:${echoB.port}`]));
    assert.deepEqual(proxy.ports, [p2]);
    assert.equal((await exchange(p2, 'z')).data, 'B:zbye');
    const refused = await exchange(p1, 'z');
    assert.equal(refused.data, '');
    assert.equal((refused.error as NodeJS.ErrnoException | null)?.code, 'ECONNREFUSED');
  } finally {
    await proxy.close();
  }
});

both('a bad update is rejected whole and the running table stays', async () => {
  const port = await freePort();
  const proxy = await Switchyard.start(forward(port, [`127.0.0.1:${echoA.port}`]));
  try {
    await assert.rejects(proxy.update(forward(port, ['nonsense'])), /routes\[0\]\.action\.targets\[0\]/);
    assert.equal((await exchange(port, 'still')).data, 'A:stillbye');
  } finally {
    await proxy.close();
  }
});

both('graceful shutdown stops accepting and drains open connections', async () => {
  const port = await freePort();
  const proxy = await Switchyard.start(forward(port, [`127.0.0.1:${echoA.port}`]));
  const open = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  open.write('before');
  await readUntil(open, 'A:before');
  const closing = proxy.close(5000);
  await sleep(50);
  // No new connections...
  const refused = await exchange(port, 'x');
  assert.equal((refused.error as NodeJS.ErrnoException | null)?.code, 'ECONNREFUSED');
  // ...but the open one still works until its client is done.
  const got = readUntil(open, 'A:during');
  open.write('during');
  await got;
  let done = false;
  closing.then(() => {
    done = true;
  });
  await sleep(100);
  assert.equal(done, false, 'close waits for the open connection');
  open.end();
  await closed(open);
  await closing;
});

both('graceful shutdown closes what is left at the deadline', async () => {
  const port = await freePort();
  const proxy = await Switchyard.start(forward(port, [`127.0.0.1:${echoA.port}`]));
  const open = connect({ port, host: '127.0.0.1' });
  open.on('error', () => {});
  open.write('hold');
  await readUntil(open, 'A:hold');
  const started = Date.now();
  await proxy.close(300);
  assert.ok(Date.now() - started >= 250);
  await closed(open);
  assert.equal(proxy.connectionCount, 0);
});
