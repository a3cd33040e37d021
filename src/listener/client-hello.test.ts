import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { before, test } from 'node:test';
import tls from 'node:tls';
import fc from 'fast-check';
import { type ClientHelloResult, looksLikeTls, MAX_CLIENT_HELLO_RECORDS, parseClientHello } from './client-hello.ts';

/**
 * Captures the first TLS record a real node:tls client sends to a plain TCP server on port 0,
 * then tears both ends down. Node's ClientHello fits in one record, so that record is the hello.
 */
async function captureClientHello(options: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  const captured = new Promise<Buffer>((resolve, reject) => {
    server.on('connection', (socket) => {
      const chunks: Buffer[] = [];
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        const all = Buffer.concat(chunks);
        if (all.length >= 5 && all.length >= 5 + all.readUInt16BE(3)) {
          resolve(all.subarray(0, 5 + all.readUInt16BE(3)));
          socket.destroy();
        }
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = tls.connect({ host: '127.0.0.1', port, ...options });
  // The server hangs up mid-handshake on purpose; the client's reset is expected.
  client.on('error', () => {});
  try {
    return await captured;
  } finally {
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** Re-frames the handshake bytes of a single-record hello into records of the given sizes (the last repeats). */
function reframe(hello: Buffer, sizes: number[]): Buffer {
  const message = hello.subarray(5);
  const out: Buffer[] = [];
  let p = 0;
  let i = 0;
  while (p < message.length) {
    const size = Math.min(sizes[Math.min(i, sizes.length - 1)], message.length - p);
    out.push(record(message.subarray(p, p + size)));
    p += size;
    i++;
  }
  return Buffer.concat(out);
}

function record(fragment: Buffer, type = 22, version = 0x0301): Buffer {
  const header = Buffer.from([type, version >> 8, version & 0xff, fragment.length >> 8, fragment.length & 0xff]);
  return Buffer.concat([header, fragment]);
}

function u16(n: number): Buffer {
  return Buffer.from([n >> 8, n & 0xff]);
}

function extension(type: number, data: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(data.length), data]);
}

/** server_name extension data holding the given host_name entries, as raw bytes. */
function sniData(...names: (string | Buffer)[]): Buffer {
  const entries = names.map((name) => {
    const bytes = typeof name === 'string' ? Buffer.from(name, 'latin1') : name;
    return Buffer.concat([Buffer.from([0]), u16(bytes.length), bytes]);
  });
  const list = Buffer.concat(entries);
  return Buffer.concat([u16(list.length), list]);
}

function alpnData(...names: string[]): Buffer {
  const list = Buffer.concat(names.map((n) => Buffer.concat([Buffer.from([n.length]), Buffer.from(n, 'latin1')])));
  return Buffer.concat([u16(list.length), list]);
}

interface HelloParts {
  version?: number;
  sessionId?: Buffer;
  cipherSuites?: Buffer;
  compression?: Buffer;
  /** Raw extensions block contents; null omits the block entirely. */
  extensions?: Buffer | null;
}

/** A ClientHello body built field by field, so each length can be corrupted precisely. */
function helloBody(parts: HelloParts = {}): Buffer {
  const version = parts.version ?? 0x0303;
  const sessionId = parts.sessionId ?? Buffer.alloc(32, 7);
  const suites = parts.cipherSuites ?? Buffer.from([0x13, 0x01, 0x13, 0x02]);
  const compression = parts.compression ?? Buffer.from([0]);
  const fields = [
    u16(version),
    Buffer.alloc(32, 0xaa),
    Buffer.from([sessionId.length]),
    sessionId,
    u16(suites.length),
    suites,
    Buffer.from([compression.length]),
    compression,
  ];
  if (parts.extensions !== null) {
    const ext = parts.extensions ?? Buffer.alloc(0);
    fields.push(u16(ext.length), ext);
  }
  return Buffer.concat(fields);
}

/** Wraps a ClientHello body in its handshake header and one record. */
function helloRecord(body: Buffer): Buffer {
  const header = Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]);
  return record(Buffer.concat([header, body]));
}

function withExtensions(...exts: Buffer[]): Buffer {
  return helloRecord(helloBody({ extensions: Buffer.concat(exts) }));
}

function assertError(result: ClientHelloResult, pattern?: RegExp): void {
  assert.equal(result.kind, 'error', `expected error, got ${JSON.stringify(result)}`);
  if (pattern && result.kind === 'error') assert.match(result.reason, pattern);
}

function serverNameOf(result: ClientHelloResult): string | null {
  assert.equal(result.kind, 'hello', `expected hello, got ${JSON.stringify(result)}`);
  return result.kind === 'hello' ? result.info.serverName : null;
}

const KINDS = new Set(['need-more', 'hello', 'error']);

let sniHello: Buffer;
let ipHello: Buffer;
let tls12Hello: Buffer;

before(async () => {
  sniHello = await captureClientHello({ servername: 'API.Example.com', ALPNProtocols: ['h2', 'http/1.1'] });
  ipHello = await captureClientHello({});
  tls12Hello = await captureClientHello({
    servername: 'legacy.example.net',
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.2',
  });
});

test('looksLikeTls accepts only the handshake content type', () => {
  assert.equal(looksLikeTls(0x16), true);
  assert.equal(looksLikeTls('G'.charCodeAt(0)), false);
  assert.equal(looksLikeTls(0x80), false);
  assert.equal(looksLikeTls(0x17), false);
  assert.equal(looksLikeTls(sniHello[0]), true);
});

test('a real ClientHello yields the lowercased SNI and the ALPN list', () => {
  assert.deepEqual(parseClientHello(sniHello), {
    kind: 'hello',
    info: { serverName: 'api.example.com', alpn: ['h2', 'http/1.1'] },
  });
});

test('a TLS 1.2-only real ClientHello parses too', () => {
  assert.deepEqual(parseClientHello(tls12Hello), {
    kind: 'hello',
    info: { serverName: 'legacy.example.net', alpn: [] },
  });
});

test('a client connecting by IP sends no SNI: serverName is null', () => {
  assert.deepEqual(parseClientHello(ipHello), { kind: 'hello', info: { serverName: null, alpn: [] } });
});

test('every split of a real hello needs more until the last byte arrives', () => {
  for (const hello of [sniHello, ipHello, tls12Hello]) {
    const whole = parseClientHello(hello);
    for (let k = 0; k < hello.length; k++) {
      assert.deepEqual(parseClientHello(hello.subarray(0, k)), { kind: 'need-more' }, `prefix of ${k} bytes`);
    }
    // Copy each prefix so a parser reading past its view would be caught by the length.
    assert.deepEqual(parseClientHello(Buffer.from(hello)), whole);
  }
});

test('bytes after the hello records (early data, CCS) do not change the answer', () => {
  const ccs = record(Buffer.from([1]), 20, 0x0303);
  const appData = record(Buffer.alloc(40, 9), 23, 0x0303);
  assert.deepEqual(parseClientHello(Buffer.concat([sniHello, ccs, appData])), parseClientHello(sniHello));
  assert.deepEqual(parseClientHello(Buffer.concat([sniHello, Buffer.from([0x17, 0x03])])), parseClientHello(sniHello));
});

test('a hello split across several records is reassembled', () => {
  const expected = parseClientHello(sniHello);
  // Node's hello is about 1.6 KB (it carries a post-quantum key share), so this is about 11 records.
  const framed = reframe(sniHello, [150]);
  assert.ok(framed.length > sniHello.length + 5, 'more than one record');
  assert.deepEqual(parseClientHello(framed), expected);
  for (let k = 0; k < framed.length; k++) {
    assert.equal(parseClientHello(framed.subarray(0, k)).kind, 'need-more', `prefix of ${k} bytes`);
  }
  // Record boundaries inside the 4-byte handshake header.
  assert.deepEqual(parseClientHello(reframe(sniHello, [1, 2, 1, 300])), expected);
});

test('exactly 16 records are accepted, 17 are refused', () => {
  const length = sniHello.length - 5;
  const expected = parseClientHello(sniHello);
  const sixteen = reframe(sniHello, [Math.ceil(length / MAX_CLIENT_HELLO_RECORDS)]);
  assert.deepEqual(parseClientHello(sixteen), expected);
  const many = reframe(sniHello, [Math.ceil(length / (MAX_CLIENT_HELLO_RECORDS + 1)) - 1]);
  assertError(parseClientHello(many), /16 records/);
  // Refused as soon as the 17th record would be needed, not when all of it has arrived.
  let seventeenthStart = 0;
  for (let r = 0; r < MAX_CLIENT_HELLO_RECORDS; r++) seventeenthStart += 5 + many.readUInt16BE(seventeenthStart + 3);
  assertError(parseClientHello(many.subarray(0, seventeenthStart)), /16 records/);
});

test('another record type between hello fragments is refused', () => {
  const framed = reframe(sniHello, [100]);
  const firstRecord = framed.subarray(0, 105);
  const alert = record(Buffer.from([2, 40]), 21);
  assertError(parseClientHello(Buffer.concat([firstRecord, alert, framed.subarray(105)])), /non-handshake/);
});

test('handshake bytes after the ClientHello in its record are refused', () => {
  const message = sniHello.subarray(5);
  assertError(parseClientHello(record(Buffer.concat([message, Buffer.from([0])]))), /after the ClientHello/);
});

test('plaintext and SSLv2 hellos are refused from the first byte', () => {
  assertError(parseClientHello(Buffer.from('GET / HTTP/1.1\r\nHost: example.com\r\n\r\n')), /not a TLS/);
  assertError(parseClientHello(Buffer.from('G')), /not a TLS/);
  // SSLv2-compatible CLIENT-HELLO: 2-byte length with the high bit set, then msg type 1.
  assertError(parseClientHello(Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15])), /not a TLS/);
  assertError(parseClientHello(Buffer.from([0, 0, 0, 0, 0, 0])));
});

