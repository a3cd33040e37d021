/**
 * The HTTP engine in front of a real nginx from Debian: responses equal direct ones, keep-alive
 * reuse on both sides, local actions (404, redirect, respond), X-Forwarded-*, Host rewriting,
 * header edits, request IDs, and a large download to a slow reader with bounded proxy memory.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { ConfigInput } from '../src/config/schema.ts';
import { Switchyard } from '../src/runtime/switchyard.ts';
import { RawClient, request } from './helpers/http.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { freePort, freePorts } from './helpers/net.ts';
import { startNginx, type TestNginx } from './helpers/nginx.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/**
 * Memory after a full GC, once freed buffers were swept: V8 releases ArrayBuffer backing stores on a
 * background thread, which lags on a loaded machine, so one gc() can still count dead chunks.
 */
async function settledMemory(): Promise<NodeJS.MemoryUsage> {
  gc();
  await sleep(20);
  gc();
  return process.memoryUsage();
}

const baseline = handleSnapshot();
const SMALL = 'hello from nginx\n';
const BIG_BYTES = 8 * 1024 * 1024;
const HUGE_BYTES = 64 * 1024 * 1024;
let big: Buffer;
let hugeHash: string;
let nginx: TestNginx;
let proxy: Switchyard;
let port: number;

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

before(async () => {
  big = randomBytes(BIG_BYTES);
  const huge = randomBytes(HUGE_BYTES);
  hugeHash = sha256(huge);
  const nginxPort = await freePort();
  nginx = await startNginx(
    nginxPort,
    `
    location = /small { return 200 "${SMALL.trim()}\\n"; }
    location = /conn { return 200 "$connection"; }
    location = /xf { return 200 "$http_x_forwarded_for|$http_x_forwarded_proto|$http_x_forwarded_host|$host|$http_forwarded"; }
    location = /host { return 200 "$http_host"; }
    location = /edits {
      add_header x-upstream-drop 1;
      add_header x-upstream-keep 2;
      add_header x-resp-set upstream;
      return 200 "$http_x_set|$http_x_added|$http_x_removed|$http_x_kept";
    }
    location = /rid { return 200 "$http_x_request_id"; }
    location = /redirect-me { return 302 /small; }
    location /chunked/ {
      alias {dir}/www/;
      sub_filter 'no-such-text' 'x';
      sub_filter_once off;
      sub_filter_types *;
    }
    `,
    async (www) => {
      await writeFile(join(www, 'big.bin'), big);
      await writeFile(join(www, 'huge.bin'), huge);
    },
  );
  port = await freePort();
  proxy = await Switchyard.start(config(port, nginx.port));
});

after(async () => {
  await proxy?.close();
  await nginx?.close();
  await assertNoLeaks(baseline);
});

function forwardRoute(
  listenPort: number,
  name: string,
  domain: string,
  upstreamPort: number,
  extra: Record<string, unknown> = {},
) {
  return {
    name,
    match: { ports: listenPort, domains: [domain] },
    action: { type: 'forward' as const, mode: 'http' as const, targets: [`127.0.0.1:${upstreamPort}`], ...extra },
  };
}

function config(listenPort: number, upstreamPort: number, http: Record<string, unknown> = {}): ConfigInput {
  return {
    bind: '127.0.0.1',
    log: { level: 'silent' },
    http,
    routes: [
      forwardRoute(listenPort, 'nginx', 'nginx.test', upstreamPort),
      forwardRoute(listenPort, 'target-host', 'target.test', upstreamPort, { hostHeader: 'target' }),
      forwardRoute(listenPort, 'literal-host', 'literal.test', upstreamPort, { hostHeader: 'backend.internal' }),
      forwardRoute(listenPort, 'edits', 'edit.test', upstreamPort, {
        requestHeaders: { set: { 'x-set': 'S' }, add: { 'x-added': 'A' }, remove: ['x-removed'] },
        responseHeaders: { set: { 'x-resp-set': 'proxy' }, add: { 'x-resp-add': 'yes' }, remove: ['x-upstream-drop'] },
      }),
      {
        name: 'to-https',
        match: { ports: listenPort, domains: ['redirect.test'] },
        action: { type: 'redirect', to: 'https://{host}', status: 308 },
      },
      {
        name: 'teapot',
        match: { ports: listenPort, domains: ['respond.test'] },
        action: { type: 'respond', status: 418, headers: { 'x-static': 'yes' }, body: 'short and stout\n' },
      },
    ],
  };
}

