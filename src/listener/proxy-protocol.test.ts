import assert from 'node:assert/strict';
import { SocketAddress } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  encodeProxyV1,
  encodeProxyV2,
  PROXY_V1_MAX_LENGTH,
  type ProxyHeader,
  type ProxyParseResult,
  parseProxyHeader,
} from './proxy-protocol.ts';

const V2_SIGNATURE = Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1');

function parse(text: string | Buffer): ProxyParseResult {
  return parseProxyHeader(typeof text === 'string' ? Buffer.from(text, 'latin1') : text);
}

function headerOf(result: ProxyParseResult): ProxyHeader {
  assert.equal(result.kind, 'header', `expected header, got ${JSON.stringify(result)}`);
  if (result.kind !== 'header') throw new Error('unreachable');
  return result.header;
}

function assertError(result: ProxyParseResult, pattern?: RegExp): void {
  assert.equal(result.kind, 'error', `expected error, got ${JSON.stringify(result)}`);
  if (pattern && result.kind === 'error') assert.match(result.reason, pattern);
}

/** A raw v2 header: signature, version/command byte, family byte, then `block` with its length. */
function v2(versionCommand: number, familyProtocol: number, block: Buffer, declaredLength = block.length): Buffer {
  const fixed = Buffer.from([versionCommand, familyProtocol, declaredLength >> 8, declaredLength & 0xff]);
  return Buffer.concat([V2_SIGNATURE, fixed, block]);
}

/** What node:net renders for an IPv6 address, with IPv4-mapped ones unmapped as the parser does. */
function canonical(address: string): string {
  const text = new SocketAddress({ address, family: 'ipv6' }).address;
  return text.startsWith('::ffff:') && text.includes('.') ? text.slice(7) : text;
}

