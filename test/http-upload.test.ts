/**
 * Request bodies through the HTTP engine: large Content-Length and chunked uploads arrive intact,
 * a slow upstream pushes back on the client (the proxy does not buffer the body), maxBodyBytes is
 * enforced with 413, and Expect: 100-continue is relayed.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { ConfigInput } from '../src/config/schema.ts';
import { Switchyard } from '../src/runtime/switchyard.ts';
import { RawClient, rawExchange } from './helpers/http.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { freePort, waitFor } from './helpers/net.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** External buffer bytes after a full GC, once the background sweeper released dead ones. */
async function settledArrayBuffers(): Promise<number> {
  gc();
  await sleep(20);
  gc();
  return process.memoryUsage().arrayBuffers;
}

const baseline = handleSnapshot();
const MiB = 1024 * 1024;

/** What the hashing upstream saw of one request. */
interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  bytes: number;
  sha256: string;
  complete: boolean;
}

/** A node:http upstream that hashes each request body and answers with what it saw. */
class HashUpstream {
  server: Server;
  port: number;
  /** Requests whose head arrived. */
  started: number;
  seen: Seen[];
  /** When set, each request body is read only after this promise settles. */
  gate: Promise<void> | null;

  constructor() {
    this.server = createServer((req, res) => this.handle(req, res));
    this.port = 0;
    this.started = 0;
    this.seen = [];
    this.gate = null;
  }

  async listen(): Promise<this> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    this.started++;
    const hash = createHash('sha256');
    const seen: Seen = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      bytes: 0,
      sha256: '',
      complete: false,
    };
    req.pause();
    const read = (): void => {
      req.on('data', (chunk: Buffer) => {
        seen.bytes += chunk.length;
        hash.update(chunk);
      });
      req.on('end', () => {
        seen.sha256 = hash.digest('hex');
        seen.complete = true;
        this.seen.push(seen);
        res.end(`${seen.bytes}:${seen.sha256}`);
      });
      req.on('error', () => {});
      req.resume();
    };
    if (this.gate === null) read();
    else void this.gate.then(read);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }
}

let upstream: HashUpstream;
let proxy: Switchyard;
let port: number;

function config(listenPort: number, upstreamPort: number): ConfigInput {
  return {
    bind: '127.0.0.1',
    log: { level: 'silent' },
    routes: [
      {
        name: 'limited',
        match: { ports: listenPort, paths: ['/limited/*'] },
        action: { type: 'forward', mode: 'http', targets: [`127.0.0.1:${upstreamPort}`], maxBodyBytes: MiB },
      },
      {
        name: 'upload',
        match: { ports: listenPort },
        action: { type: 'forward', mode: 'http', targets: [`127.0.0.1:${upstreamPort}`] },
      },
    ],
  };
}

before(async () => {
  upstream = await new HashUpstream().listen();
  port = await freePort();
  proxy = await Switchyard.start(config(port, upstream.port));
});

after(async () => {
  await proxy?.close();
  await upstream?.close();
  await assertNoLeaks(baseline);
});

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Uploads `body` in `pieceBytes` writes, honouring backpressure, with Content-Length or chunked.
 * `onProgress` sees the bytes accepted by the client socket so far.
 */