test('GET through the proxy equals GET direct', async () => {
  for (const path of ['/small', '/big.bin', '/chunked/big.bin', '/redirect-me', '/missing']) {
    const direct = await request(nginx.port, { path, headers: { host: 'nginx.test' } });
    const proxied = await request(port, { path, headers: { host: 'nginx.test' } });
    assert.equal(proxied.status, direct.status, path);
    assert.equal(sha256(proxied.body), sha256(direct.body), path);
    for (const name of ['content-type', 'content-length', 'transfer-encoding', 'location', 'etag', 'server']) {
      assert.equal(proxied.headers[name], direct.headers[name], `${path}: ${name}`);
    }
  }
  const chunked = await request(port, { path: '/chunked/big.bin', headers: { host: 'nginx.test' } });
  assert.equal(chunked.headers['transfer-encoding'], 'chunked');
  assert.equal(sha256(chunked.body), sha256(big));
  assert.equal(await proxy.metrics.value('switchyard_http_responses_total', { route: 'nginx', status: '404' }), 1);
});

test('HEAD gets the GET fields and no body, and the connection stays usable', async () => {
  const client = await new RawClient(port).connected();
  try {
    for (const path of ['/small', '/big.bin', '/chunked/big.bin']) {
      client.write(`HEAD ${path} HTTP/1.1\r\nhost: nginx.test\r\n\r\n`);
      const head = await client.read('HEAD');
      assert.equal(head.status, 200, path);
      assert.equal(head.body.length, 0);
      if (path === '/big.bin') assert.equal(head.headers['content-length'], String(BIG_BYTES));
      // Nothing may follow a HEAD response: the next GET must parse cleanly on the same connection.
      client.write(`GET /small HTTP/1.1\r\nhost: nginx.test\r\n\r\n`);
      const get = await client.read();
      assert.equal(get.body.toString(), SMALL);
    }
  } finally {
    client.close();
  }
});

test('keep-alive: sequential requests on one client connection reuse one upstream connection', async () => {
  const client = await new RawClient(port).connected();
  const seen = new Set<string>();
  try {
    for (let i = 0; i < 50; i++) {
      client.write('GET /conn HTTP/1.1\r\nhost: nginx.test\r\n\r\n');
      const res = await client.read();
      assert.equal(res.status, 200);
      assert.equal(res.headers.connection, undefined, 'no hop-by-hop Connection from nginx is relayed');
      seen.add(res.body.toString());
    }
  } finally {
    client.close();
  }
  assert.equal(seen.size, 1, `upstream connections used: ${[...seen].join(',')}`);
  // Several client connections in turn still share the pooled upstream connection.
  for (let i = 0; i < 5; i++)
    seen.add((await request(port, { path: '/conn', headers: { host: 'nginx.test' } })).body.toString());
  assert.equal(seen.size, 1);
});

test('no matching route is a 404; redirect and respond routes answer locally', async () => {
  const none = await request(port, { path: '/x', headers: { host: 'nobody.test' } });
  assert.equal(none.status, 404);
  assert.equal(none.headers['x-switchyard-error'], 'SY_ROUTE_NO_MATCH');

  const redirect = await request(port, { path: '/a/b?c=d', headers: { host: 'redirect.test:8080' } });
  assert.equal(redirect.status, 308);
  assert.equal(redirect.headers.location, 'https://redirect.test/a/b?c=d');
  assert.equal(redirect.body.length, 0);

  const teapot = await request(port, { path: '/anything', headers: { host: 'respond.test' } });
  assert.equal(teapot.status, 418);
  assert.equal(teapot.headers['x-static'], 'yes');
  assert.equal(teapot.body.toString(), 'short and stout\n');
  assert.equal(await proxy.metrics.value('switchyard_http_responses_total', { route: 'teapot', status: '418' }), 1);

  // Local answers keep the connection alive like forwarded ones.
  const client = await new RawClient(port).connected();
  try {
    client.write('GET / HTTP/1.1\r\nhost: respond.test\r\n\r\nHEAD / HTTP/1.1\r\nhost: respond.test\r\n\r\n');
    assert.equal((await client.read()).body.toString(), 'short and stout\n');
    const head = await client.read('HEAD');
    assert.equal(head.headers['content-length'], '16');
    client.write('GET /small HTTP/1.1\r\nhost: nginx.test\r\n\r\n');
    assert.equal((await client.read()).body.toString(), SMALL);
  } finally {
    client.close();
  }
});

test('X-Forwarded-*: replaced for an untrusted peer', async () => {
  const res = await request(port, {
    path: '/xf',
    headers: {
      host: 'nginx.test',
      'x-forwarded-for': '6.6.6.6',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'evil.example',
      forwarded: 'for=6.6.6.6',
    },
  });
  assert.equal(res.body.toString(), '127.0.0.1|http|nginx.test|nginx.test|');
});