test('record header checks', () => {
  const body = sniHello.subarray(5);
  assertError(parseClientHello(record(body, 22, 0x0300)), /record version/);
  assertError(parseClientHello(record(body, 22, 0x0305)), /record version/);
  assertError(parseClientHello(record(body, 22, 0x0201)), /record version/);
  assertError(parseClientHello(Buffer.from([22, 2])), /record version/);
  assertError(parseClientHello(Buffer.from([22, 3, 0])), /record version/);
  assert.equal(parseClientHello(record(body, 22, 0x0304)).kind, 'hello');
  assertError(parseClientHello(Buffer.from([22, 3, 1, 0, 0])), /empty handshake record/);
  assertError(parseClientHello(Buffer.from([22, 3, 1, 0x40, 0x01])), /16384/);
});

test('handshake header checks happen before the record is complete', () => {
  assertError(parseClientHello(Buffer.from([22, 3, 1, 1, 0, 2])), /not a ClientHello/);
  assertError(parseClientHello(Buffer.from([22, 3, 1, 1, 0, 1, 0x01, 0x00, 0x01])), /64 KiB/);
  assert.equal(parseClientHello(Buffer.from([22, 3, 1, 1, 0, 1, 0x01, 0x00, 0x00])).kind, 'need-more');
  // A record shorter than its handshake header then a second record of another type.
  assertError(parseClientHello(Buffer.concat([record(Buffer.from([1, 0])), record(Buffer.from([1]), 23)])));
});

