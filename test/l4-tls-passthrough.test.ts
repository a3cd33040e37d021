/**
 * TLS passthrough routed by SNI, ClientHello classification (fragmented, missing SNI, garbage)
 * and PROXY protocol v1/v2 from trusted and untrusted peers, over real sockets.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createServer as createTlsServer, type Server as TlsServer, connect as tlsConnect } from 'node:tls';
import type { ConfigInput } from '../src/config/schema.ts';
import { RawTunnel } from '../src/l4/raw-tunnel.ts';
import { encodeProxyV1, encodeProxyV2 } from '../src/listener/proxy-protocol.ts';
import { Switchyard } from '../src/runtime/switchyard.ts';
import { createCa, type TestCa } from './helpers/certs.ts';
import { both, engine } from './helpers/engines.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { captureLogs } from './helpers/logs.ts';
import { closed, exchange, freePort, startServer, type TestServer, waitFor } from './helpers/net.ts';
import { SilentTargets } from './helpers/silent-targets.ts';

const baseline = handleSnapshot();
let ca: TestCa;
const tlsServers: TlsServer[] = [];
const tlsPorts: Record<string, number> = {};
let plain: TestServer;
/** What the plain recorder upstream received on its latest connection. */
let recorded: Promise<Buffer>;
let recordedResolve: (b: Buffer) => void;

function resetRecorder(): void {
  recorded = new Promise((resolve) => {
    recordedResolve = resolve;
  });
}