test('X-Forwarded-*: appended for http.trustedProxies, and Forwarded when enabled', async () => {
  const [trustedPort] = await freePorts(1);
  const trusted = await Switchyard.start(
    config(trustedPort, nginx.port, { trustedProxies: ['127.0.0.0/8'], forwardedHeader: true }),
  );
  try {
    const res = await request(trustedPort, {
      path: '/xf',
      headers: {
        host: 'nginx.test',
        'x-forwarded-for': '1.2.3.4, 5.6.7.8',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'public.example',
        forwarded: 'for=1.2.3.4',
      },
    });
    assert.equal(
      res.body.toString(),
      '1.2.3.4, 5.6.7.8, 127.0.0.1|https|public.example|nginx.test|for=1.2.3.4, for=127.0.0.1;proto=http;host="nginx.test"',
    );
    const plain = await request(trustedPort, { path: '/xf', headers: { host: 'nginx.test' } });
    assert.equal(
      plain.body.toString(),
      '127.0.0.1|http|nginx.test|nginx.test|for=127.0.0.1;proto=http;host="nginx.test"',
    );
  } finally {
    await trusted.close();
  }
});

test("Forwarded without http.forwardedHeader: a trusted peer's passes through unchanged, nothing is added", async () => {
  const [trustedPort] = await freePorts(1);
  const trusted = await Switchyard.start(config(trustedPort, nginx.port, { trustedProxies: ['127.0.0.0/8'] }));
  try {
    const res = await request(trustedPort, {
      path: '/xf',
      headers: { host: 'nginx.test', forwarded: 'for=1.2.3.4;proto=https' },
    });
    assert.equal(res.body.toString(), '127.0.0.1|http|nginx.test|nginx.test|for=1.2.3.4;proto=https');
    const plain = await request(trustedPort, { path: '/xf', headers: { host: 'nginx.test' } });
    assert.equal(plain.body.toString(), '127.0.0.1|http|nginx.test|nginx.test|');
  } finally {
    await trusted.close();
  }
});

test('Host: preserved, the target address, or a literal', async () => {
  const preserve = await request(port, { path: '/host', headers: { host: 'nginx.test:1234' } });
  assert.equal(preserve.body.toString(), 'nginx.test:1234');
  const target = await request(port, { path: '/host', headers: { host: 'target.test' } });
  assert.equal(target.body.toString(), `127.0.0.1:${nginx.port}`);
  const literal = await request(port, { path: '/host', headers: { host: 'literal.test' } });
  assert.equal(literal.body.toString(), 'backend.internal');
});

test('request and response header edits', async () => {
  const res = await request(port, {
    path: '/edits',
    headers: { host: 'edit.test', 'x-set': 'from-client', 'x-removed': 'R', 'x-kept': 'K' },
  });
  assert.equal(res.status, 200);
  assert.equal(res.body.toString(), 'S|A||K');
  assert.equal(res.headers['x-upstream-drop'], undefined);
  assert.equal(res.headers['x-upstream-keep'], '2');
  assert.equal(res.headers['x-resp-set'], 'proxy');
  assert.equal(res.headers['x-resp-add'], 'yes');
  // Another route on the same upstream gets no edits.
  const plain = await request(port, { path: '/edits', headers: { host: 'nginx.test', 'x-removed': 'R' } });
  assert.equal(plain.body.toString(), '||R|');
  assert.equal(plain.headers['x-upstream-drop'], '1');
  assert.equal(plain.headers['x-resp-set'], 'upstream');
});

test('request ID: generated when absent, passed through when sent, replaced when unsafe', async () => {
  const generated = await request(port, { path: '/rid', headers: { host: 'nginx.test' } });
  const id = generated.body.toString();
  assert.match(id, /^[\w-]{4,}$/);
  assert.equal(generated.headers['x-request-id'], id);
  const other = await request(port, { path: '/rid', headers: { host: 'nginx.test' } });
  assert.notEqual(other.body.toString(), id);

  const passed = await request(port, { path: '/rid', headers: { host: 'nginx.test', 'x-request-id': 'abc-123' } });
  assert.equal(passed.body.toString(), 'abc-123');
  assert.equal(passed.headers['x-request-id'], 'abc-123');

  const unsafe = await request(port, { path: '/rid', headers: { host: 'nginx.test', 'x-request-id': 'a b"c' } });
  assert.notEqual(unsafe.body.toString(), 'a b"c');
  assert.match(unsafe.body.toString(), /^[\w-]{4,}$/);
  assert.equal(unsafe.headers['x-request-id'], unsafe.body.toString());

  // Local answers carry the ID too.
  const local = await request(port, { path: '/', headers: { host: 'respond.test', 'x-request-id': 'local-1' } });
  assert.equal(local.headers['x-request-id'], 'local-1');
});

/** Incremental chunked-body decoder, so the test itself never holds a whole body. */
class ChunkDecoder {
  sizeLine = '';
  remaining = 0;
  /** Bytes of CRLF still expected after a chunk's data. */
  crlf = 0;
  done = false;