test('length fields of the captured hello: overlong waits, inconsistent fails', () => {
  const recordLonger = Buffer.from(sniHello);
  recordLonger.writeUInt16BE(recordLonger.readUInt16BE(3) + 1, 3);
  assert.equal(parseClientHello(recordLonger).kind, 'need-more');
  // With the extra byte present, the record holds one byte more than the hello claims.
  assertError(parseClientHello(Buffer.concat([recordLonger, Buffer.from([0])])), /after the ClientHello/);

  const handshakeShorter = Buffer.from(sniHello);
  handshakeShorter[8] -= 1;
  assertError(parseClientHello(handshakeShorter));

  const handshakeLonger = Buffer.from(sniHello);
  handshakeLonger[8] += 1;
  assert.equal(parseClientHello(handshakeLonger).kind, 'need-more');
  assertError(parseClientHello(Buffer.concat([handshakeLonger, record(Buffer.from([0]))])));

  const truncated = helloRecord(sniHello.subarray(9, sniHello.length - 3));
  assertError(parseClientHello(truncated));
});

test('ClientHello body field checks', () => {
  assert.deepEqual(parseClientHello(helloRecord(helloBody({ extensions: null }))), {
    kind: 'hello',
    info: { serverName: null, alpn: [] },
  });
  assert.equal(parseClientHello(helloRecord(helloBody())).kind, 'hello');
  assertError(parseClientHello(helloRecord(Buffer.alloc(20, 3))), /too short/);
  assertError(parseClientHello(helloRecord(helloBody({ version: 0x0203 }))), /version/);
  assertError(parseClientHello(helloRecord(helloBody({ sessionId: Buffer.alloc(33) }))), /session id/);
  assertError(parseClientHello(helloRecord(helloBody({ cipherSuites: Buffer.from([0x13]) }))), /cipher suites/);
  assertError(parseClientHello(helloRecord(helloBody({ cipherSuites: Buffer.alloc(0) }))), /cipher suites/);
  assertError(parseClientHello(helloRecord(helloBody({ compression: Buffer.alloc(0) }))), /compression/);

  const body = helloBody({ extensions: extension(0, sniData('a.example')) });
  const extLengthAt = body.length - extension(0, sniData('a.example')).length - 2;
  for (const delta of [-1, 1]) {
    const bad = Buffer.from(body);
    bad.writeUInt16BE(bad.readUInt16BE(extLengthAt) + delta, extLengthAt);
    assertError(parseClientHello(helloRecord(bad)), /extensions length/);
  }
  assertError(parseClientHello(helloRecord(body.subarray(0, extLengthAt + 1))), /extensions length/);
  // Cipher suite length pointing past the end of the body.
  const overlong = helloBody({ extensions: null });
  overlong.writeUInt16BE(0x0100, 35 + 32);
  assertError(parseClientHello(helloRecord(overlong)), /truncated/);
  // Compression length pointing past the end.
  const compressionOverlong = helloBody({ extensions: null });
  compressionOverlong[compressionOverlong.length - 2] = 9;
  assertError(parseClientHello(helloRecord(compressionOverlong)), /compression/);
});

