/**
 * Upstream keep-alive pools over real sockets: settings resolved per address when a route table
 * loads (and applied again on reload), pools and their connections surviving a reload, idle
 * sockets closed after `pool.idleTimeoutMs`, and connect timeouts to a silent target failing over
 * to the next target, then 502.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConfigInput } from '../src/config/schema.ts';
import type { UpstreamPool } from '../src/http/upstream-pool.ts';
import { Switchyard } from '../src/runtime/switchyard.ts';
import { request } from './helpers/http.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { freePort, waitFor } from './helpers/net.ts';
import { SilentTargets } from './helpers/silent-targets.ts';

const baseline = handleSnapshot();

after(async () => {
  await assertNoLeaks(baseline);
});

/** A node:http upstream answering `name:url`; paths containing `hold` wait for `release()`. */
class Upstream {
  readonly name: string;
  readonly server: Server;
  readonly sockets: Socket[];
  readonly held: ServerResponse[];
  port: number;

  constructor(name: string) {
    this.name = name;
    this.sockets = [];
    this.held = [];
    this.port = 0;
    this.server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.setHeader('x-text', `${this.name}:${req.url}`);
        if (req.url?.includes('hold')) this.held.push(res);
        else res.end(res.getHeader('x-text'));
      });
    });
    this.server.on('connection', (socket: Socket) => this.sockets.push(socket));
  }

  async listen(): Promise<this> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  release(): void {
    for (const res of this.held.splice(0)) res.end(res.getHeader('x-text'));
  }

  async close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }
}

function route(name: string, port: number, action: Record<string, unknown>, match: Record<string, unknown> = {}) {
  return { name, match: { ports: port, ...match }, action: { type: 'forward', mode: 'http', ...action } };
}

function config(routes: unknown[]): ConfigInput {
  return { bind: '127.0.0.1', log: { level: 'silent' }, routes } as ConfigInput;
}

function poolOf(proxy: Switchyard): UpstreamPool {
  return proxy.ctx.table.routes[0].targets[0].pool as UpstreamPool;
}

