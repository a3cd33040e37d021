/**
 * The HTTP engine when things go wrong, over real sockets: unreachable and silent upstreams,
 * upstreams that die mid-body or answer ambiguously, request smuggling attempts, size limits,
 * slowloris, pipelining, keep-alive timeouts, stale pooled connections, load balancing and the
 * pool's connection limit and queue.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConfigInput } from '../src/config/schema.ts';
import { Switchyard } from '../src/runtime/switchyard.ts';
import { parseAll, RawClient, type RawResponse, rawExchange, request } from './helpers/http.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { freePort, freePorts, startServer, type TestServer, waitFor } from './helpers/net.ts';

const baseline = handleSnapshot();

after(async () => {
  await assertNoLeaks(baseline);
});

/**
 * A node:http upstream answering `name:method url:body`. `/slow` answers after 150 ms; `/hold`
 * answers when `release()` is called. Counts requests and TCP connections.
 */
class NodeUpstream {
  readonly name: string;
  readonly server: Server;
  port: number;
  requests: number;
  connections: number;
  held: ServerResponse[];

  constructor(name: string, options: { keepAliveTimeout?: number } = {}) {
    this.name = name;
    this.server = createServer((req, res) => this.handle(req, res));
    if (options.keepAliveTimeout !== undefined) {
      // Node 24 adds keepAliveTimeoutBuffer (1 s) to the socket timeout; make the timeout exact.
      Object.assign(this.server, { keepAliveTimeout: options.keepAliveTimeout, keepAliveTimeoutBuffer: 0 });
    }
    this.server.on('connection', () => this.connections++);
    this.port = 0;
    this.requests = 0;
    this.connections = 0;
    this.held = [];
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

  handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = `${this.name}:${req.method} ${req.url}:${Buffer.concat(chunks).toString()}`;
      if (req.url?.startsWith('/hold')) {
        res.setHeader('x-text', text);
        this.held.push(res);
      } else if (req.url?.startsWith('/slow')) setTimeout(() => res.end(text), 150);
      else res.end(text);
    });
  }

  /** Answers every held request. */
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

/** Starts a proxy with one HTTP forward route on a fresh port. */
async function startProxy(
  targets: string[],
  action: Record<string, unknown> = {},
  http: Record<string, unknown> = {},
): Promise<{ proxy: Switchyard; port: number }> {
  const port = await freePort();
  const config: ConfigInput = {
    bind: '127.0.0.1',
    log: { level: 'silent' },
    http,
    routes: [{ name: 'r', match: { ports: port }, action: { type: 'forward', mode: 'http', targets, ...action } }],
  };
  return { proxy: await Switchyard.start(config), port };
}

/** A raw upstream that answers each connection's first bytes with `reply(socket)`. */
function rawUpstream(reply: (socket: Socket, request: string) => void): Promise<TestServer> {
  return startServer((socket) => {
    socket.once('data', (chunk: Buffer) => reply(socket, chunk.toString('latin1')));
  });
}

const GET = 'GET / HTTP/1.1\r\nhost: x\r\n\r\n';

/** Waits until no target of the proxy counts a request in flight (least-connections relies on it). */
async function assertSettled(proxy: Switchyard): Promise<void> {
  const busy = (): string[] =>
    proxy.ctx.table.routes.flatMap((r) => r.targets.filter((t) => t.active !== 0).map((t) => `${t.key}=${t.active}`));
  try {
    await waitFor(() => busy().length === 0, 2000);
  } catch {
    assert.fail(`targets still counted as busy: ${busy().join(', ')}`);
  }
}

// ---- unreachable, silent and dying upstreams ---------------------------------------------------

test('connection refused: 502, counted per target', async () => {
  const [dead] = await freePorts(1);
  const { proxy, port } = await startProxy([`127.0.0.1:${dead}`]);
  try {
    const res = await request(port);
    assert.equal(res.status, 502);
    assert.equal(res.headers['x-switchyard-error'], 'SY_UPS_UNAVAILABLE');
    assert.match(res.body.toString(), /^502 Bad Gateway/);
    assert.equal(
      await proxy.metrics.value('switchyard_upstream_errors_total', {
        target: `127.0.0.1:${dead}`,
        reason: 'SY_UPS_CONNECT',
      }),
      1,
    );
    assert.equal(await proxy.metrics.value('switchyard_http_responses_total', { route: 'r', status: '502' }), 1);
    await assertSettled(proxy);
  } finally {
    await proxy.close();
  }
});

test('every target down: 502 after trying each once', async () => {
  const dead = await freePorts(3);
  const { proxy, port } = await startProxy(dead.map((p) => `127.0.0.1:${p}`));
  try {
    const client = await new RawClient(port).connected();
    client.write(GET);
    const res = await client.read();
    assert.equal(res.status, 502);
    // A gateway error leaves the client connection usable.
    client.write(GET);
    assert.equal((await client.read()).status, 502);
    client.close();
    for (const p of dead) {
      assert.equal(await proxy.metrics.value('switchyard_upstream_errors_total', { target: `127.0.0.1:${p}` }), 2);
    }
    await assertSettled(proxy);
  } finally {
    await proxy.close();
  }
});