test('extension framing checks', () => {
  assertError(parseClientHello(withExtensions(Buffer.from([0, 5, 0]))), /extension header/);
  assertError(parseClientHello(withExtensions(Buffer.from([0, 5, 0, 9, 1, 2]))), /longer than the extensions block/);
  // Unknown and GREASE extensions are skipped.
  const result = parseClientHello(
    withExtensions(
      extension(0x0a0a, Buffer.alloc(0)),
      extension(0xff01, Buffer.from([0])),
      extension(0, sniData('x.io')),
    ),
  );
  assert.equal(serverNameOf(result), 'x.io');
});

test('server_name checks', () => {
  const sni = (data: Buffer) => parseClientHello(withExtensions(extension(0, data)));
  assert.equal(serverNameOf(sni(sniData('WWW.Example.ORG.'))), 'www.example.org');
  assert.equal(serverNameOf(sni(sniData('under_score.internal'))), 'under_score.internal');
  assert.equal(serverNameOf(sni(sniData('localhost'))), 'localhost');
  assert.equal(serverNameOf(sni(sniData(`${'a'.repeat(63)}.b`))), `${'a'.repeat(63)}.b`);
  const longest = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
  assert.equal(longest.length, 253);
  assert.equal(serverNameOf(sni(sniData(`${longest}.`))), longest);

  assertError(sni(sniData(`${longest}e`)), /253/);
  assertError(sni(sniData(`${'a'.repeat(64)}.b`)), /63/);
  assertError(sni(sniData('')), /empty host_name/);
  assertError(sni(sniData('.')), /empty host_name/);
  assertError(sni(sniData('a..b')), /empty label/);
  assertError(sni(sniData('.a')), /empty label/);
  assertError(sni(sniData('a..')), /empty label/);
  assertError(sni(sniData('a\0.example')), /invalid byte/);
  assertError(sni(sniData('a b')), /invalid byte/);
  assertError(sni(sniData('a:443')), /invalid byte/);
  assertError(sni(sniData('caf\u00e9.fr')), /invalid byte/);
  assertError(sni(sniData('a.example', 'b.example')), /more than one/);
  assertError(sni(Buffer.alloc(0)), /truncated/);
  assertError(sni(u16(0)), /empty server_name list/);
  assertError(sni(Buffer.concat([u16(5), Buffer.from([0, 0, 1, 0x61])])), /list length mismatch/);
  assertError(sni(Buffer.concat([u16(4), Buffer.from([0, 0, 2, 0x61])])), /longer than its list/);
  assertError(sni(Buffer.concat([u16(4), Buffer.from([1, 0, 1, 0x61])])), /not a host_name/);
  assertError(
    parseClientHello(withExtensions(extension(0, sniData('a.example')), extension(0, sniData('b.example')))),
    /duplicate server_name/,
  );
});

