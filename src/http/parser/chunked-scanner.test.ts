import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChunkedScanner } from './chunked-scanner.ts';
import { httpLimits } from './limits.ts';

const bin = (s: string): Buffer => Buffer.from(s, 'latin1');

interface Verdict {
  consumed: number;
  done: boolean;
  error: string | null;
  bodyBytes: number;
}

/** Scans `body` fed in pieces cut at `cuts`, the way the engine feeds socket reads. */
function scanIn(body: string, cuts: number[], scanner = new ChunkedScanner()): Verdict {
  const b = bin(body);
  let consumed = 0;
  let from = 0;
  for (const to of [...cuts, b.length]) {
    if (to < from) continue;
    const n = scanner.scan(b, from, to);
    if (n < 0) return { consumed: -1, done: false, error: scanner.error!.code, bodyBytes: scanner.bodyBytes };
    consumed += n;
    if (scanner.done) break;
    assert.equal(n, to - from, 'a body still going on consumes everything it is given');
    from = to;
  }
  return { consumed, done: scanner.done, error: null, bodyBytes: scanner.bodyBytes };
}

function scan(body: string): Verdict {
  return scanIn(body, []);
}

function acceptsWhole(body: string, size: number): void {
  const v = scan(`${body}NEXT`);
  assert.deepEqual(v, { consumed: body.length, done: true, error: null, bodyBytes: size }, JSON.stringify(body));
}

function rejects(body: string, code = 'SY_HTTP_BAD_CHUNK'): void {
  const v = scan(body);
  assert.equal(v.error, code, `expected ${code} for ${JSON.stringify(body)}, got ${JSON.stringify(v)}`);
}

test('finds the end of valid chunked bodies', () => {
  acceptsWhole('0\r\n\r\n', 0);
  acceptsWhole('5\r\nhello\r\n0\r\n\r\n', 5);
  acceptsWhole('5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n', 11);
  acceptsWhole('A\r\n0123456789\r\nb\r\n0123456789a\r\n0\r\n\r\n', 21);
  acceptsWhole('0005\r\nhello\r\n000\r\n\r\n', 5);
  acceptsWhole('5;a\r\nhello\r\n0;b=c\r\n\r\n', 5);
  acceptsWhole('5;a=b;c="d; e\\"f\\\\";g\r\nhello\r\n0\r\n\r\n', 5);
  acceptsWhole('5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-B:\r\n\r\n', 5);
  acceptsWhole('4\r\n\r\n\r\n\r\n0\r\n\r\n', 4);
});

test('rejects bad chunk sizes', () => {
  for (const size of ['', '0x5', '+5', '-5', ' 5', '5 ', '5\t', 'g', '5g', '\r\n5'])
    rejects(`${size}\r\nhello\r\n0\r\n\r\n`);
  rejects('fffffffffffffffff\r\n');
  rejects('00000000000000005\r\nhello\r\n0\r\n\r\n');
  rejects('20000000000000\r\n');
  acceptsWhole(`0000000000000000\r\n\r\n`, 0);
});

test('rejects bad extensions and line ends', () => {
  for (const ext of [
    ';',
    ';;',
    ';=v',
    ';a=',
    ';a =b',
    '; a',
    ' ;a',
    ';a=b c',
    ';a="x',
    ';a="x"y',
    ';a=b,c',
    ';a\x00',
    ';a="\x00"',
    ';\xe9',
  ]) {
    rejects(`5${ext}\r\nhello\r\n0\r\n\r\n`);
  }
  rejects('5\nhello\r\n0\r\n\r\n');
  rejects('5\r\rhello\r\n0\r\n\r\n');
  rejects('5\r\nhello\n0\r\n\r\n');
  rejects('5\r\nhelloX\r\n0\r\n\r\n');
  rejects('5\r\nhello0\r\n\r\n');
  rejects('5\r\nhello\r\n0\n\r\n');
  rejects('5\r\nhello\r\n0\r\n\r\r');
});

test('trailers are validated like header fields', () => {
  for (const t of ['X Y: v', 'X-Y : v', 'X-Y v', 'X-Y: v\x00', ': v', '\x80: v', 'X-Y: v\x7f']) {
    rejects(`0\r\n${t}\r\n\r\n`, 'SY_HTTP_BAD_TRAILER');
  }
  rejects('0\r\nX: v\r\n folded\r\n\r\n', 'SY_HTTP_BAD_TRAILER');
  rejects('0\r\nX: v\n\r\n', 'SY_HTTP_BAD_TRAILER');
  rejects('5\r\nhello\r\n0\r\n\n', 'SY_HTTP_BAD_TRAILER');
  for (const name of [
    'Content-Length',
    'transfer-encoding',
    'HOST',
    'Connection',
    'Trailer',
    'TE',
    'Upgrade',
    'Expect',
    'Keep-Alive',
    'Proxy-Connection',
  ]) {
    rejects(`0\r\n${name}: x\r\n\r\n`, 'SY_HTTP_BAD_TRAILER');
  }
  for (const name of ['Hosts', 'Hos', 'Content-Lengths', 'T', 'TEE', 'X-Content-Length'])
    acceptsWhole(`0\r\n${name}: x\r\n\r\n`, 0);
});

