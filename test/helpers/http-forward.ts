/**
 * A proxy with one HTTP forward route in front of a test's own upstream, its teardown, and a wait
 * for its HTTP engine to let go of every client connection: the setup of the tests about how client
 * connections end.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Switchyard } from '../../src/runtime/switchyard.ts';
import { freePort } from './net.ts';

/** Starts `upstream` on a free loopback port and a proxy forwarding HTTP to it from another. */
export async function startHttpForward(upstream: Server): Promise<{ proxy: Switchyard; port: number }> {
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const port = await freePort();
  const proxy = await Switchyard.start({
    bind: '127.0.0.1',
    log: { level: 'silent' },
    routes: [
      {
        name: 'r',
        match: { ports: port },
        action: {
          type: 'forward',
          mode: 'http',
          targets: [`127.0.0.1:${(upstream.address() as AddressInfo).port}`],
        },
      },
    ],
  });
  return { proxy, port };
}

/** Closes what {@link startHttpForward} started: the proxy, then the upstream and its connections. */
export async function stopHttpForward(proxy: Switchyard, upstream: Server): Promise<void> {
  await proxy.close();
  upstream.closeAllConnections();
  upstream.close();
  await once(upstream, 'close');
}

/** Resolves once the proxy's HTTP engine holds no client connection; fails after `withinMs`. */
export async function waitForNoClients(proxy: Switchyard, withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (proxy.ctx.http.connections.size > 0) {
    if (Date.now() > deadline) assert.fail(`${proxy.ctx.http.connections.size} client connections left`);
    await sleep(5);
  }
}