test('a reload keeps the pool and its idle connection, and applies every pool setting to it', async () => {
  const upstream = await new Upstream('U').listen();
  const port = await freePort();
  const pool = (settings: Record<string, number>) =>
    config([route('r', port, { targets: [upstream.target], pool: settings })]);
  const proxy = await Switchyard.start(pool({ maxConnections: 1, queueSize: 0, idleTimeoutMs: 60_000 }));
  try {
    assert.equal((await request(port, { path: '/1' })).body.toString(), 'U:/1');
    const before = poolOf(proxy);
    // Only the queue changes: a reload that applied just some settings kept queueSize 0.
    await proxy.update(pool({ maxConnections: 1, queueSize: 4, queueTimeoutMs: 4000, idleTimeoutMs: 30_000 }));
    assert.equal(poolOf(proxy), before, 'the same pool object after the reload');
    assert.deepEqual(
      { ...poolOf(proxy).options, connectTimeoutMs: 0 },
      { maxConnections: 1, queueSize: 4, queueTimeoutMs: 4000, idleTimeoutMs: 30_000, connectTimeoutMs: 0 },
    );
    const held = request(port, { path: '/hold' });
    await waitFor(() => upstream.held.length === 1);
    const queued = request(port, { path: '/queued' });
    await waitFor(() => poolOf(proxy).waiters.length === 1);
    upstream.release();
    assert.equal((await held).status, 200);
    const res = await queued;
    assert.equal(res.status, 200, `got ${res.status} ${res.headers['x-switchyard-error']}`);
    assert.equal(upstream.sockets.length, 1, 'the connection opened before the reload served every request');

    // A raised connection limit serves a waiter at once, without waiting for a release.
    const first = request(port, { path: '/hold-1' });
    await waitFor(() => upstream.held.length === 1);
    const second = request(port, { path: '/hold-2' });
    await waitFor(() => poolOf(proxy).waiters.length === 1);
    await proxy.update(pool({ maxConnections: 2, queueSize: 4 }));
    await waitFor(() => upstream.held.length === 2);
    upstream.release();
    assert.deepEqual([(await first).status, (await second).status], [200, 200]);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test('two routes to one address: the last route in the file sets the pool, whichever route a request takes', async () => {
  const upstream = await new Upstream('U').listen();
  const port = await freePort();
  // `narrow` is tried first (priority) but written last, so its limit of 1 is the pool's.
  const proxy = await Switchyard.start(
    config([
      route('wide', port, { targets: [upstream.target], pool: { maxConnections: 100 } }),
      {
        ...route(
          'narrow',
          port,
          { targets: [upstream.target], pool: { maxConnections: 1, queueSize: 0 } },
          { paths: ['/n/*'] },
        ),
        priority: 10,
      },
    ]),
  );
  try {
    const held = request(port, { path: '/n/hold' });
    await waitFor(() => upstream.held.length === 1);
    for (const path of ['/wide', '/n/x', '/wide']) {
      const res = await request(port, { path });
      assert.equal(res.status, 503, `${path}: ${res.status}`);
      assert.equal(res.headers['x-switchyard-error'], 'SY_UPS_POOL_FULL');
    }
    upstream.release();
    assert.equal((await held).status, 200);
    assert.equal(poolOf(proxy).options.maxConnections, 1);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test('idle pooled connections close after pool.idleTimeoutMs, and the next request opens a new one', async () => {
  const upstream = await new Upstream('U').listen();
  const port = await freePort();
  const proxy = await Switchyard.start(
    config([route('r', port, { targets: [upstream.target], pool: { idleTimeoutMs: 400 } })]),
  );
  try {
    assert.equal((await request(port, { path: '/1' })).status, 200);
    const idleFrom = Date.now();
    const socket = upstream.sockets[0];
    await sleep(150);
    assert.ok(!socket.destroyed, 'still open well before the idle timeout');
    await once(socket, 'close');
    const idleFor = Date.now() - idleFrom;
    // Never early; up to one 250 ms sweep late (generous bound for a loaded host).
    assert.ok(idleFor >= 380 && idleFor < 3000, `closed after ${idleFor} ms idle`);
    await waitFor(() => poolOf(proxy).total === 0);
    assert.equal((await request(port, { path: '/2' })).status, 200);
    assert.equal(upstream.sockets.length, 2);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test('connect timeout to a silent target: failover to the next target, then 502 when all are silent', async () => {
  const silent = await SilentTargets.start(2);
  const live = await new Upstream('L').listen();
  const [s1, s2] = silent.ports.map((p) => `127.0.0.1:${p}`);
  const port = await freePort();
  const proxy = await Switchyard.start(
    config([
      route(
        'fail',
        port,
        { targets: [s1, live.target], loadBalancing: 'failover', connectTimeoutMs: 300 },
        {
          paths: ['/f'],
        },
      ),
      route('dead', port, { targets: [s1, s2], loadBalancing: 'failover', connectTimeoutMs: 300 }),
    ]),
  );
  try {
    let started = Date.now();
    const res = await request(port, { path: '/f' });
    let took = Date.now() - started;
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'L:/f');
    assert.ok(took >= 250 && took < 3000, `answered after ${took} ms`);
    assert.equal(
      await proxy.metrics.value('switchyard_upstream_errors_total', { target: s1, reason: 'SY_UPS_CONNECT_TIMEOUT' }),
      1,
    );

    started = Date.now();
    const down = await request(port, { path: '/d' });
    took = Date.now() - started;
    assert.equal(down.status, 502);
    assert.equal(down.headers['x-switchyard-error'], 'SY_UPS_UNAVAILABLE');
    assert.ok(took >= 550 && took < 5000, `502 after ${took} ms: both targets waited out`);
    assert.equal(
      await proxy.metrics.value('switchyard_upstream_errors_total', { target: s2, reason: 'SY_UPS_CONNECT_TIMEOUT' }),
      1,
    );
  } finally {
    await proxy.close();
    await live.close();
    await silent.close();
  }
});