test('limits: body size, extension bytes, trailer size and count', () => {
  const limits = httpLimits({ maxChunkExtBytes: 8, maxTrailerBytes: 20, maxHeaders: 2 });
  const scanner = new ChunkedScanner(limits, 10);
  assert.equal(scanIn('5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n', [], scanner).error, null);
  assert.equal(
    scanIn('5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n', [], scanner.reset(limits, 10)).error,
    'SY_HTTP_BODY_TOO_LARGE',
  );
  assert.equal(scanIn('1;abcdef\r\nx\r\n0\r\n\r\n', [], scanner.reset(limits)).error, null);
  assert.equal(scanIn('1;abc\r\nx\r\n0;de\r\n\r\n', [], scanner.reset(limits)).error, 'SY_HTTP_BAD_CHUNK');
  assert.equal(scanIn('0\r\nA: 1\r\nB: 2345678\r\n\r\n', [], scanner.reset(limits)).error, null);
  assert.equal(
    scanIn('0\r\nA: 1\r\nB: 23456789\r\n\r\n', [], scanner.reset(limits)).error,
    'SY_HTTP_TRAILERS_TOO_LARGE',
  );
  assert.equal(
    scanIn('0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n', [], scanner.reset(limits)).error,
    'SY_HTTP_TRAILERS_TOO_LARGE',
  );
  const upstream = new ChunkedScanner(limits, 4, true);
  assert.equal(scanIn('5\r\nhello\r\n0\r\n\r\n', [], upstream).error, 'SY_UPS_BAD_CHUNK');
  assert.equal(upstream.error!.status, 502);
  assert.equal(scanIn('x', [], upstream.reset(limits, Number.POSITIVE_INFINITY, true)).error, 'SY_UPS_BAD_CHUNK');
});

test('reports only its own bytes, once done, and stays failed until reset', () => {
  const scanner = new ChunkedScanner();
  const b = bin('3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n');
  assert.equal(scanner.scan(b, 0, b.length), 13);
  assert.equal(scanner.done, true);
  assert.equal(scanner.scan(b, 13, b.length), 0);
  const bad = bin('zz');
  assert.equal(scanner.reset().scan(bad, 0, 2), -1);
  assert.equal(scanner.scan(bin('0\r\n\r\n'), 0, 5), -1);
  assert.equal(scanner.reset().scan(bin('0\r\n\r\n'), 0, 5), 5);
});

test('a large chunk is skipped without looking at its bytes', () => {
  const size = 1 << 20;
  const body = Buffer.concat([bin(`${size.toString(16)}\r\n`), Buffer.alloc(size, 0), bin('\r\n0\r\n\r\n')]);
  const scanner = new ChunkedScanner();
  let from = 0;
  while (!scanner.done) {
    const to = Math.min(body.length, from + 65536);
    const n = scanner.scan(body, from, to);
    assert.ok(n >= 0);
    from += n;
  }
  assert.equal(from, body.length);
  assert.equal(scanner.bodyBytes, size);
});

test('split at every offset, and byte by byte, gives the same verdict', () => {
  const bodies = [
    '5\r\nhello\r\n0\r\n\r\nNEXT',
    '5;a="b\\"c";d=e\r\nhello\r\n0;x\r\nT: v\r\nU:w\r\n\r\n',
    'a\r\n0123456789\r\n0\r\n\r\n',
    '5\r\nhello\r\n0\r\nHost: x\r\n\r\n',
    '5\r\nhelloX',
    '5 \r\nhello',
    '0\r\nX: a\r\n b\r\n\r\n',
    'fffffffffffffffff\r\n',
  ];
  for (const body of bodies) {
    const whole = scan(body);
    for (let cut = 0; cut <= body.length; cut++)
      assert.deepEqual(scanIn(body, [cut]), whole, `${JSON.stringify(body)} cut ${cut}`);
    assert.deepEqual(
      scanIn(
        body,
        Array.from({ length: body.length }, (_, i) => i),
      ),
      whole,
    );
  }
});