/** A TLS server that answers `<name>:<servername>` to any data. */
async function startTlsBackend(name: string, names: string[]): Promise<number> {
  const pair = await ca.issue(names);
  const server = createTlsServer({ key: pair.key, cert: pair.cert }, (socket) => {
    socket.on('error', () => {});
    socket.on('data', () => socket.end(`${name}:${(socket as unknown as { servername: string }).servername}`));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  tlsServers.push(server);
  return (server.address() as { port: number }).port;
}

before(async () => {
  ca = await createCa();
  tlsPorts.exact = await startTlsBackend('exact', ['api.example.test']);
  tlsPorts.wild = await startTlsBackend('wild', ['*.apps.example.test', 'deep.web.apps.example.test']);
  resetRecorder();
  plain = await startServer(
    (socket) => {
      const chunks: Buffer[] = [];
      socket.on('data', (c) => chunks.push(c));
      socket.on('end', () => {
        recordedResolve(Buffer.concat(chunks));
        socket.end();
      });
    },
    { allowHalfOpen: true },
  );
});

after(async () => {
  for (const server of tlsServers) {
    server.close();
    await once(server, 'close');
  }
  await plain.close();
  await ca.cleanup();
  await assertNoLeaks(baseline);
});

function sniConfig(port: number, extra: Partial<ConfigInput> = {}): ConfigInput {
  return {
    bind: '127.0.0.1',
    log: { level: 'silent' },
    timeouts: { classifyMs: 500 },
    routes: [
      {
        name: 'exact',
        match: { ports: port, domains: ['api.example.test'] },
        action: {
          type: 'forward',
          mode: 'tls-passthrough',
          targets: [`127.0.0.1:${tlsPorts.exact}`],
          engine: engine.name,
        },
      },
      {
        name: 'wild',
        match: { ports: port, domains: ['*.apps.example.test'] },
        action: {
          type: 'forward',
          mode: 'tls-passthrough',
          targets: [`127.0.0.1:${tlsPorts.wild}`],
          engine: engine.name,
        },
      },
    ],
    ...extra,
  };
}

async function tlsHello(port: number, servername: string): Promise<string> {
  const socket = tlsConnect({ port, host: '127.0.0.1', servername, ca: ca.cert });
  await once(socket, 'secureConnect');
  socket.write('hi');
  const chunks: Buffer[] = [];
  socket.on('data', (c) => chunks.push(c));
  await once(socket, 'close');
  return Buffer.concat(chunks).toString();
}

/** Checks that the proxy's one tunnel is of the engine under test. */
function assertTunnelKind(proxy: Switchyard): void {
  const [tunnel] = proxy.ctx.tunnels.tunnels;
  assert.equal(tunnel instanceof RawTunnel, engine.name === 'handles', 'the tunnel is of the engine under test');
}

/** Captures the exact bytes of a ClientHello for `servername`. */
async function captureClientHello(servername: string | undefined): Promise<Buffer> {
  const sink = await startServer(() => {});
  const got = new Promise<Buffer>((resolve) => {
    sink.server.once('connection', (s: Socket) => s.once('data', resolve));
  });
  const client = tlsConnect({ port: sink.port, host: '127.0.0.1', servername, rejectUnauthorized: false });
  client.on('error', () => {});
  const hello = await got;
  client.destroy();
  await sink.close();
  return hello;
}

both('TLS passthrough routes by SNI: exact and wildcard names reach different backends', async () => {
  const port = await freePort();
  const proxy = await Switchyard.start(sniConfig(port));
  try {
    assert.equal(await tlsHello(port, 'api.example.test'), 'exact:api.example.test');
    assert.equal(await tlsHello(port, 'web.apps.example.test'), 'wild:web.apps.example.test');
    assert.equal(await tlsHello(port, 'deep.web.apps.example.test'), 'wild:deep.web.apps.example.test');
  } finally {
    await proxy.close();
  }
});

both('unknown SNI, missing SNI and garbage are closed promptly with a log line and a counter', async () => {
  const port = await freePort();
  const logs = captureLogs();
  const proxy = await Switchyard.start(sniConfig(port), { logger: logs.logger });
  try {
    const started = Date.now();
    const unknown = tlsConnect({ port, host: '127.0.0.1', servername: 'nope.example.test', ca: ca.cert });
    const unknownError = await once(unknown, 'error').then(([e]) => e as Error);
    assert.match(unknownError.message, /socket disconnected|ECONNRESET/);
    const noSni = tlsConnect({ port, host: '127.0.0.1', ca: ca.cert, checkServerIdentity: () => undefined });
    await once(noSni, 'error');
    assert.equal(
      await proxy.metrics.value('switchyard_rejected_connections_total', { reason: 'SY_ROUTE_NO_MATCH' }),
      2,
    );
    // TLS record header followed by junk: a malformed ClientHello.
    const junk = await exchange(port, Buffer.from('160301000501ffffffff', 'hex'), { end: false });
    assert.equal(junk.data, '');
    assert.equal(await proxy.metrics.value('switchyard_rejected_connections_total', { reason: 'SY_LSN_BAD_TLS' }), 1);
    assert.ok(Date.now() - started < 1000, 'rejections do not wait for a timeout');
    assert.equal(logs.withCode('SY_ROUTE_NO_MATCH').length, 2);
    assert.equal(logs.withCode('SY_LSN_BAD_TLS').length, 1);
    await waitFor(() => proxy.connectionCount === 0, 3000, 'every rejected connection closed');
    assert.equal(await proxy.metrics.value('switchyard_connections_active'), 0);
  } finally {
    await proxy.close();
  }
});

both('a client that sends nothing, or half a ClientHello, is closed at the classify timeout', async () => {
  const port = await freePort();
  const proxy = await Switchyard.start(sniConfig(port));
  try {
    const hello = await captureClientHello('api.example.test');
    const started = Date.now();
    const silent = connect(port, '127.0.0.1');
    const partial = connect(port, '127.0.0.1');
    partial.write(hello.subarray(0, 20));
    await Promise.all([closed(silent, 3000), closed(partial, 3000)]);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 400 && elapsed < 2500, `closed after ${elapsed} ms`);
    assert.equal(
      await proxy.metrics.value('switchyard_rejected_connections_total', { reason: 'SY_LSN_CLASSIFY_TIMEOUT' }),
      2,
    );
  } finally {
    await proxy.close();
  }
});

both('a client that half-closes before its ClientHello is complete is closed at once, with a counter', async () => {
  const port = await freePort();
  const logs = captureLogs();
  const proxy = await Switchyard.start(sniConfig(port, { timeouts: { classifyMs: 10_000 } }), { logger: logs.logger });
  try {
    const hello = await captureClientHello('api.example.test');
    const started = Date.now();
    // Half a ClientHello, then FIN; and a connection that sends nothing before its FIN.
    const half = await exchange(port, hello.subarray(0, 40));
    const empty = await exchange(port, '');
    assert.equal(half.data, '');
    assert.equal(empty.data, '');
    assert.ok(Date.now() - started < 2000, 'closed without waiting for the classify deadline');
    assert.equal(
      await proxy.metrics.value('switchyard_rejected_connections_total', { reason: 'SY_LSN_EARLY_CLOSE' }),
      2,
    );
    assert.equal(logs.withCode('SY_LSN_EARLY_CLOSE').length, 2);
    await waitFor(() => proxy.connectionCount === 0, 3000, 'both connections closed');
  } finally {
    await proxy.close();
  }
});

both('shutdown closes connections still being classified at its drain deadline', async () => {
  const port = await freePort();
  const proxy = await Switchyard.start(sniConfig(port, { timeouts: { classifyMs: 30_000 } }));
  const silent = connect(port, '127.0.0.1');
  silent.on('error', () => {});
  await once(silent, 'connect');
  await waitFor(() => proxy.connectionCount === 1, 3000, 'the connection accepted');
  const started = Date.now();
  await proxy.close(200);
  await closed(silent, 3000);
  const elapsed = Date.now() - started;
  assert.ok(elapsed < 2000, `closed ${elapsed} ms after shutdown began`);
  assert.equal(proxy.connectionCount, 0);
  assert.equal(await proxy.metrics.value('switchyard_rejected_connections_total'), 0);
});

/** Resolves as `promise` does, or rejects once `ms` have passed. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

both('silent, garbage and black-holed connections pending on a port never stall a good one', async () => {
  const port = await freePort();
  const hole = await SilentTargets.start(1);
  const config = sniConfig(port, { timeouts: { classifyMs: 10_000 } });
  config.routes.push({
    name: 'hole',
    match: { ports: port, domains: ['hole.example.test'] },
    action: {
      type: 'forward',
      mode: 'tls-passthrough',
      targets: [`127.0.0.1:${hole.ports[0]}`],
      connectTimeoutMs: 10_000,
      engine: engine.name,
    },
  });
  const proxy = await Switchyard.start(config);
  const pending: Socket[] = [];
  try {
    const holeHello = await captureClientHello('hole.example.test');
    // A TLS record and handshake header announcing a 508-byte ClientHello, then 64 bytes of junk:
    // the classifier has to wait for the rest.
    const garbage = Buffer.concat([Buffer.from('1603010200010001fc', 'hex'), randomBytes(64)]);
    for (let i = 0; i < 10; i++) {
      pending.push(connect(port, '127.0.0.1'));
      const trickle = connect(port, '127.0.0.1');
      trickle.write(garbage);
      pending.push(trickle);
      // A full ClientHello routed to a target whose connect never completes.
      const holed = connect(port, '127.0.0.1');
      holed.write(holeHello);
      pending.push(holed);
    }
    for (const socket of pending) socket.on('error', () => {});
    await Promise.all(pending.map((socket) => once(socket, 'connect')));
    // Every one accepted, and the black-holed ones routed (their upstream connects now hang).
    const routed = (): Promise<number> => proxy.metrics.value('switchyard_connections_total', { route: 'hole' });
    const deadline = Date.now() + 3000;
    while ((proxy.connectionCount < pending.length || (await routed()) < 10) && Date.now() < deadline) await sleep(10);

    const started = Date.now();
    assert.equal(
      await within(tlsHello(port, 'api.example.test'), 3000, 'the good connection'),
      'exact:api.example.test',
    );
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 2000, `the good connection took ${elapsed} ms`);

    // The bad ones were all still waiting meanwhile: none closed, none rejected or timed out.
    assert.equal(pending.filter((socket) => socket.closed).length, 0, 'every bad connection is still pending');
    assert.ok(proxy.connectionCount >= pending.length, `${proxy.connectionCount} connections open`);
    assert.equal(await proxy.metrics.value('switchyard_rejected_connections_total'), 0);
    assert.equal(await proxy.metrics.value('switchyard_upstream_errors_total'), 0);
    assert.equal(await routed(), 10);

    // Garbage that cannot be a ClientHello is refused at once while the others still wait.
    const refusedAt = Date.now();
    const plaintext = await within(exchange(port, 'GET / HTTP/1.0\r\n\r\n', { end: false }), 3000, 'the refusal');
    assert.equal(plaintext.data, '');
    assert.ok(Date.now() - refusedAt < 2000, 'refused promptly');
    assert.equal(
      await proxy.metrics.value('switchyard_rejected_connections_total', { reason: 'SY_ROUTE_NO_MATCH' }),
      1,
    );
  } finally {
    for (const socket of pending) socket.destroy();
    await proxy.close(500);
    await hole.close();
  }
});

both('a ClientHello split into tiny TCP segments is reassembled and forwarded byte for byte', async () => {
  const port = await freePort();
  const proxy = await Switchyard.start({
    bind: '127.0.0.1',
    log: { level: 'silent' },
    routes: [
      {
        name: 'rec',
        match: { ports: port, domains: ['frag.example.test'] },
        action: { type: 'forward', mode: 'tls-passthrough', targets: [`127.0.0.1:${plain.port}`], engine: engine.name },
      },
    ],
  });
  try {
    const hello = await captureClientHello('frag.example.test');
    resetRecorder();
    const client = connect({ port, host: '127.0.0.1', noDelay: true });
    await once(client, 'connect');
    for (let i = 0; i < hello.length; i += 7) {
      client.write(hello.subarray(i, i + 7));
      await sleep(1);
    }
    await waitFor(() => proxy.ctx.tunnels.tunnels.size === 1, 3000, 'the connection routed');
    assertTunnelKind(proxy);
    client.end();
    assert.deepEqual(await recorded, hello);
    await closed(client);
  } finally {
    await proxy.close();
  }
});

function proxyConfig(port: number, trusted: string[]): ConfigInput {
  return {
    bind: '127.0.0.1',
    log: { level: 'silent' },
    proxyProtocol: { trustedCidrs: trusted },
    routes: [
      {
        name: 'from-doc-net',
        priority: 10,
        match: { ports: port, clientIps: ['203.0.113.0/24', '2001:db8::/32'] },
        action: { type: 'forward', targets: [`127.0.0.1:${plain.port}`] },
      },
      {
        name: 'others',
        match: { ports: port },
        action: { type: 'forward', targets: [`127.0.0.1:${tlsPorts.exact}`] },
      },
    ],
  };
}

test('PROXY v1 and v2 from a trusted peer: the header is stripped and its address is routed on', async () => {
  const port = await freePort();
  const proxy = await Switchyard.start(proxyConfig(port, ['127.0.0.1/32']));
  try {
    resetRecorder();
    const v1 = encodeProxyV1({
      family: 'tcp4',
      sourceAddress: '203.0.113.7',
      sourcePort: 4000,
      destAddress: '127.0.0.1',
      destPort: port,
    });
    await exchange(port, Buffer.concat([v1, Buffer.from('payload-v1')]));
    assert.equal((await recorded).toString(), 'payload-v1');

    resetRecorder();
    const v2 = encodeProxyV2({
      command: 'proxy',
      family: 'tcp6',
      sourceAddress: '2001:db8::1',
      sourcePort: 5000,
      destAddress: '::1',
      destPort: port,
    });
    await exchange(port, Buffer.concat([v2, Buffer.from('payload-v2')]));
    assert.equal((await recorded).toString(), 'payload-v2');
    assert.equal(await proxy.metrics.value('switchyard_connections_total', { route: 'from-doc-net' }), 2);

    // Without a header the real peer address (127.0.0.1) is used: the other route.
    const direct = connect(port, '127.0.0.1');
    direct.on('error', () => {});
    direct.write('hello');
    await sleep(100);
    assert.equal(await proxy.metrics.value('switchyard_connections_total', { route: 'others' }), 1);
    direct.destroy();
  } finally {
    await proxy.close();
  }
});

test('PROXY header from an untrusted peer is refused, and a malformed one too', async () => {
  const port = await freePort();
  const logs = captureLogs();
  // Only 127.0.0.1 is trusted; the test connects from 127.0.0.2 (loopback, but another address).
  const proxy = await Switchyard.start(proxyConfig(port, ['127.0.0.1/32']), { logger: logs.logger });
  try {
    const v1 = encodeProxyV1({
      family: 'tcp4',
      sourceAddress: '203.0.113.7',
      sourcePort: 4000,
      destAddress: '127.0.0.1',
      destPort: port,
    });
    const untrusted = await exchange(port, Buffer.concat([v1, Buffer.from('sneaky')]), {
      localAddress: '127.0.0.2',
      end: false,
    });
    assert.equal(untrusted.data, '');
    const v2 = encodeProxyV2({
      command: 'proxy',
      family: 'tcp4',
      sourceAddress: '203.0.113.8',
      sourcePort: 1,
      destAddress: '127.0.0.1',
      destPort: port,
    });
    await exchange(port, Buffer.concat([v2, Buffer.from('sneaky')]), { localAddress: '127.0.0.2', end: false });
    assert.equal(
      await proxy.metrics.value('switchyard_rejected_connections_total', { reason: 'SY_LSN_UNTRUSTED_PROXY_HEADER' }),
      2,
    );
    assert.equal(logs.withCode('SY_LSN_UNTRUSTED_PROXY_HEADER').length, 2);
    const bad = await exchange(port, Buffer.from('PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\n'), { end: false });
    assert.equal(bad.data, '');
    assert.equal(
      await proxy.metrics.value('switchyard_rejected_connections_total', { reason: 'SY_LSN_BAD_PROXY_HEADER' }),
      1,
    );
    assert.equal(await proxy.metrics.value('switchyard_connections_total'), 0);
  } finally {
    await proxy.close();
  }
});

test('with no peer trusted, a PROXY line on a plain TCP port is payload, forwarded untouched', async () => {
  const port = await freePort();
  const proxy = await Switchyard.start({
    bind: '127.0.0.1',
    log: { level: 'silent' },
    routes: [
      { name: 'rec', match: { ports: port }, action: { type: 'forward', targets: [`127.0.0.1:${plain.port}`] } },
    ],
  });
  try {
    resetRecorder();
    const v1 = encodeProxyV1({
      family: 'tcp4',
      sourceAddress: '203.0.113.7',
      sourcePort: 4000,
      destAddress: '127.0.0.1',
      destPort: port,
    });
    const payload = Buffer.concat([v1, Buffer.from('data')]);
    await exchange(port, payload);
    assert.deepEqual(await recorded, payload);
    assert.equal(await proxy.metrics.value('switchyard_rejected_connections_total'), 0);
  } finally {
    await proxy.close();
  }
});

both('a PROXY header is refused on an SNI port even when no peer is trusted', async () => {
  const port = await freePort();
  const proxy = await Switchyard.start(sniConfig(port));
  try {
    const v1 = encodeProxyV1({
      family: 'tcp4',
      sourceAddress: '203.0.113.7',
      sourcePort: 4000,
      destAddress: '127.0.0.1',
      destPort: port,
    });
    const res = await exchange(port, v1, { end: false });
    assert.equal(res.data, '');
    assert.equal(
      await proxy.metrics.value('switchyard_rejected_connections_total', { reason: 'SY_LSN_UNTRUSTED_PROXY_HEADER' }),
      1,
    );
  } finally {
    await proxy.close();
  }
});