test('failover: a refused first target is skipped for the second', async () => {
  const live = await new NodeUpstream('B').listen();
  const [dead] = await freePorts(1);
  const { proxy, port } = await startProxy([`127.0.0.1:${dead}`, live.target], { loadBalancing: 'failover' });
  try {
    for (let i = 0; i < 3; i++) {
      const res = await request(port, { path: `/f${i}` });
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), `B:GET /f${i}:`);
    }
    assert.equal(await proxy.metrics.value('switchyard_upstream_errors_total', { target: `127.0.0.1:${dead}` }), 3);
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await live.close();
  }
});

test('an upstream that accepts but never answers: 504 after responseTimeoutMs', async () => {
  // Reads (and ignores) the request, so it notices when the proxy hangs up.
  const silent = await startServer((socket) => socket.resume());
  const { proxy, port } = await startProxy([`127.0.0.1:${silent.port}`], { responseTimeoutMs: 500 });
  try {
    const started = Date.now();
    const res = await request(port);
    const took = Date.now() - started;
    assert.equal(res.status, 504);
    assert.equal(res.headers['x-switchyard-error'], 'SY_UPS_RESPONSE_TIMEOUT');
    assert.ok(took >= 450 && took < 2000, `504 after ${took} ms`);
    // The silent connection is not pooled for the next request.
    await waitFor(() => silent.sockets.size === 0);
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await silent.close();
  }
});

test('a slow upload longer than responseTimeoutMs is not cut: the timeout starts after the body', async () => {
  const upstream = await new NodeUpstream('U').listen();
  const { proxy, port } = await startProxy([upstream.target], { responseTimeoutMs: 300 });
  const client = await new RawClient(port).connected();
  try {
    client.write('POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n');
    for (let i = 0; i < 10 && !client.ended; i++) {
      await sleep(100);
      client.write(String(i));
    }
    const res = await client.read('POST');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'U:POST /up:0123456789');
    await assertSettled(proxy);
  } finally {
    client.close();
    await proxy.close();
    await upstream.close();
  }
});

test('a client that stalls in the middle of its body gets 408, and the upstream is not blamed', async () => {
  const upstream = await new NodeUpstream('U').listen();
  const { proxy, port } = await startProxy([upstream.target], { responseTimeoutMs: 300, idleTimeoutMs: 500 });
  const client = await new RawClient(port).connected();
  try {
    client.write('POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc');
    const res = await client.read('POST');
    assert.equal(
      await proxy.metrics.value('switchyard_upstream_errors_total', { target: upstream.target }),
      0,
      'a healthy upstream was counted as failing',
    );
    assert.equal(res.status, 408, `got ${res.status} ${res.headers['x-switchyard-error']}`);
    await client.waitEnd();
  } finally {
    client.close();
    await proxy.close();
    await upstream.close();
  }
});