test('v1 TCP4 round trip', () => {
  const bytes = encodeProxyV1({
    family: 'tcp4',
    sourceAddress: '192.168.0.1',
    sourcePort: 56324,
    destAddress: '192.168.0.11',
    destPort: 443,
  });
  assert.equal(bytes.toString('latin1'), 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
  const withPayload = Buffer.concat([bytes, Buffer.from('GET / HTTP/1.1\r\n\r\n')]);
  assert.deepEqual(headerOf(parseProxyHeader(withPayload)), {
    version: 1,
    command: 'proxy',
    family: 'tcp4',
    sourceAddress: '192.168.0.1',
    sourcePort: 56324,
    destAddress: '192.168.0.11',
    destPort: 443,
    length: bytes.length,
  });
});

test('v1 TCP6 round trip renders addresses in canonical form', () => {
  const line = 'PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::FFFF:10.0.0.1 0 65535\r\n';
  const h = headerOf(parse(line));
  assert.deepEqual(h, {
    version: 1,
    command: 'proxy',
    family: 'tcp6',
    sourceAddress: '2001:db8::1',
    sourcePort: 0,
    destAddress: '10.0.0.1',
    destPort: 65535,
    length: line.length,
  });
  const bytes = encodeProxyV1({
    family: 'tcp6',
    sourceAddress: '2001:db8::1',
    sourcePort: 1,
    destAddress: '10.0.0.1',
    destPort: 2,
  });
  assert.equal(bytes.toString('latin1'), 'PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 1 2\r\n');
  const back = headerOf(parseProxyHeader(bytes));
  assert.equal(back.sourceAddress, '2001:db8::1');
  assert.equal(back.destAddress, '10.0.0.1');
  // The worst-case line of spec §2.1 (all groups 0xffff) is exactly within the limit.
  const full = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
  assert.equal(headerOf(parse(`PROXY TCP6 ${full} ${full} 65535 65535\r\n`)).length, 104);
});

test('v1 UNKNOWN maps to local and ignores the rest of the line', () => {
  const short = encodeProxyV1({ family: 'unknown' });
  assert.equal(short.toString('latin1'), 'PROXY UNKNOWN\r\n');
  assert.deepEqual(headerOf(parseProxyHeader(short)), {
    version: 1,
    command: 'local',
    family: 'unknown',
    sourceAddress: null,
    sourcePort: null,
    destAddress: null,
    destPort: null,
    length: 15,
  });
  const longest = `PROXY UNKNOWN ${'f'.repeat(PROXY_V1_MAX_LENGTH - 16)}\r\n`;
  assert.equal(longest.length, PROXY_V1_MAX_LENGTH);
  assert.equal(headerOf(parse(longest)).length, PROXY_V1_MAX_LENGTH);
  assert.equal(headerOf(parse('PROXY UNKNOWN anything goes 1 2 3\r\n')).command, 'local');
});

test('v2 TCP4 round trip with TLVs', () => {
  const tlvs = Buffer.from([0x04, 0x00, 0x03, 0x61, 0x62, 0x63]);
  const bytes = encodeProxyV2({
    command: 'proxy',
    family: 'tcp4',
    sourceAddress: '10.1.2.3',
    sourcePort: 40000,
    destAddress: '10.9.8.7',
    destPort: 8443,
    tlvs,
  });
  assert.equal(bytes.length, 16 + 12 + tlvs.length);
  assert.deepEqual(bytes.subarray(12, 16), Buffer.from([0x21, 0x11, 0x00, 18]));
  const withPayload = Buffer.concat([bytes, Buffer.from([0x16, 0x03, 0x01])]);
  assert.deepEqual(headerOf(parseProxyHeader(withPayload)), {
    version: 2,
    command: 'proxy',
    family: 'tcp4',
    sourceAddress: '10.1.2.3',
    sourcePort: 40000,
    destAddress: '10.9.8.7',
    destPort: 8443,
    length: 34,
  });
});

test('v2 TCP6 round trip, IPv4-mapped rendered as IPv4', () => {
  const bytes = encodeProxyV2({
    command: 'proxy',
    family: 'tcp6',
    sourceAddress: 'fe80:0:0:0:0:0:0:AB',
    sourcePort: 1,
    destAddress: '::ffff:127.0.0.1',
    destPort: 65535,
  });
  assert.equal(bytes.length, 52);
  assert.deepEqual(headerOf(parseProxyHeader(bytes)), {
    version: 2,
    command: 'proxy',
    family: 'tcp6',
    sourceAddress: 'fe80::ab',
    sourcePort: 1,
    destAddress: '127.0.0.1',
    destPort: 65535,
    length: 52,
  });
  const fromV4 = encodeProxyV2({
    command: 'proxy',
    family: 'tcp6',
    sourceAddress: '1.2.3.4',
    sourcePort: 5,
    destAddress: '::',
    destPort: 6,
  });
  const h = headerOf(parseProxyHeader(fromV4));
  assert.equal(h.sourceAddress, '1.2.3.4');
  assert.equal(h.destAddress, '::');
});

test('v2 LOCAL maps to local and skips whatever block it carries', () => {
  const bare = encodeProxyV2({ command: 'local', family: 'unknown' });
  assert.deepEqual(bare, Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]));
  assert.deepEqual(headerOf(parseProxyHeader(bare)), {
    version: 2,
    command: 'local',
    family: 'unknown',
    sourceAddress: null,
    sourcePort: null,
    destAddress: null,
    destPort: null,
    length: 16,
  });
  // spec §2.2: must not assume zero length for LOCAL; the family byte is ignored, even unassigned.
  const withBlock = encodeProxyV2({
    command: 'local',
    family: 'tcp4',
    sourceAddress: '1.1.1.1',
    sourcePort: 1,
    destAddress: '2.2.2.2',
    destPort: 2,
  });
  assert.equal(headerOf(parseProxyHeader(withBlock)).length, 28);
  assert.equal(headerOf(parseProxyHeader(withBlock)).family, 'unknown');
  assert.equal(headerOf(parse(v2(0x20, 0xff, Buffer.alloc(3)))).length, 19);
});

test('v2 PROXY with UNSPEC, UNIX or UDP is accepted as unknown', () => {
  for (const [familyProtocol, size] of [
    [0x00, 0],
    [0x00, 7],
    [0x31, 216],
    [0x32, 216],
    [0x12, 12],
    [0x22, 36],
    [0x10, 0],
  ]) {
    const h = headerOf(parse(v2(0x21, familyProtocol, Buffer.alloc(size, 1))));
    assert.deepEqual(
      [h.command, h.family, h.sourceAddress, h.sourcePort, h.length],
      ['proxy', 'unknown', null, null, 16 + size],
    );
  }
});