function upload(
  path: string,
  body: Buffer,
  framing: 'length' | 'chunked',
  pieceBytes = 256 * 1024,
  onProgress: (sent: number) => void = () => {},
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (framing === 'length') headers['content-length'] = String(body.length);
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    let sent = 0;
    const pump = (): void => {
      while (sent < body.length) {
        const piece = body.subarray(sent, Math.min(body.length, sent + pieceBytes));
        sent += piece.length;
        onProgress(sent);
        if (!req.write(piece)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

test('32 MiB Content-Length upload arrives intact', async () => {
  const body = randomBytes(32 * MiB);
  const res = await upload('/up', body, 'length');
  assert.equal(res.status, 200);
  assert.equal(res.text, `${body.length}:${sha256(body)}`);
  const seen = upstream.seen.at(-1)!;
  assert.equal(seen.headers['content-length'], String(body.length));
  assert.equal(seen.headers['transfer-encoding'], undefined);
});

test('32 MiB chunked upload (odd chunk sizes) arrives intact and stays chunked', async () => {
  const body = randomBytes(32 * MiB + 12345);
  const res = await upload('/up', body, 'chunked', 100_003);
  assert.equal(res.status, 200);
  assert.equal(res.text, `${body.length}:${sha256(body)}`);
  const seen = upstream.seen.at(-1)!;
  assert.equal(seen.headers['transfer-encoding'], 'chunked');
  assert.equal(seen.headers['content-length'], undefined);
});

test('chunked upload with trailers and extensions, byte by byte', async () => {
  const payload =
    'POST /up HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n' +
    '5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-checksum: abc\r\n\r\n';
  const client = await new RawClient(port).connected();
  try {
    for (const byte of Buffer.from(payload)) {
      client.write(Buffer.from([byte]));
      await sleep(0);
    }
    const res = await client.read();
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), `11:${sha256(Buffer.from('hello world'))}`);
  } finally {
    client.close();
  }
});

for (const framing of ['length', 'chunked'] as const) {
  test(`slow upstream reader pushes back on the client (${framing}); proxy memory stays bounded`, async () => {
    const body = randomBytes(64 * MiB);
    let open!: () => void;
    upstream.gate = new Promise((resolve) => {
      open = resolve;
    });
    const before = await settledArrayBuffers();
    let sent = 0;
    const done = upload('/up', body, framing, 64 * 1024, (n) => {
      sent = n;
    });
    try {
      // The upstream reads nothing: the client can fill the socket buffers on the way and no more.
      let peak = 0;
      let stalledAt = -1;
      for (let i = 0; i < 15; i++) {
        await sleep(100);
        peak = Math.max(peak, (await settledArrayBuffers()) - before);
        if (i === 9) stalledAt = sent;
      }
      assert.ok(sent < body.length / 2, `client wrote ${sent} of ${body.length} bytes into a stalled upstream`);
      assert.equal(sent, stalledAt, 'the client is blocked, not merely slow');
      // The body buffer itself is allocated before `before`; growth here would be buffered copies.
      assert.ok(peak < 16 * MiB, `buffers grew by ${peak} bytes while the upstream stalled`);
    } finally {
      open();
    }
    const res = await done;
    upstream.gate = null;
    assert.equal(res.status, 200);
    assert.equal(res.text, `${body.length}:${sha256(body)}`);
  });
}

test('maxBodyBytes: Content-Length past the limit is 413 before any byte goes upstream', async () => {
  const started = upstream.started;
  const { data } = await rawExchange(
    port,
    `POST /limited/x HTTP/1.1\r\nhost: x\r\ncontent-length: ${MiB + 1}\r\n\r\n${'a'.repeat(1000)}`,
    { end: false },
  );
  const text = data.toString();
  assert.match(text, /^HTTP\/1\.1 413 /);
  assert.match(text, /connection: close/i);
  assert.equal(upstream.started, started);
  assert.equal(await proxy.metrics.value('switchyard_http_responses_total', { route: 'limited', status: '413' }), 1);

  // Exactly at the limit is fine.
  const atLimit = randomBytes(MiB);
  const ok = await upload('/limited/ok', atLimit, 'length');
  assert.equal(ok.status, 200);
  assert.equal(ok.text, `${MiB}:${sha256(atLimit)}`);
});

test('maxBodyBytes: a chunked body that grows past the limit is cut with 413 and never completes upstream', async () => {
  const completed = upstream.seen.length;
  const client = await new RawClient(port).connected();
  try {
    client.write('POST /limited/chunked HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n');
    const piece = Buffer.alloc(64 * 1024, 0x61);
    const frame = Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]);
    for (let i = 0; i < 20 && !client.ended; i++) {
      client.write(frame);
      await sleep(2);
    }
    const res = await client.read();
    assert.equal(res.status, 413);
    assert.equal(res.headers['x-switchyard-error'], 'SY_HTTP_BODY_TOO_LARGE');
    await client.waitEnd();
  } finally {
    client.close();
  }
  await sleep(50);
  assert.equal(upstream.seen.length, completed, 'the upstream never saw a complete oversized body');
  // Within the limit, chunked is forwarded.
  const small = randomBytes(MiB - 10);
  const ok = await upload('/limited/chunked-ok', small, 'chunked');
  assert.equal(ok.status, 200);
});

test('Expect: 100-continue: the upstream 100 is relayed, then the final response', async () => {
  const body = randomBytes(200_000);
  const client = await new RawClient(port).connected();
  try {
    client.write(`POST /up HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: ${body.length}\r\n\r\n`);
    // The 100 must arrive before any body byte was sent.
    await waitFor(() => client.buf.includes('\r\n\r\n'));
    assert.match(client.buf.toString(), /^HTTP\/1\.1 100 Continue\r\n\r\n$/);
    client.write(body);
    const res = await client.read('POST');
    assert.deepEqual(
      res.interim.map((r) => r.status),
      [100],
    );
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), `${body.length}:${sha256(body)}`);
    assert.equal(upstream.seen.at(-1)!.headers.expect, '100-continue');
    // The connection stays usable.
    client.write('GET /up HTTP/1.1\r\nhost: x\r\n\r\n');
    assert.equal((await client.read()).status, 200);
  } finally {
    client.close();
  }
});

test('Expect: 100-continue with a body over maxBodyBytes: 413 at once, no 100', async () => {
  const started = upstream.started;
  const client = await new RawClient(port).connected();
  try {
    client.write(`POST /limited/x HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: ${2 * MiB}\r\n\r\n`);
    const res = await client.read('POST');
    assert.equal(res.interim.length, 0);
    assert.equal(res.status, 413);
    await client.waitEnd();
  } finally {
    client.close();
  }
  assert.equal(upstream.started, started);
});