  feed(chunk: Buffer, onData: (data: Buffer) => void): void {
    let p = 0;
    while (p < chunk.length && !this.done) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - p);
        onData(chunk.subarray(p, p + n));
        this.remaining -= n;
        p += n;
        if (this.remaining === 0) this.crlf = 2;
      } else if (this.crlf > 0) {
        this.crlf--;
        p++;
      } else {
        const lf = chunk.indexOf(10, p);
        if (lf === -1) {
          this.sizeLine += chunk.toString('latin1', p);
          return;
        }
        this.sizeLine += chunk.toString('latin1', p, lf);
        p = lf + 1;
        const size = Number.parseInt(this.sizeLine, 16);
        this.sizeLine = '';
        if (size === 0) this.done = true;
        else this.remaining = size;
      }
    }
  }
}

test('large download to a slow reader: bytes intact, proxy memory does not grow with the body', async () => {
  for (const path of ['/huge.bin', '/chunked/huge.bin']) {
    const before = await settledMemory();
    const client = await new RawClient(port).connected();
    const socket = client.socket;
    // Hash the body as it streams instead of collecting it in RawClient's buffer.
    socket.removeAllListeners('data');
    const hash = createHash('sha256');
    const decoder = new ChunkDecoder();
    let head = Buffer.alloc(0);
    let headDone = false;
    let chunked = false;
    let bodyBytes = 0;
    const onBody = (data: Buffer): void => {
      bodyBytes += data.length;
      hash.update(data);
    };
    socket.on('data', (chunk: Buffer) => {
      if (!headDone) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return;
        headDone = true;
        chunked = /\r\ntransfer-encoding: chunked\r\n/i.test(head.toString('latin1', 0, end + 2));
        chunk = head.subarray(end + 4);
      }
      if (chunked) decoder.feed(chunk, onBody);
      else onBody(chunk);
    });
    socket.pause();
    client.write(`GET ${path} HTTP/1.1\r\nhost: nginx.test\r\nconnection: close\r\n\r\n`);
    let peakExternal = 0;
    let peakRss = 0;
    const sample = async (): Promise<void> => {
      const now = await settledMemory();
      peakExternal = Math.max(peakExternal, now.arrayBuffers - before.arrayBuffers);
      peakRss = Math.max(peakRss, now.rss - before.rss);
    };
    // Stalled reader: whatever the proxy holds now, it holds because it kept reading nginx.
    for (let i = 0; i < 10; i++) {
      await sleep(100);
      await sample();
    }
    // Slow reader: short bursts between pauses, sampling memory as the body streams.
    let ended = false;
    socket.once('end', () => {
      ended = true;
    });
    for (let round = 1; !ended; round++) {
      socket.resume();
      await sleep(5);
      socket.pause();
      await sleep(5);
      if (round % 20 === 0) await sample();
    }
    client.close();
    assert.equal(bodyBytes, HUGE_BYTES, path);
    assert.equal(hash.digest('hex'), hugeHash, path);
    assert.equal(decoder.done, chunked, path);
    // Generous bounds (a loaded machine sweeps late): socket buffers and read-ahead, never the 64 MiB body.
    assert.ok(peakExternal < 16 * 1024 * 1024, `${path}: buffers grew by ${peakExternal} bytes with a slow reader`);
    assert.ok(peakRss < HUGE_BYTES / 2, `${path}: RSS grew by ${peakRss} bytes with a slow reader`);
  }
});

test('concurrent large downloads to stuttering readers all arrive intact (recycled read buffers)', async () => {
  // Each reader stalls first, so the kernel's buffers fill and the proxy's writes stay pending
  // while the other downloads keep reading from nginx: a read buffer reused before its write
  // completed would corrupt one of the bodies.
  const download = async (): Promise<{ bytes: number; digest: string }> => {
    const client = await new RawClient(port).connected();
    const socket = client.socket;
    socket.removeAllListeners('data');
    const hash = createHash('sha256');
    let head: Buffer | null = Buffer.alloc(0);
    let bytes = 0;
    let reads = 0;
    socket.pause();
    setTimeout(() => socket.resume(), 150);
    socket.on('data', (chunk: Buffer) => {
      if (head !== null) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return;
        chunk = head.subarray(end + 4);
        head = null;
      }
      bytes += chunk.length;
      hash.update(chunk);
      if (++reads % 64 === 0) {
        socket.pause();
        setTimeout(() => socket.resume(), 10);
      }
    });
    const ended = once(socket, 'end');
    client.write('GET /huge.bin HTTP/1.1\r\nhost: nginx.test\r\nconnection: close\r\n\r\n');
    await ended;
    client.close();
    return { bytes, digest: hash.digest('hex') };
  };
  const results = await Promise.all([download(), download(), download()]);
  for (const r of results) {
    assert.equal(r.bytes, HUGE_BYTES);
    assert.equal(r.digest, hugeHash);
  }
});