test('every split of a header needs more until complete', () => {
  const samples = [
    encodeProxyV1({ family: 'tcp4', sourceAddress: '1.2.3.4', sourcePort: 1, destAddress: '5.6.7.8', destPort: 2 }),
    encodeProxyV1({ family: 'tcp6', sourceAddress: '::1', sourcePort: 1, destAddress: '2001:db8::2', destPort: 2 }),
    encodeProxyV1({ family: 'unknown' }),
    encodeProxyV2({
      command: 'proxy',
      family: 'tcp4',
      sourceAddress: '1.2.3.4',
      sourcePort: 1,
      destAddress: '5.6.7.8',
      destPort: 2,
    }),
    encodeProxyV2({
      command: 'proxy',
      family: 'tcp6',
      sourceAddress: '::1',
      sourcePort: 1,
      destAddress: '::2',
      destPort: 2,
      tlvs: Buffer.alloc(40, 0xee),
    }),
    encodeProxyV2({ command: 'local', family: 'unknown' }),
  ];
  for (const bytes of samples) {
    const whole = parseProxyHeader(bytes);
    assert.equal(whole.kind, 'header');
    for (let k = 0; k < bytes.length; k++) {
      assert.deepEqual(parseProxyHeader(bytes.subarray(0, k)), { kind: 'need-more' }, `${k} of ${bytes.length}`);
    }
    assert.deepEqual(parseProxyHeader(Buffer.concat([bytes, Buffer.from('payload')])), whole);
  }
});