test('ALPN checks', () => {
  const alpn = (data: Buffer) => parseClientHello(withExtensions(extension(16, data)));
  const ok = alpn(alpnData('h2', 'http/1.1', 'acme-tls/1'));
  assert.deepEqual(ok, { kind: 'hello', info: { serverName: null, alpn: ['h2', 'http/1.1', 'acme-tls/1'] } });
  assertError(alpn(Buffer.alloc(0)), /truncated ALPN/);
  assertError(alpn(u16(0)), /empty ALPN list/);
  assertError(alpn(Buffer.concat([u16(3), Buffer.from([0, 1, 0x61])])), /empty ALPN protocol name/);
  assertError(alpn(Buffer.concat([u16(3), Buffer.from([3, 0x68, 0x32])])), /overruns/);
  assertError(alpn(Buffer.concat([u16(4), Buffer.from([2, 0x68, 0x32])])), /list length mismatch/);
  assertError(
    parseClientHello(withExtensions(extension(16, alpnData('h2')), extension(16, alpnData('http/1.1')))),
    /duplicate ALPN/,
  );
});

function assertWellFormed(result: ClientHelloResult): void {
  assert.ok(KINDS.has(result.kind));
  if (result.kind === 'hello') {
    const name = result.info.serverName;
    if (name !== null) assert.match(name, /^(?!\.)(?!.*\.\.)[a-z0-9_.-]{1,253}(?<!\.)$/);
    for (const p of result.info.alpn) assert.ok(p.length > 0);
  } else if (result.kind === 'error') {
    assert.ok(result.reason.length > 0);
  }
}

test('fuzz: random bytes never throw', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (bytes, asRecord) => {
      const data = asRecord ? record(Buffer.from(bytes)) : Buffer.from(bytes);
      assertWellFormed(parseClientHello(data));
    }),
    { numRuns: 2000 },
  );
});

test('fuzz: mutated real hellos never throw and never yield a bad name', () => {
  const mutation = fc.record({
    which: fc.integer({ min: 0, max: 2 }),
    edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
    cut: fc.option(fc.nat()),
    records: fc.option(fc.integer({ min: 1, max: 400 })),
  });
  fc.assert(
    fc.property(mutation, ({ which, edits, cut, records }) => {
      const source = [sniHello, ipHello, tls12Hello][which];
      let data = Buffer.from(records === null ? source : reframe(source, [records]));
      for (const [at, value] of edits) data[at % data.length] = value;
      if (cut !== null) data = data.subarray(0, cut % (data.length + 1));
      assertWellFormed(parseClientHello(data));
    }),
    { numRuns: 3000 },
  );
});

test('fuzz: any framing of up to 16 records gives the same answer', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 2000 }), { minLength: 1, maxLength: 20 }), (sizes) => {
      const framed = reframe(sniHello, sizes);
      let count = 0;
      for (let p = 0; p < framed.length; p += 5 + framed.readUInt16BE(p + 3)) count++;
      const result = parseClientHello(framed);
      if (count <= MAX_CLIENT_HELLO_RECORDS) assert.deepEqual(result, parseClientHello(sniHello));
      else assertError(result, /16 records/);
    }),
    { numRuns: 500 },
  );
});