test('upstream closes in the middle of a Content-Length body: the client connection is cut', async () => {
  const dying = await rawUpstream((socket) => {
    socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n${'x'.repeat(1000)}`);
    setTimeout(() => socket.destroy(), 50);
  });
  const { proxy, port } = await startProxy([`127.0.0.1:${dying.port}`]);
  try {
    const { data, timedOut } = await rawExchange(port, GET, { end: false });
    assert.equal(timedOut, false, 'the proxy closed the client connection');
    const text = data.toString();
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /content-length: 100000/i);
    const body = text.slice(text.indexOf('\r\n\r\n') + 4);
    // Exactly what the upstream sent: no padding, no error response glued on.
    assert.equal(body, 'x'.repeat(1000));
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await dying.close();
  }
});

test('upstream closes in the middle of a chunked body: no terminating chunk is invented', async () => {
  const dying = await rawUpstream((socket) => {
    socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n');
    setTimeout(() => socket.destroy(), 50);
  });
  const { proxy, port } = await startProxy([`127.0.0.1:${dying.port}`]);
  try {
    const { data, timedOut } = await rawExchange(port, GET, { end: false });
    assert.equal(timedOut, false);
    const text = data.toString();
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.ok(text.endsWith('\r\n\r\n5\r\nhello\r\n'), JSON.stringify(text));
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await dying.close();
  }
});

test('upstream resets in the middle of a close-delimited body: the client sees a reset, not a clean end', async () => {
  const dying = await rawUpstream((socket) => {
    socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\npartial');
    setTimeout(() => socket.resetAndDestroy(), 50);
  });
  const { proxy, port } = await startProxy([`127.0.0.1:${dying.port}`]);
  try {
    const { data, error } = await rawExchange(port, GET, { end: false });
    assert.ok(data.toString().endsWith('\r\n\r\npartial'));
    // Without a length, only a reset tells the client the body is incomplete (RFC 9112 §8).
    assert.equal((error as NodeJS.ErrnoException | null)?.code, 'ECONNRESET');
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await dying.close();
  }
});

test('a close-delimited response that ends cleanly is relayed whole, then the connection closes', async () => {
  const old = await rawUpstream((socket) => {
    socket.end('HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nthe whole body');
  });
  const { proxy, port } = await startProxy([`127.0.0.1:${old.port}`]);
  try {
    const { data, error } = await rawExchange(port, GET, { end: false });
    assert.equal(error, null);
    const [res] = parseAll(data);
    assert.equal(res.status, 200);
    assert.equal(res.headers.connection, 'close');
    assert.equal(res.body.toString(), 'the whole body');
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await old.close();
  }
});

test('ambiguous or malformed upstream responses become 502 and are never relayed', async () => {
  const responses = [
    'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nSECRET\r\n0\r\n\r\n',
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n5\r\nSECRET\r\n0\r\n\r\n',
    'HTTP/1.1 200 OK\r\ncontent-length: 6\r\ncontent-length: 7\r\n\r\nSECRET!',
    'HTTP/1.1 200 OK\r\ncontent-length: 6, 7\r\n\r\nSECRET!',
    'HTTP/1.1 200 OK\r\ncontent-length: -6\r\n\r\nSECRET',
    'HTTP/1.1 200 OK\r\nx-folded: a\r\n b\r\ncontent-length: 6\r\n\r\nSECRET',
    'HTTP/1.1 200 OK\ncontent-length: 6\n\nSECRET',
    'HTTP/1.1 2000 OK\r\ncontent-length: 6\r\n\r\nSECRET',
    'HTTP/1.1 200 OK\r\nbad header: x\r\ncontent-length: 6\r\n\r\nSECRET',
    'SECRET / HTTP/1.1\r\n\r\n',
  ];
  let index = 0;
  const bad = await rawUpstream((socket) => {
    socket.write(responses[index]);
  });
  const { proxy, port } = await startProxy([`127.0.0.1:${bad.port}`]);
  try {
    for (; index < responses.length; index++) {
      const { data } = await rawExchange(port, GET);
      const text = data.toString();
      assert.match(text, /^HTTP\/1\.1 502 /, JSON.stringify(responses[index]));
      assert.ok(!text.includes('SECRET'), `relayed: ${JSON.stringify(text)}`);
    }
    const counted = await proxy.metrics.value('switchyard_upstream_errors_total', { target: `127.0.0.1:${bad.port}` });
    assert.equal(counted, responses.length);
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await bad.close();
  }
});

/** An upstream that answers 101 to a request that asked for no upgrade. */
function unexpectedUpgrade(): Promise<TestServer> {
  return rawUpstream((socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\nSECRET');
  });
}

test('a 101 to a request that asked for no upgrade is a 502, and no tunnel is opened', async () => {
  const bad = await unexpectedUpgrade();
  const { proxy, port } = await startProxy([`127.0.0.1:${bad.port}`]);
  try {
    // Pipelined: the next request on the connection must still be read as HTTP, not tunnelled.
    const client = await new RawClient(port).connected();
    client.write(`${GET}GET /next HTTP/1.1\r\nhost: x\r\n\r\n`);
    for (let i = 0; i < 2; i++) {
      const res = await client.read();
      assert.equal(res.status, 502);
      assert.equal(res.headers['x-switchyard-error'], 'SY_UPS_UNEXPECTED_UPGRADE');
      assert.ok(!res.body.toString().includes('SECRET'));
    }
    await sleep(50);
    assert.ok(!client.buf.toString().includes('SECRET'));
    client.close();
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await bad.close();
  }
});

test('an unexpected 101 is counted as an upstream error like every other bad response', async () => {
  const bad = await unexpectedUpgrade();
  const { proxy, port } = await startProxy([`127.0.0.1:${bad.port}`]);
  try {
    await rawExchange(port, GET);
    assert.equal(
      await proxy.metrics.value('switchyard_upstream_errors_total', {
        target: `127.0.0.1:${bad.port}`,
        reason: 'SY_UPS_UNEXPECTED_UPGRADE',
      }),
      1,
    );
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await bad.close();
  }
});

test('a malformed chunked upstream body after the head: the client connection is cut', async () => {
  const bad = await rawUpstream((socket) => {
    socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n');
    setTimeout(() => socket.write('zz\r\nSECRET\r\n0\r\n\r\n'), 50);
  });
  const { proxy, port } = await startProxy([`127.0.0.1:${bad.port}`]);
  try {
    const { data, timedOut } = await rawExchange(port, GET, { end: false });
    assert.equal(timedOut, false);
    const text = data.toString();
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.ok(!text.includes('SECRET'), JSON.stringify(text));
    assert.ok(!text.endsWith('0\r\n\r\n'), 'no clean end of the chunked body');
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await bad.close();
  }
});

test('a malformed first chunk in the same read as the head: a clean 502, nothing relayed', async () => {
  const bad = await rawUpstream((socket) => {
    socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nSECRET\r\n0\r\n\r\n');
  });
  const { proxy, port } = await startProxy([`127.0.0.1:${bad.port}`]);
  try {
    const { data, timedOut } = await rawExchange(port, GET, { end: false });
    assert.equal(timedOut, false);
    const text = data.toString();
    assert.match(text, /^HTTP\/1\.1 502 /, JSON.stringify(text));
    assert.ok(!text.includes('SECRET'), JSON.stringify(text));
    assert.equal(await proxy.metrics.value('switchyard_http_responses_total', { status: '200' }), 0);
    assert.equal(await proxy.metrics.value('switchyard_upstream_errors_total', { reason: 'SY_UPS_BAD_CHUNK' }), 1);
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await bad.close();
  }
});

// ---- bad requests ---------------------------------------------------------------------------------

/** A raw upstream that counts every byte it receives and answers each read with a small 200. */
async function countingUpstream(): Promise<TestServer & { bytes: () => number }> {
  let bytes = 0;
  const server = await startServer((socket) => {
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
  });
  return Object.assign(server, { bytes: () => bytes });
}

test('request smuggling attempts get 400, close, and never reach the upstream', async () => {
  const sink = await countingUpstream();
  const { proxy, port } = await startProxy([`127.0.0.1:${sink.port}`]);
  const cases: Array<[string, string]> = [
    ['CL.TE', 'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 6\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nG'],
    ['TE.CL', 'POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 6\r\n\r\n0\r\n\r\nG'],
    ['TE xchunked', 'POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: xchunked\r\n\r\n0\r\n\r\n'],
    ['TE chunked not last', 'POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked, identity\r\n\r\n0\r\n\r\n'],
    [
      'TE twice',
      'POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n',
    ],
    ['TE space before colon', 'POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding : chunked\r\n\r\n0\r\n\r\n'],
    ['TE obs-fold', 'POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding:\r\n chunked\r\n\r\n0\r\n\r\n'],
    ['obs-fold', 'GET / HTTP/1.1\r\nhost: x\r\nx-a: b\r\n c\r\n\r\n'],
    ['two CL', 'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab'],
    ['same CL twice', 'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\nab'],
    ['CL list', 'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2, 2\r\n\r\nab'],
    ['CL sign', 'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: +2\r\n\r\nab'],
    ['CL hex', 'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0x2\r\n\r\nab'],
    ['bare LF', 'GET / HTTP/1.1\nhost: x\n\n'],
    ['bare CR', 'GET / HTTP/1.1\r\nhost: x\rx-a: b\r\n\r\n'],
    ['NUL in value', 'GET / HTTP/1.1\r\nhost: x\r\nx-a: b\0c\r\n\r\n'],
    ['bad token', 'GET / HTTP/1.1\r\nhost: x\r\nx(a): b\r\n\r\n'],
    ['space in request line', 'GET  / HTTP/1.1\r\nhost: x\r\n\r\n'],
    ['no host', 'GET / HTTP/1.1\r\n\r\n'],
    ['two hosts', 'GET / HTTP/1.1\r\nhost: x\r\nhost: y\r\n\r\n'],
    ['space before first field', 'GET / HTTP/1.1\r\n host: x\r\n\r\n'],
  ];
  try {
    for (const [name, bytes] of cases) {
      const { data, timedOut } = await rawExchange(port, bytes, { end: false });
      assert.equal(timedOut, false, `${name}: connection closed by the proxy`);
      const responses = parseAll(data);
      assert.equal(responses.length, 1, `${name}: one response`);
      assert.equal(responses[0].status, 400, `${name}: ${data.toString().split('\r\n')[0]}`);
      assert.equal(responses[0].headers.connection, 'close', name);
      assert.equal(sink.bytes(), 0, `${name}: reached the upstream`);
    }
    // The sink does count: a valid request reaches it.
    assert.equal((await request(port)).status, 200);
    assert.ok(sink.bytes() > 0);
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await sink.close();
  }
});

test('a malformed chunk in a request body: 400, and the upstream never gets a complete request', async () => {
  const upstream = await new NodeUpstream('U').listen();
  const { proxy, port } = await startProxy([upstream.target]);
  try {
    for (const body of ['5\r\nhello\r\nzz\r\n', '5\r\nhelloXX\r\n', '5;a=\0\r\nhello\r\n0\r\n\r\n', '-1\r\n']) {
      const { data } = await rawExchange(
        port,
        `POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n${body}`,
        { end: false },
      );
      assert.match(data.toString(), /^HTTP\/1\.1 400 /, JSON.stringify(body));
    }
    await sleep(50);
    assert.equal(upstream.held.length, 0);
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test('414 past http.maxUriBytes, 431 past maxHeaderBytes or maxHeaders', async () => {
  const sink = await countingUpstream();
  const { proxy, port } = await startProxy(
    [`127.0.0.1:${sink.port}`],
    {},
    { maxUriBytes: 100, maxHeaderBytes: 1024, maxHeaders: 5 },
  );
  try {
    const longUri = await rawExchange(port, `GET /${'a'.repeat(200)} HTTP/1.1\r\nhost: x\r\n\r\n`, { end: false });
    assert.match(longUri.data.toString(), /^HTTP\/1\.1 414 /);
    const bigHead = await rawExchange(port, `GET / HTTP/1.1\r\nhost: x\r\nx-big: ${'b'.repeat(2000)}\r\n\r\n`, {
      end: false,
    });
    assert.match(bigHead.data.toString(), /^HTTP\/1\.1 431 /);
    // An oversized head is refused before it is complete.
    const endless = await rawExchange(port, `GET / HTTP/1.1\r\nhost: x\r\nx-big: ${'b'.repeat(5000)}`, { end: false });
    assert.match(endless.data.toString(), /^HTTP\/1\.1 431 /);
    const fields = Array.from({ length: 6 }, (_, i) => `x-f${i}: v\r\n`).join('');
    const many = await rawExchange(port, `GET / HTTP/1.1\r\nhost: x\r\n${fields}\r\n`, { end: false });
    assert.match(many.data.toString(), /^HTTP\/1\.1 431 /);
    assert.equal(sink.bytes(), 0);
    // Just inside every limit passes.
    const ok = await rawExchange(
      port,
      `GET /${'a'.repeat(99)} HTTP/1.1\r\nhost: x\r\nx-1: 1\r\nx-2: 2\r\nx-3: 3\r\nconnection: close\r\n\r\n`,
      { end: false },
    );
    assert.match(ok.data.toString(), /^HTTP\/1\.1 200 /);
    assert.equal(await proxy.metrics.value('switchyard_http_responses_total', { status: '431' }), 3);
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await sink.close();
  }
});

test('slowloris: a head trickled past http.headTimeoutMs gets 408 and a close', async () => {
  const sink = await countingUpstream();
  const { proxy, port } = await startProxy([`127.0.0.1:${sink.port}`], {}, { headTimeoutMs: 500 });
  const client = await new RawClient(port).connected();
  try {
    const started = Date.now();
    client.write('GET / HTTP/1.1\r\n');
    // One field every 100 ms: each byte is "progress", but the whole head must arrive in time.
    for (let i = 0; i < 30 && !client.ended; i++) {
      await sleep(100);
      if (!client.socket.destroyed) client.write(`x-${i}: ${i}\r\n`);
    }
    const res = await client.read();
    const took = Date.now() - started;
    assert.equal(res.status, 408);
    assert.equal(res.headers.connection, 'close');
    assert.ok(took >= 450 && took < 2000, `408 after ${took} ms`);
    await client.waitEnd();
    assert.equal(sink.bytes(), 0);
    assert.equal(
      await proxy.metrics.value('switchyard_rejected_connections_total', { reason: 'SY_HTTP_HEAD_TIMEOUT' }),
      1,
    );
    await assertSettled(proxy);
  } finally {
    client.close();
    await proxy.close();
    await sink.close();
  }
});

// ---- connection management ----------------------------------------------------------------------

test('pipelined requests in one write are answered in order', async () => {
  const upstream = await new NodeUpstream('P').listen();
  const { proxy, port } = await startProxy([upstream.target]);
  const client = await new RawClient(port).connected();
  try {
    client.write(
      'GET /slow HTTP/1.1\r\nhost: x\r\n\r\n' +
        'POST /post HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello' +
        'POST /chunked HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' +
        'HEAD /head HTTP/1.1\r\nhost: x\r\n\r\n' +
        'GET /last HTTP/1.1\r\nhost: x\r\n\r\n',
    );
    assert.equal((await client.read()).body.toString(), 'P:GET /slow:');
    assert.equal((await client.read()).body.toString(), 'P:POST /post:hello');
    assert.equal((await client.read()).body.toString(), 'P:POST /chunked:abc');
    const head = await client.read('HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal((await client.read()).body.toString(), 'P:GET /last:');
    assert.equal(client.buf.length, 0);
    await assertSettled(proxy);
  } finally {
    client.close();
    await proxy.close();
    await upstream.close();
  }
});

test('idle client connections are closed after http.keepAliveTimeoutMs', async () => {
  const upstream = await new NodeUpstream('K').listen();
  const { proxy, port } = await startProxy([upstream.target], {}, { keepAliveTimeoutMs: 500 });
  try {
    const client = await new RawClient(port).connected();
    client.write(GET);
    assert.equal((await client.read()).status, 200);
    const idleFrom = Date.now();
    await client.waitEnd(3000);
    const idle = Date.now() - idleFrom;
    assert.ok(idle >= 450 && idle < 2000, `closed after ${idle} ms idle`);
    client.close();
    // A connection that never sends a byte is closed too.
    const silent = await new RawClient(port).connected();
    await silent.waitEnd(3000);
    silent.close();
    await waitFor(() => proxy.connectionCount === 0);
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test('Connection: close from the client, and HTTP/1.0 without keep-alive, close after the response', async () => {
  const upstream = await new NodeUpstream('C').listen();
  const { proxy, port } = await startProxy([upstream.target]);
  try {
    for (const req of ['GET /a HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n', 'GET /b HTTP/1.0\r\n\r\n']) {
      const client = await new RawClient(port).connected();
      client.write(req);
      const res = await client.read();
      assert.equal(res.status, 200);
      assert.match(res.body.toString(), /^C:GET \/[ab]:$/);
      await client.waitEnd();
      client.close();
    }
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test('hop-by-hop fields and those named in Connection are not forwarded', async () => {
  let seen = '';
  const upstream = await rawUpstream((socket, req) => {
    seen = req;
    socket.write(
      'HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: x-resp-hop\r\nx-resp-hop: 1\r\n' +
        'keep-alive: timeout=5\r\nx-kept: 1\r\n\r\nok',
    );
  });
  const { proxy, port } = await startProxy([`127.0.0.1:${upstream.port}`]);
  try {
    const client = await new RawClient(port).connected();
    client.write(
      'GET / HTTP/1.1\r\nhost: x\r\nconnection: keep-alive, x-hop\r\nx-hop: secret\r\nkeep-alive: 300\r\n' +
        'te: trailers\r\nproxy-authorization: Basic Zm9vOmJhcg==\r\nx-end: 1\r\n\r\n',
    );
    const res = await client.read();
    client.close();
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-resp-hop'], undefined);
    assert.equal(res.headers['keep-alive'], undefined);
    assert.equal(res.headers['x-kept'], '1');
    const lower = seen.toLowerCase();
    for (const name of ['x-hop:', 'keep-alive:', 'te:', 'proxy-authorization:']) {
      assert.ok(!lower.includes(`\r\n${name}`), `${name} forwarded: ${JSON.stringify(seen)}`);
    }
    assert.ok(lower.includes('\r\nx-end: 1\r\n'));
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

/**
 * Sends `count` GETs on one client connection through a proxy to an upstream that answers the
 * n-th request it reads with `answer(socket, n)`, checks each response, then closes everything.
 */
async function exchangeRepeatedly(
  count: number,
  answer: (socket: Socket, n: number) => void,
  check: (res: RawResponse) => void,
): Promise<void> {
  let n = 0;
  const upstream = await startServer((socket) => {
    socket.on('data', () => answer(socket, n++));
  });
  const { proxy, port } = await startProxy([`127.0.0.1:${upstream.port}`]);
  try {
    const client = await new RawClient(port).connected();
    for (let i = 0; i < count; i++) {
      client.write(GET);
      check(await client.read());
    }
    client.close();
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await upstream.close();
  }
}

test('response heads come out whole whether the first field line is kept or dropped', async () => {
  // The status line is copied together with the first kept run when they are adjacent, and on its
  // own when the first field is dropped: both must give the same well-formed head.
  const heads = [
    'HTTP/1.1 201 Made\r\nconnection: keep-alive\r\nx-a: 1\r\ncontent-length: 2\r\n\r\nok',
    'HTTP/1.1 201 Made\r\nx-a: 1\r\nkeep-alive: timeout=5\r\ncontent-length: 2\r\n\r\nok',
  ];
  await exchangeRepeatedly(
    heads.length,
    (socket, n) => socket.write(heads[n % heads.length]),
    (res) => {
      assert.equal(res.status, 201);
      assert.equal(res.headers['x-a'], '1');
      assert.equal(res.headers['content-length'], '2');
      assert.equal(res.headers['keep-alive'], undefined);
      assert.ok(res.headers['x-request-id']);
      assert.equal(res.body.toString(), 'ok');
    },
  );
});

test('a small response whose body arrives in two reads is relayed whole, and so is the next one', async () => {
  // Whole small responses are taken straight from the shared read buffer (fast-read.ts, kOnShared);
  // one whose body is not all in the first read must take the copying path.
  await exchangeRepeatedly(
    2,
    (socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234');
      setTimeout(() => socket.write('56789'), 30);
    },
    (res) => {
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), '0123456789');
    },
  );
});

test('Connection naming Content-Length never strips the framing: nothing smuggled, no response desync', async () => {
  // The engine frames both messages by Content-Length; dropping it because Connection names it
  // would send the body on unframed (a request smuggled upstream, a response read into the next).
  const seen: string[] = [];
  const upstream = createServer({ keepAliveTimeout: 5000 }, (req: IncomingMessage, res: ServerResponse) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${Buffer.concat(parts).length}`);
      // Every response names content-length as a connection option too.
      res.writeHead(200, { 'content-length': '5', connection: 'content-length' });
      res.end('hello');
    });
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const { proxy, port } = await startProxy([`127.0.0.1:${(upstream.address() as AddressInfo).port}`], {
    pool: { maxConnections: 1 },
  });
  try {
    const smuggled = 'GET /smuggled HTTP/1.1\r\nhost: y\r\n\r\n';
    const res = await rawExchange(
      port,
      `POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: ${smuggled.length}\r\nconnection: content-length\r\n\r\n${smuggled}` +
        'GET /b HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n',
      // No FIN from the client: the proxy treats one as an abort, as nginx does.
      { end: false },
    );
    const responses = parseAll(res.data, ['POST', 'GET']);
    assert.equal(responses.length, 2);
    for (const r of responses) {
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], '5');
      assert.equal(r.body.toString(), 'hello');
    }
    assert.deepEqual(seen, [`POST /a ${smuggled.length}`, 'GET /b 0']);
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    upstream.closeAllConnections();
    upstream.close();
  }
});