test('plain client bytes are none from the first byte that rules out a signature', () => {
  assert.deepEqual(parse('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), { kind: 'none' });
  assert.deepEqual(parse('G'), { kind: 'none' });
  assert.deepEqual(parse(Buffer.from([0x16, 0x03, 0x01])), { kind: 'none' });
  assert.deepEqual(parse(Buffer.from([0x16])), { kind: 'none' });
  assert.deepEqual(parse('PUT /x HTTP/1.1\r\n'), { kind: 'none' });
  assert.deepEqual(parse('PRI * HTTP/2.0\r\n'), { kind: 'none' });
  assert.deepEqual(parse('PROXYZ'), { kind: 'none' });
  assert.deepEqual(parse('proxy TCP4'), { kind: 'none' });
  // RFC 9112 §2.2 lets clients send an empty line before the request line.
  assert.deepEqual(parse('\r\nGET'), { kind: 'none' });
  assert.deepEqual(parse('\r\n\r\n\0\r\nQUIX'), { kind: 'none' });
  assert.deepEqual(parse(''), { kind: 'need-more' });
  assert.deepEqual(parse('P'), { kind: 'need-more' });
  assert.deepEqual(parse('PROXY'), { kind: 'need-more' });
  assert.deepEqual(parse('\r'), { kind: 'need-more' });
  assert.deepEqual(parse('\r\n\r\n\0'), { kind: 'need-more' });
});

test('v1 malformed lines', () => {
  const bad: [string, RegExp][] = [
    ['PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n', /protocol/],
    ['PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n', /protocol/],
    ['PROXY UNKNOWNX\r\n', /protocol/],
    ['PROXY \r\n', /protocol/],
    ['PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n', /protocol/],
    ['PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n', /fields/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n', /fields/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n', /fields/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n', /fields/],
    ['PROXY TCP4 1.2.3.4 ::1 1 2\r\n', /address/],
    ['PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n', /address/],
    ['PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n', /address/],
    ['PROXY TCP4 localhost 5.6.7.8 1 2\r\n', /address/],
    ['PROXY TCP6 1.2.3.4 ::1 1 2\r\n', /address/],
    ['PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n', /address/],
    ['PROXY TCP6 1::2::3 ::1 1 2\r\n', /address/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n', /port/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n', /port/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n', /port/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n', /port/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n', /port/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 100000 2\r\n', /port/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 0x1\r\n', /port/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', /without CR/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX', /CRLF/],
    ['PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n', /non-printable/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\0\r\n', /non-printable/],
    ['PROXY UNKNOWN caf\u00e9\r\n', /non-printable/],
  ];
  for (const [line, pattern] of bad) assertError(parse(line), pattern);
});

test('v1 without CRLF in 107 bytes is an error, decided at byte 106', () => {
  const long = `PROXY UNKNOWN ${'a'.repeat(200)}`;
  assert.deepEqual(parse(long.slice(0, PROXY_V1_MAX_LENGTH - 2)), { kind: 'need-more' });
  assertError(parse(long.slice(0, PROXY_V1_MAX_LENGTH - 1)), /107/);
  assertError(parse(long), /107/);
  // CRLF one byte too late: a 108-byte line.
  assertError(parse(`PROXY UNKNOWN ${'f'.repeat(PROXY_V1_MAX_LENGTH - 15)}\r\n`), /107/);
});

test('v2 malformed headers', () => {
  const block = Buffer.alloc(12, 1);
  assertError(parse(v2(0x11, 0x11, block)), /version/);
  assertError(parse(v2(0x31, 0x11, block)), /version/);
  assertError(parse(v2(0x01, 0x11, block)), /version/);
  assertError(parse(v2(0x22, 0x11, block)), /command/);
  assertError(parse(v2(0x2f, 0x11, block)), /command/);
  assertError(parse(v2(0x21, 0x41, block)), /unassigned/);
  assertError(parse(v2(0x21, 0x13, block)), /unassigned/);
  assertError(parse(v2(0x21, 0xf0, block)), /unassigned/);
  assertError(parse(v2(0x21, 0x11, Buffer.alloc(11))), /too short/);
  assertError(parse(v2(0x21, 0x21, Buffer.alloc(35))), /too short/);
  assertError(parse(v2(0x21, 0x31, Buffer.alloc(215))), /too short/);
  // Decided from the fixed 16 bytes, before the block arrives.
  assertError(parse(v2(0x21, 0x21, Buffer.alloc(0), 12)), /too short/);
  assertError(parse(Buffer.concat([V2_SIGNATURE, Buffer.from([0x10])])), /version/);
  // Truncated: the block is shorter than its length field says.
  assert.deepEqual(parse(v2(0x21, 0x11, block, 13)), { kind: 'need-more' });
  assert.deepEqual(parse(v2(0x21, 0x11, Buffer.alloc(0), 65535)), { kind: 'need-more' });
  // A length that leaves room for TLVs is fine; they are skipped.
  assert.equal(headerOf(parse(v2(0x21, 0x11, Buffer.alloc(20, 9)))).length, 36);
});

test('encoders refuse arguments that do not fit the family', () => {
  assert.throws(
    () => encodeProxyV1({ family: 'tcp4', sourceAddress: '::1', sourcePort: 1, destAddress: '1.1.1.1', destPort: 2 }),
    TypeError,
  );
  assert.throws(
    () =>
      encodeProxyV1({ family: 'tcp6', sourceAddress: 'fe80::1%lo', sourcePort: 1, destAddress: '::1', destPort: 2 }),
    TypeError,
  );
  assert.throws(
    () =>
      encodeProxyV1({
        family: 'tcp4',
        sourceAddress: '1.1.1.1',
        sourcePort: 70000,
        destAddress: '1.1.1.1',
        destPort: 2,
      }),
    RangeError,
  );
  assert.throws(
    () => encodeProxyV1({ family: 'tcp4', sourceAddress: '1.1.1.1', destAddress: '1.1.1.1', destPort: 2 }),
    RangeError,
  );
  assert.throws(
    () =>
      encodeProxyV2({
        command: 'proxy',
        family: 'tcp4',
        sourceAddress: '1.1.1.1',
        sourcePort: 1.5,
        destAddress: '1.1.1.1',
        destPort: 2,
      }),
    RangeError,
  );
  assert.throws(
    () =>
      encodeProxyV2({
        command: 'proxy',
        family: 'tcp6',
        sourceAddress: 'nope',
        sourcePort: 1,
        destAddress: '::1',
        destPort: 2,
      }),
    TypeError,
  );
  assert.throws(
    () => encodeProxyV2({ command: 'proxy', family: 'tcp4', destAddress: '1.1.1.1', sourcePort: 1, destPort: 2 }),
    TypeError,
  );
  assert.throws(() => encodeProxyV2({ command: 'proxy', family: 'unknown', tlvs: Buffer.alloc(65536) }), RangeError);
  assert.equal(encodeProxyV2({ command: 'proxy', family: 'unknown', tlvs: Buffer.alloc(65535) }).length, 65551);
});

test('IPv6 rendering matches node:net for every address shape', () => {
  const word = fc.oneof(fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff }));
  fc.assert(
    fc.property(fc.array(word, { minLength: 8, maxLength: 8 }), (words) => {
      const block = Buffer.alloc(36);
      for (let i = 0; i < 8; i++) block.writeUInt16BE(words[i], 2 * i);
      const h = headerOf(parse(v2(0x21, 0x21, block)));
      const full = words.map((w) => w.toString(16)).join(':');
      assert.equal(h.sourceAddress, canonical(full));
    }),
    { numRuns: 3000 },
  );
  const edge = ['::', '::1', '::2', '1::', '::ffff:0', '::ffff:1.2.3.4', '::1.2.3.4', '1:0:0:2:0:0:3:4', '0:0:1::'];
  for (const address of edge) {
    const h = headerOf(
      parseProxyHeader(
        encodeProxyV2({
          command: 'proxy',
          family: 'tcp6',
          sourceAddress: address,
          sourcePort: 0,
          destAddress: address,
          destPort: 0,
        }),
      ),
    );
    assert.equal(h.sourceAddress, canonical(address), address);
  }
});

test('fuzz: encode then parse gives the canonical addresses back, v1 and v2', () => {
  const port = fc.integer({ min: 0, max: 65535 });
  const v4 = fc.record({ family: fc.constant('tcp4' as const), a: fc.ipV4(), b: fc.ipV4(), sp: port, dp: port });
  const v6 = fc.record({ family: fc.constant('tcp6' as const), a: fc.ipV6(), b: fc.ipV6(), sp: port, dp: port });
  fc.assert(
    fc.property(fc.oneof(v4, v6), fc.boolean(), ({ family, a, b, sp, dp }, useV2) => {
      const fields = { family, sourceAddress: a, sourcePort: sp, destAddress: b, destPort: dp };
      const bytes = useV2 ? encodeProxyV2({ command: 'proxy', ...fields }) : encodeProxyV1(fields);
      const h = headerOf(parseProxyHeader(bytes));
      const expect = (x: string) => (family === 'tcp4' ? x : canonical(x));
      assert.deepEqual(h, {
        version: useV2 ? 2 : 1,
        command: 'proxy',
        family,
        sourceAddress: expect(a),
        sourcePort: sp,
        destAddress: expect(b),
        destPort: dp,
        length: bytes.length,
      });
    }),
    { numRuns: 2000 },
  );
});

const KINDS = new Set(['none', 'need-more', 'header', 'error']);

function assertWellFormed(result: ProxyParseResult, input: Buffer): void {
  assert.ok(KINDS.has(result.kind));
  if (result.kind === 'header') {
    assert.ok(result.header.length > 0 && result.header.length <= input.length);
    if (result.header.version === 1) assert.ok(result.header.length <= PROXY_V1_MAX_LENGTH);
  }
}

test('fuzz: random and mutated bytes never throw', () => {
  const prefix = fc.constantFrom(
    Buffer.alloc(0),
    V2_SIGNATURE,
    Buffer.from('PROXY ', 'latin1'),
    Buffer.from('PROXY TCP4 ', 'latin1'),
    Buffer.from('PROXY TCP6 ', 'latin1'),
  );
  fc.assert(
    fc.property(prefix, fc.uint8Array({ maxLength: 300 }), (head, tail) => {
      const data = Buffer.concat([head, tail]);
      assertWellFormed(parseProxyHeader(data), data);
    }),
    { numRuns: 3000 },
  );
  const text = fc.array(fc.constantFrom(...'PROXY TCP46UNKOW0123456789.:abcdef \r\n'), { maxLength: 110 });
  fc.assert(
    fc.property(text, (chars) => {
      const data = Buffer.from(`PROXY ${chars.join('')}`, 'latin1');
      assertWellFormed(parseProxyHeader(data), data);
    }),
    { numRuns: 3000 },
  );
  const valid = [
    encodeProxyV1({ family: 'tcp6', sourceAddress: '::1', sourcePort: 1, destAddress: '2001:db8::2', destPort: 2 }),
    encodeProxyV2({
      command: 'proxy',
      family: 'tcp6',
      sourceAddress: '::1',
      sourcePort: 1,
      destAddress: '::2',
      destPort: 2,
      tlvs: Buffer.alloc(8),
    }),
  ];
  fc.assert(
    fc.property(
      fc.constantFrom(...valid),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
      fc.nat(),
      (source, edits, cut) => {
        let data = Buffer.from(source);
        for (const [at, value] of edits) data[at % data.length] = value;
        data = data.subarray(0, cut % (data.length + 1));
        assertWellFormed(parseProxyHeader(data), data);
      },
    ),
    { numRuns: 3000 },
  );
});
