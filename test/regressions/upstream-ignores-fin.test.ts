/**
 * Regression: at the drain deadline shutdown destroyed client sockets only. A tunnel then just
 * ended its upstream, so an upstream that never answered that FIN stayed open for good (the idle
 * sweep was stopped with the rest) and the tunnel's byte counts were never recorded. Shutdown now
 * finishes every tunnel, and a tunnel whose client is gone stays covered by its idle timeout even
 * when the upstream keeps talking.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Switchyard } from '../../src/runtime/switchyard.ts';
import { assertNoLeaks, handleSnapshot } from '../helpers/leaks.ts';
import { captureLogs } from '../helpers/logs.ts';
import { closed, freePort, readUntil, startServer, type TestServer } from '../helpers/net.ts';

const baseline = handleSnapshot();

after(async () => {
  await assertNoLeaks(baseline);
});

/**
 * An upstream that answers `ok` to data, ignores the FIN it gets (half-open allowed, never ends
 * its side) and, with `tickMs`, writes `tick` on that interval for as long as it is connected.
 */
async function stubbornUpstream(tickMs = 0): Promise<{ server: TestServer; closes: Promise<void>[] }> {
  const closes: Promise<void>[] = [];
  const server = await startServer(
    (socket) => {
      socket.on('data', () => socket.write('ok'));
      closes.push(new Promise((resolve) => socket.once('close', () => resolve())));
      if (tickMs > 0) {
        const timer = setInterval(() => socket.write('tick'), tickMs);
        socket.once('close', () => clearInterval(timer));
      }
    },
    { allowHalfOpen: true },
  );
  return { server, closes };
}

/** Resolves with `promise`, or fails with `message` after `timeoutMs` (its timer cleared either way). */
async function within<T>(promise: Promise<T>, timeoutMs: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function config(port: number, upstream: number, idleTimeoutMs: number, engine: 'handles' | 'sockets' = 'handles') {
  return {
    bind: '127.0.0.1',
    log: { level: 'silent' as const },
    routes: [
      {
        name: 'stubborn',
        match: { ports: port },
        action: { type: 'forward' as const, targets: [`127.0.0.1:${upstream}`], idleTimeoutMs, engine },
      },
    ],
  };
}

/** A client through the proxy that has had its `ok`, so the tunnel is joined. */
async function joinedClient(port: number, allowHalfOpen = false): Promise<Socket> {
  const client = connect({ port, host: '127.0.0.1', allowHalfOpen });
  client.on('error', () => {});
  await once(client, 'connect');
  const ok = readUntil(client, 'ok');
  client.write('x');
  await ok;
  return client;
}

test('close() past the drain deadline closes upstreams that ignore FIN and records their bytes', async () => {
  const { server, closes } = await stubbornUpstream();
  const port = await freePort();
  const logs = captureLogs('info');
  // An idle timeout far beyond the test: only shutdown may close these tunnels.
  const proxy = await Switchyard.start(config(port, server.port, 600_000), { logger: logs.logger });
  try {
    const open = await joinedClient(port);
    // This client's FIN is passed on and ignored: the tunnel waits on the upstream.
    const halfClosed = await joinedClient(port, true);
    halfClosed.end();
    await sleep(50);
    assert.equal(server.sockets.size, 2);
    await proxy.close(300);
    // The upstream side ignores the FIN it got. Its writes now meet a socket the proxy closed (a
    // reset, then EPIPE), where a proxy that only half-closed would still be reading them.
    const probe = setInterval(() => {
      for (const socket of server.sockets) socket.write('probe');
    }, 50);
    const gone = Promise.all(closes).finally(() => clearInterval(probe));
    await within(gone, 2000, 'an upstream is still open');
    assert.equal(server.sockets.size, 0);
    await Promise.all([closed(open), closed(halfClosed)]);
    assert.equal(proxy.ctx.tunnels.tunnels.size, 0);
    assert.equal(proxy.connectionCount, 0);
    assert.equal(await proxy.metrics.value('switchyard_bytes_total', { route: 'stubborn', direction: 'in' }), 2);
    assert.equal(await proxy.metrics.value('switchyard_bytes_total', { route: 'stubborn', direction: 'out' }), 4);
    assert.equal(logs.lines.filter((l) => l.msg === 'drain deadline passed; closing remaining connections').length, 1);
  } finally {
    await proxy.close();
    await server.close();
  }
});

test('a tunnel whose client is gone is closed at its idle timeout, however much the upstream talks', async () => {
  const { server, closes } = await stubbornUpstream(50);
  const port = await freePort();
  // Sockets: the test closes the proxy's client Socket itself (bare handles have none).
  const proxy = await Switchyard.start(config(port, server.port, 500, 'sockets'));
  try {
    const client = await joinedClient(port);
    await sleep(100);
    // Close the proxy's side of the client, as a local destroy (the old drain deadline) did; the
    // upstream gets a FIN it ignores and keeps writing.
    const [inner] = proxy.ctx.clients;
    inner.destroy();
    client.destroy();
    const started = Date.now();
    await within(Promise.all(closes), 3000, 'the upstream is still open');
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 400 && elapsed < 2000, `closed after ${elapsed} ms`);
    assert.equal(proxy.ctx.tunnels.tunnels.size, 0);
  } finally {
    await proxy.close();
    await server.close();
  }
});

test('on bare handles, a client gone while the upstream talks closes the tunnel', async () => {
  const { server, closes } = await stubbornUpstream(50);
  const port = await freePort();
  const proxy = await Switchyard.start(config(port, server.port, 600_000));
  try {
    const client = await joinedClient(port);
    await sleep(100);
    assert.equal(proxy.connectionCount, 1);
    // The client's FIN is passed on and ignored; the upstream's next ticks meet a closed client,
    // and the failed write closes both sides long before the idle timeout.
    client.destroy();
    await within(Promise.all(closes), 3000, 'the upstream is still open');
    await sleep(20);
    assert.equal(proxy.ctx.tunnels.tunnels.size, 0);
    assert.equal(proxy.connectionCount, 0);
  } finally {
    await proxy.close();
    await server.close();
  }
});