test('a request head is forwarded as sent, less the fields the proxy owns, plus its own', async () => {
  // Kept field lines go upstream as slices of the client's head (message-head.ts): check the exact
  // bytes, with dropped fields between kept ones, names in any case, OWS as sent, X-Forwarded-For
  // from an untrusted peer replaced, the client's request ID passed on, and route edits applied.
  let seen = '';
  const upstream = await rawUpstream((socket, req) => {
    seen = req;
    socket.write('HTTP/1.1 204 No Content\r\n\r\n');
  });
  const { proxy, port } = await startProxy([`127.0.0.1:${upstream.port}`], {
    requestHeaders: { remove: ['x-removed'], set: { 'x-set': 'v' } },
  });
  try {
    const client = await new RawClient(port).connected();
    client.write(
      'GET /p?q=1 HTTP/1.1\r\nHost: x.test\r\nUser-Agent:  ua/1 \r\nCONNECTION: keep-alive, X-Hop\r\n' +
        'X-Hop: secret\r\nAccept: */*\r\nX-Forwarded-For: 10.9.9.9\r\nX-Request-Id: rid-9\r\nX-Removed: 1\r\n' +
        'te: trailers\r\nX-Last: 1\r\n\r\n',
    );
    assert.equal((await client.read()).status, 204);
    client.close();
    assert.equal(
      seen,
      'GET /p?q=1 HTTP/1.1\r\nUser-Agent:  ua/1 \r\nAccept: */*\r\nX-Last: 1\r\nhost: x.test\r\n' +
        'x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: x.test\r\n' +
        'x-request-id: rid-9\r\nx-set: v\r\n\r\n',
    );
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test('a response head is relayed byte for byte, less the fields the proxy owns', async () => {
  // The engine copies kept field lines as bytes (message-head.ts): check the exact head, with
  // dropped fields between kept ones, names in any case, OWS as sent, the upstream's own request
  // ID, a route edit that removes and one that sets, and a 1.0 status line without a reason.
  const replies = [
    'HTTP/1.1 200 Fine\r\nServer: raw\r\nCONNECTION: X-Resp-Hop, keep-alive\r\nX-Resp-Hop: 1\r\n' +
      'x-kept-a:  spaced value  \r\nKeep-Alive: timeout=5\r\nX-Request-Id: up-1\r\nX-Removed: 1\r\n' +
      'Content-Length: 2\r\nProxy-Connection: keep-alive\r\n\r\nok',
    'HTTP/1.0 200\r\nContent-Length: 2\r\n\r\nok',
  ];
  let n = 0;
  // One reply per request, also when the proxy reuses the connection for the second one.
  const upstream = await startServer((socket) => {
    socket.on('data', () => socket.write(replies[n++]));
  });
  const { proxy, port } = await startProxy([`127.0.0.1:${upstream.port}`], {
    responseHeaders: { remove: ['x-removed'], set: { 'x-set': 'v' } },
  });
  try {
    const first = await rawExchange(port, 'GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    assert.equal(
      first.data.toString('latin1'),
      'HTTP/1.1 200 Fine\r\nServer: raw\r\nx-kept-a:  spaced value  \r\nX-Request-Id: up-1\r\n' +
        'Content-Length: 2\r\nx-set: v\r\nconnection: close\r\n\r\nok',
    );
    const second = await rawExchange(
      port,
      'GET / HTTP/1.1\r\nhost: x\r\nx-request-id: rid-7\r\nconnection: close\r\n\r\n',
    );
    assert.equal(
      second.data.toString('latin1'),
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nx-request-id: rid-7\r\nx-set: v\r\nconnection: close\r\n\r\nok',
    );
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test('a stale pooled connection is retried for an idempotent request, not for a POST', async () => {
  let connections = 0;
  // Answers the first request of each connection and keeps it alive; the second request on a
  // connection finds it closed, as if the upstream's idle timer fired just as it was sent.
  const stale = await startServer((socket) => {
    connections++;
    let served = 0;
    socket.on('data', () => {
      if (served++ === 0) socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok`);
      else socket.destroy();
    });
  });
  const { proxy, port } = await startProxy([`127.0.0.1:${stale.port}`]);
  try {
    assert.equal((await request(port, { path: '/1' })).status, 200);
    assert.equal(connections, 1);
    const retried = await request(port, { path: '/2' });
    assert.equal(retried.status, 200);
    assert.equal(retried.body.toString(), 'ok');
    assert.equal(connections, 2);
    // A POST is not replayed: the upstream may have acted on it.
    const post = await request(port, { method: 'POST', path: '/3', body: 'data' });
    assert.equal(post.status, 502);
    assert.equal(connections, 2);
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await stale.close();
  }
});

test('after a stale pooled connection, the retry uses a fresh connection, not another pooled one', async () => {
  let connections = 0;
  // Answers the first request of each connection (after 100 ms, so concurrent requests open
  // several connections); a second request finds the connection closed, as after an upstream restart.
  const stale = await startServer((socket) => {
    connections++;
    let served = 0;
    socket.on('data', () => {
      if (served++ === 0) setTimeout(() => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'), 100);
      else socket.destroy();
    });
  });
  const { proxy, port } = await startProxy([`127.0.0.1:${stale.port}`]);
  try {
    const first = await Promise.all([request(port), request(port), request(port)]);
    assert.deepEqual(
      first.map((r) => r.status),
      [200, 200, 200],
    );
    assert.equal(connections, 3);
    const res = await request(port, { path: '/after-restart' });
    assert.equal(res.status, 200, `got ${res.status} ${res.headers['x-switchyard-error']}`);
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await stale.close();
  }
});

test('an upstream with a short keep-alive timeout: every request succeeds', async () => {
  const upstream = await new NodeUpstream('S', { keepAliveTimeout: 50 }).listen();
  const { proxy, port } = await startProxy([upstream.target]);
  try {
    for (let i = 0; i < 20; i++) {
      const res = await request(port, { path: `/${i}` });
      assert.equal(res.status, 200, `request ${i}`);
      await sleep(40 + (i % 5) * 5);
    }
    assert.ok(upstream.connections > 1, 'the upstream did close idle connections');
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

// ---- load balancing and the pool --------------------------------------------------------------

test('round-robin alternates between targets', async () => {
  const a = await new NodeUpstream('A').listen();
  const b = await new NodeUpstream('B').listen();
  const { proxy, port } = await startProxy([a.target, b.target], { loadBalancing: 'round-robin' });
  try {
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push((await request(port)).body.toString()[0]);
    assert.deepEqual(seen, ['A', 'B', 'A', 'B', 'A', 'B']);
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await a.close();
    await b.close();
  }
});

test('least-connections avoids the target busy with a long request', async () => {
  const a = await new NodeUpstream('A').listen();
  const b = await new NodeUpstream('B').listen();
  const { proxy, port } = await startProxy([a.target, b.target], { loadBalancing: 'least-connections' });
  try {
    const held = request(port, { path: '/hold' });
    await waitFor(() => a.held.length + b.held.length === 1);
    const busy = a.held.length === 1 ? 'A' : 'B';
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push((await request(port)).body.toString()[0]);
    assert.deepEqual(
      seen,
      Array.from({ length: 6 }, () => (busy === 'A' ? 'B' : 'A')),
    );
    a.release();
    b.release();
    assert.equal((await held).status, 200);
    // Once both are idle again, they share the load.
    const after: string[] = [];
    for (let i = 0; i < 4; i++) after.push((await request(port)).body.toString()[0]);
    assert.deepEqual(new Set(after), new Set(['A', 'B']));
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await a.close();
    await b.close();
  }
});

test('pool maxConnections 1 with no queue: a concurrent request gets 503', async () => {
  const upstream = await new NodeUpstream('Q').listen();
  const { proxy, port } = await startProxy([upstream.target], { pool: { maxConnections: 1, queueSize: 0 } });
  try {
    const first = request(port, { path: '/hold' });
    await waitFor(() => upstream.held.length === 1);
    const second = await request(port, { path: '/second' });
    assert.equal(second.status, 503);
    assert.equal(second.headers['x-switchyard-error'], 'SY_UPS_POOL_FULL');
    upstream.release();
    assert.equal((await first).status, 200);
    assert.equal((await request(port, { path: '/third' })).body.toString(), 'Q:GET /third:');
    assert.equal(upstream.connections, 1);
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test('pool queue: a waiter is served when the connection frees up, or gets 503 after queueTimeoutMs', async () => {
  const upstream = await new NodeUpstream('Q').listen();
  const { proxy, port } = await startProxy([upstream.target], {
    pool: { maxConnections: 1, queueSize: 1, queueTimeoutMs: 400 },
  });
  try {
    const first = request(port, { path: '/hold' });
    await waitFor(() => upstream.held.length === 1);
    const started = Date.now();
    const timedOut = await request(port, { path: '/waits-too-long' });
    const waited = Date.now() - started;
    assert.equal(timedOut.status, 503);
    assert.equal(timedOut.headers['x-switchyard-error'], 'SY_UPS_POOL_TIMEOUT');
    assert.ok(waited >= 350 && waited < 2000, `503 after ${waited} ms`);
    const queued = request(port, { path: '/queued' });
    await sleep(100);
    upstream.release();
    assert.equal((await first).status, 200);
    assert.equal((await queued).body.toString(), 'Q:GET /queued:');
    assert.equal(upstream.connections, 1);
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test('a queued client that disconnects frees its queue slot', async () => {
  const upstream = await new NodeUpstream('Q').listen();
  const { proxy, port } = await startProxy([upstream.target], {
    pool: { maxConnections: 1, queueSize: 1, queueTimeoutMs: 5000 },
  });
  try {
    const first = request(port, { path: '/hold' });
    await waitFor(() => upstream.held.length === 1);
    const leaver = await new RawClient(port).connected();
    leaver.write('GET /leaver HTTP/1.1\r\nhost: x\r\n\r\n');
    await sleep(50);
    leaver.close();
    await sleep(50);
    const next = request(port, { path: '/next' });
    await sleep(50);
    upstream.release();
    assert.equal((await first).status, 200);
    const res = await next;
    assert.equal(res.status, 200, `got ${res.status} ${res.headers['x-switchyard-error']}`);
    await assertSettled(proxy);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

// ---- interim (1xx) responses ------------------------------------------------------------------------

const EARLY_HINTS =
  'HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\nconnection: x-hop\r\nx-hop: 1\r\n\r\n' +
  'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';

test('103 Early Hints is relayed before the final response', async () => {
  const upstream = await rawUpstream((socket) => socket.write(EARLY_HINTS));
  const { proxy, port } = await startProxy([`127.0.0.1:${upstream.port}`]);
  try {
    const client = await new RawClient(port).connected();
    client.write(GET);
    const res = await client.read();
    client.close();
    assert.deepEqual(
      res.interim.map((r) => r.status),
      [103],
    );
    assert.match(res.interim[0].rawHead, /\r\nlink: <\/a\.css>; rel=preload/);
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'ok');
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test('interim responses get the same hop-by-hop filtering as final ones, and speak HTTP/1.1', async () => {
  const upstream = await rawUpstream((socket) => socket.write(EARLY_HINTS.replace('HTTP/1.1 103', 'HTTP/1.0 103')));
  const { proxy, port } = await startProxy([`127.0.0.1:${upstream.port}`]);
  try {
    const client = await new RawClient(port).connected();
    client.write(GET);
    const res = await client.read();
    client.close();
    const hints = res.interim[0].rawHead;
    assert.ok(!/\r\nx-hop:/i.test(hints), `hop-by-hop field relayed: ${JSON.stringify(hints)}`);
    assert.match(hints, /^HTTP\/1\.1 103 /);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test('no 1xx response goes to an HTTP/1.0 client', async () => {
  const upstream = await rawUpstream((socket) => socket.write(EARLY_HINTS));
  const { proxy, port } = await startProxy([`127.0.0.1:${upstream.port}`]);
  try {
    const { data } = await rawExchange(port, 'GET / HTTP/1.0\r\n\r\n');
    assert.match(data.toString(), /^HTTP\/1\.1 200 OK\r\n/);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test('an HTTP/1.0 client never gets a chunked response, even from an upstream that chunks anyway', async () => {
  const upstream = await rawUpstream((socket) =>
    socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'),
  );
  const { proxy, port } = await startProxy([`127.0.0.1:${upstream.port}`]);
  try {
    const { data } = await rawExchange(port, 'GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n', { end: false });
    const text = data.toString();
    assert.ok(!/\r\ntransfer-encoding:/i.test(text), JSON.stringify(text));
    assert.ok(text.endsWith('\r\n\r\nhello'), JSON.stringify(text));
  } finally {
    await proxy.close();
    await upstream.close();
  }
});
