import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HeadProgress } from './head-scanner.ts';
import { type HttpLimits, httpLimits } from './limits.ts';
import { parseRequestHead, RequestHead, type RequestHeadResult } from './request-head.ts';

const bin = (s: string): Buffer => Buffer.from(s, 'latin1');
const req = (...lines: string[]): string => `${lines.join('\r\n')}\r\n\r\n`;

function parse(s: string, limits?: HttpLimits): RequestHeadResult {
  const b = bin(s);
  return parseRequestHead(b, 0, b.length, limits);
}

function ok(s: string, limits?: HttpLimits): RequestHead {
  const r = parse(s, limits);
  assert.equal(r.kind, 'ok', `expected ok, got ${JSON.stringify(r)}`);
  return r as RequestHead;
}

function rejects(s: string, status: number, code: string, limits?: HttpLimits): void {
  const r = parse(s, limits);
  assert.equal(r.kind, 'error', `expected ${code} for ${JSON.stringify(s)}, got ${JSON.stringify(r)}`);
  if (r.kind !== 'error') return;
  assert.equal(r.code, code, `for ${JSON.stringify(s)}: ${r.reason}`);
  assert.equal(r.status, status);
}

/** Feeds every prefix of `s` in turn, with and without resume, and checks each agrees with the whole. */
function assertSplitInvariant(s: string, limits?: HttpLimits): void {
  const b = bin(s);
  const whole = parseRequestHead(b, 0, b.length, limits);
  let progress: HeadProgress | null = null;
  let decided: RequestHeadResult | null = null;
  for (let end = 0; end <= b.length; end++) {
    const fresh = parseRequestHead(b, 0, end, limits);
    const resumed = parseRequestHead(b, 0, end, limits, progress);
    assert.deepEqual(resumed, fresh, `resume differs at ${end} of ${JSON.stringify(s)}`);
    if (fresh.kind === 'incomplete') {
      assert.equal(decided, null, `incomplete after a verdict at ${end}`);
      progress = resumed as HeadProgress;
      continue;
    }
    assert.deepEqual(fresh, whole, `verdict at ${end} differs from whole for ${JSON.stringify(s)}`);
    decided = fresh;
  }
  // A head offset inside a larger buffer (pipelining) parses the same.
  const shifted = Buffer.concat([bin('xyz'), b]);
  const r = parseRequestHead(shifted, 3, shifted.length, limits);
  assert.deepEqual(r, whole);
}

test('parses a browser-like request head', () => {
  const h = ok(
    `${req(
      'GET /search?q=a+b HTTP/1.1',
      'Host: www.example.com',
      'User-Agent: Mozilla/5.0 (X11; Linux x86_64)',
      'Accept:text/html,*/*;q=0.8',
      'X-Pad: \t padded value \t ',
      'Connection: keep-alive, X-Trace',
      'Cookie: a=1; b=2',
    )}BODY`,
  );
  assert.ok(h instanceof RequestHead);
  assert.equal(h.method, 'GET');
  assert.equal(h.target, '/search?q=a+b');
  assert.equal(h.targetForm, 'origin');
  assert.equal(h.pathOffset, 0);
  assert.equal(h.versionMinor, 1);
  assert.deepEqual(h.headers, [
    'Host',
    'www.example.com',
    'User-Agent',
    'Mozilla/5.0 (X11; Linux x86_64)',
    'Accept',
    'text/html,*/*;q=0.8',
    'X-Pad',
    'padded value',
    'Connection',
    'keep-alive, X-Trace',
    'Cookie',
    'a=1; b=2',
  ]);
  assert.equal(h.host, 'www.example.com');
  assert.deepEqual(h.connectionTokens, ['keep-alive', 'x-trace']);
  assert.equal(h.keepAlive, true);
  assert.equal(h.contentLength, -1);
  assert.equal(h.chunked, false);
  assert.equal(h.upgrade, false);
  assert.equal(h.expectContinue, false);
  assert.equal(h.consumed, bin(h.headers.join('')).length > 0 ? h.consumed : 0);
  const text = req('GET /search?q=a+b HTTP/1.1', 'Host: www.example.com');
  assert.equal(ok(`${text}BODY`).consumed, text.length);
});

test('framing facts: Content-Length, chunked, keep-alive, upgrade, Expect', () => {
  assert.equal(ok(req('POST / HTTP/1.1', 'Host: a', 'Content-Length: 0042')).contentLength, 42);
  assert.equal(ok(req('POST / HTTP/1.1', 'Host: a', 'Content-Length:  7  ')).contentLength, 7);
  assert.equal(
    ok(req('POST / HTTP/1.1', 'Host: a', `Content-Length: ${'9'.repeat(15)}`)).contentLength,
    999999999999999,
  );
  const c = ok(req('POST / HTTP/1.1', 'Host: a', 'transfer-encoding: ChUnKeD'));
  assert.equal(c.chunked, true);
  assert.equal(c.contentLength, -1);
  assert.equal(ok(req('GET / HTTP/1.1', 'Host: a', 'Connection: close')).keepAlive, false);
  assert.equal(ok(req('GET / HTTP/1.1', 'Host: a', 'Connection: keep-alive, close')).keepAlive, false);
  assert.equal(ok(req('GET / HTTP/1.0')).keepAlive, false);
  assert.equal(ok(req('GET / HTTP/1.0')).host, null);
  assert.equal(ok(req('GET / HTTP/1.0', 'Connection: Keep-Alive')).keepAlive, true);
  const u = ok(req('GET /ws HTTP/1.1', 'Host: a', 'Connection: Upgrade', 'Upgrade: websocket'));
  assert.equal(u.upgrade, true);
  assert.deepEqual(u.connectionTokens, ['upgrade']);
  assert.equal(ok(req('GET /ws HTTP/1.1', 'Host: a', 'Upgrade: websocket')).upgrade, false);
  assert.equal(ok(req('GET /ws HTTP/1.1', 'Host: a', 'Connection: upgrade')).upgrade, false);
  assert.equal(ok(req('PUT / HTTP/1.1', 'Host: a', 'Expect: 100-Continue')).expectContinue, true);
  assert.equal(ok(req('PUT / HTTP/1.0', 'Expect: 100-continue')).expectContinue, false);
  assert.equal(ok(req('PUT / HTTP/1.1', 'Host: a', 'Expect: something')).expectContinue, false);
  assert.equal(ok(req('GET / HTTP/1.1', 'Host: a', 'Connection: ,, close ,')).keepAlive, false);
});

test('methods: common ones are interned, extension tokens accepted, long ones 501', () => {
  for (const m of [
    'GET',
    'HEAD',
    'POST',
    'PUT',
    'DELETE',
    'OPTIONS',
    'PATCH',
    'TRACE',
    'PROPFIND',
    'M-SEARCH',
    'get',
  ]) {
    assert.equal(ok(req(`${m} / HTTP/1.1`, 'Host: a')).method, m);
  }
  assert.equal(ok(req(`${'A'.repeat(32)} / HTTP/1.1`, 'Host: a')).method, 'A'.repeat(32));
  rejects(req(`${'A'.repeat(33)} / HTTP/1.1`, 'Host: a'), 501, 'SY_HTTP_METHOD_NOT_IMPLEMENTED');
  rejects(`${'A'.repeat(33)}`, 501, 'SY_HTTP_METHOD_NOT_IMPLEMENTED');
  rejects(req('G(T / HTTP/1.1', 'Host: a'), 400, 'SY_HTTP_BAD_REQUEST_LINE');
  rejects(req('GE\x00T / HTTP/1.1', 'Host: a'), 400, 'SY_HTTP_BAD_REQUEST_LINE');
});

test('request line: single spaces, CRLF, HTTP/1.0 or 1.1', () => {
  for (const line of [
    'GET  / HTTP/1.1',
    'GET /  HTTP/1.1',
    ' GET / HTTP/1.1',
    'GET\t/ HTTP/1.1',
    'GET /',
    'GET / HTTP/1.1 ',
  ]) {
    const r = parse(req(line, 'Host: a'));
    assert.equal(r.kind, 'error', line);
    assert.equal(r.kind === 'error' && r.status, 400, line);
  }
  for (const v of ['http/1.1', 'HTTP/1', 'HTTP/1.10', 'HTTP/11', 'HTTPS/1.1', 'HTTP/1.x', 'HTTP/a.1']) {
    rejects(req(`GET / ${v}`, 'Host: a'), 400, 'SY_HTTP_BAD_REQUEST_LINE');
  }
  for (const v of ['HTTP/2.0', 'HTTP/0.9', 'HTTP/1.2', 'HTTP/3.0']) {
    rejects(req(`GET / ${v}`, 'Host: a'), 505, 'SY_HTTP_VERSION_NOT_SUPPORTED');
  }
});

test('line endings: CRLF everywhere; leading empty lines are skipped', () => {
  const h = ok(`\r\n\r\n${req('GET / HTTP/1.1', 'Host: a')}`);
  assert.equal(h.consumed, 4 + req('GET / HTTP/1.1', 'Host: a').length);
  rejects('\nGET / HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'SY_HTTP_BAD_LINE_ENDING');
  rejects('\rGET / HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'SY_HTTP_BAD_LINE_ENDING');
  rejects('GET / HTTP/1.1\nHost: a\r\n\r\n', 400, 'SY_HTTP_BAD_LINE_ENDING');
  rejects('GET / HTTP/1.1\rHost: a\r\n\r\n', 400, 'SY_HTTP_BAD_LINE_ENDING');
  rejects('GET / HTTP/1.1\r\nHost: a\n\r\n', 400, 'SY_HTTP_BAD_LINE_ENDING');
  rejects('GET / HTTP/1.1\r\nHost: a\r\n\n', 400, 'SY_HTTP_BAD_LINE_ENDING');
  rejects('GET / HTTP/1.1\r\nHost: a\r\n\r\r\n', 400, 'SY_HTTP_BAD_LINE_ENDING');
  rejects('GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n', 400, 'SY_HTTP_BAD_LINE_ENDING');
  rejects('GET / HTTP/1.1\r\nHost: a\nb\r\n\r\n', 400, 'SY_HTTP_BAD_LINE_ENDING');
});

test('field syntax: token names, colon right after, clean values, no folding', () => {
  for (const name of ['X Y', 'X(Y', 'X/Y', 'X@Y', 'X"Y', 'X\x00Y', 'X\x7fY', 'X\x80Y', 'X{Y']) {
    rejects(req('GET / HTTP/1.1', 'Host: a', `${name}: v`), 400, 'SY_HTTP_BAD_HEADER');
  }
  rejects(req('GET / HTTP/1.1', 'Host: a', 'X-A : v'), 400, 'SY_HTTP_BAD_HEADER');
  rejects(req('GET / HTTP/1.1', 'Host: a', 'X-A\t: v'), 400, 'SY_HTTP_BAD_HEADER');
  rejects(req('GET / HTTP/1.1', 'Host: a', ': v'), 400, 'SY_HTTP_BAD_HEADER');
  rejects(req('GET / HTTP/1.1', 'Host: a', 'X-A'), 400, 'SY_HTTP_BAD_HEADER');
  rejects(req('GET / HTTP/1.1', 'Host: a', 'X-A: b', ' folded'), 400, 'SY_HTTP_BAD_HEADER');
  rejects(req('GET / HTTP/1.1', 'Host: a', 'X-A: b', '\tfolded'), 400, 'SY_HTTP_BAD_HEADER');
  for (let c = 0; c < 0x20; c++) {
    if (c === 0x09 || c === 0x0a || c === 0x0d) continue;
    rejects(req('GET / HTTP/1.1', 'Host: a', `X-A: a${String.fromCharCode(c)}b`), 400, 'SY_HTTP_BAD_HEADER');
  }
  rejects(req('GET / HTTP/1.1', 'Host: a', 'X-A: a\x7fb'), 400, 'SY_HTTP_BAD_HEADER');
  const h = ok(req('GET / HTTP/1.1', 'Host: a', 'X-A: \xe9t\xe9\tok', 'X-Empty:', 'X-Spaces:   '));
  assert.deepEqual(h.headers.slice(2), ['X-A', '\xe9t\xe9\tok', 'X-Empty', '', 'X-Spaces', '']);
});

test('Content-Length: digits only, once, never with Transfer-Encoding', () => {
  for (const v of ['+5', '-5', '5,5', '5, 5', '5 5', '0x5', '5.0', '1e3', '', 'five', '1'.repeat(16)]) {
    rejects(req('POST / HTTP/1.1', 'Host: a', `Content-Length: ${v}`), 400, 'SY_HTTP_BAD_FRAMING');
  }
  rejects(req('POST / HTTP/1.1', 'Host: a', 'Content-Length:\t5'), 400, 'SY_HTTP_BAD_FRAMING');
  rejects(req('POST / HTTP/1.1', 'Host: a', 'Content-Length: 5\t'), 400, 'SY_HTTP_BAD_FRAMING');
  rejects(req('POST / HTTP/1.1', 'Host: a', 'Content-Length: 5', 'Content-Length: 5'), 400, 'SY_HTTP_BAD_FRAMING');
  rejects(req('POST / HTTP/1.1', 'Host: a', 'Content-Length: 5', 'content-length: 6'), 400, 'SY_HTTP_BAD_FRAMING');
  rejects(
    req('POST / HTTP/1.1', 'Host: a', 'Content-Length: 5', 'Transfer-Encoding: chunked'),
    400,
    'SY_HTTP_BAD_FRAMING',
  );
  rejects(
    req('POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', 'Content-Length: 5'),
    400,
    'SY_HTTP_BAD_FRAMING',
  );
});

test('Transfer-Encoding: exactly chunked, 1.1 only; other codings 501', () => {
  for (const v of [
    'xchunked',
    'chunkedx',
    'chunked, chunked',
    'chunked, gzip',
    'identity',
    ',chunked',
    'chunked,',
    'chunked;q=1',
    '"chunked"',
    '',
  ]) {
    rejects(req('POST / HTTP/1.1', 'Host: a', `Transfer-Encoding: ${v}`), 400, 'SY_HTTP_BAD_FRAMING');
  }
  rejects(
    req('POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'),
    400,
    'SY_HTTP_BAD_FRAMING',
  );
  rejects(req('POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding:\tchunked'), 400, 'SY_HTTP_BAD_FRAMING');
  rejects(req('POST / HTTP/1.0', 'Transfer-Encoding: chunked'), 400, 'SY_HTTP_BAD_FRAMING');
  for (const v of ['gzip, chunked', 'identity, chunked', 'x-custom;a=b, chunked']) {
    rejects(req('POST / HTTP/1.1', 'Host: a', `Transfer-Encoding: ${v}`), 501, 'SY_HTTP_UNSUPPORTED_TRANSFER_CODING');
  }
  rejects(
    req('POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: gzip', 'Transfer-Encoding: chunked'),
    501,
    'SY_HTTP_UNSUPPORTED_TRANSFER_CODING',
  );
  assert.equal(ok(req('POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding:  chunked  ')).chunked, true);
});

test('Host: exactly one in HTTP/1.1, valid host[:port]', () => {
  rejects(req('GET / HTTP/1.1'), 400, 'SY_HTTP_BAD_HOST');
  rejects(req('GET / HTTP/1.1', 'Host: a', 'Host: a'), 400, 'SY_HTTP_BAD_HOST');
  rejects(req('GET / HTTP/1.0', 'Host: a', 'host: b'), 400, 'SY_HTTP_BAD_HOST');
  for (const h of [
    '',
    'a b',
    'a@b',
    'a/b',
    'a:',
    'a:123456',
    'a:65536',
    'a:8x',
    '[::1',
    '[]',
    ':80',
    'a,b',
    'a;b',
    'a%41',
    "a'b",
    'a=b',
    'a!b',
  ]) {
    rejects(req('GET / HTTP/1.1', `Host: ${h}`), 400, 'SY_HTTP_BAD_HOST');
  }
  for (const h of [
    'example.com',
    'EXAMPLE.com:8080',
    '127.0.0.1:1',
    '[::1]',
    '[2001:db8::1]:443',
    'a_b.c',
    'x:65535',
  ]) {
    assert.equal(ok(req('GET / HTTP/1.1', `Host: ${h}`)).host, h);
  }
});

test('request-target forms', () => {
  const abs = ok(req('GET http://Example.com:8080/p?q HTTP/1.1', 'Host: example.COM:8080'));
  assert.equal(abs.targetForm, 'absolute');
  assert.equal(abs.target.slice(abs.pathOffset), '/p?q');
  const empty = ok(req('GET https://a?q HTTP/1.1', 'Host: a'));
  assert.equal(empty.target.slice(empty.pathOffset), '?q');
  assert.equal(ok(req('GET http://a HTTP/1.0')).pathOffset, 8);
  rejects(req('GET http://b/ HTTP/1.1', 'Host: a'), 400, 'SY_HTTP_BAD_HOST');
  rejects(req('GET http://u@a/ HTTP/1.1', 'Host: a'), 400, 'SY_HTTP_BAD_TARGET');
  rejects(req('GET http:///x HTTP/1.1', 'Host: a'), 400, 'SY_HTTP_BAD_TARGET');
  rejects(req('GET ftp://a/ HTTP/1.1', 'Host: a'), 400, 'SY_HTTP_BAD_TARGET');
  rejects(req('GET http:/a HTTP/1.1', 'Host: a'), 400, 'SY_HTTP_BAD_TARGET');
  rejects(req('GET a HTTP/1.1', 'Host: a'), 400, 'SY_HTTP_BAD_TARGET');
  const connect = ok(req('CONNECT a.example:443 HTTP/1.1', 'Host: a.example:443'));
  assert.equal(connect.targetForm, 'authority');
  assert.equal(connect.pathOffset, -1);
  rejects(req('CONNECT a.example HTTP/1.1', 'Host: a.example'), 400, 'SY_HTTP_BAD_TARGET');
  rejects(req('CONNECT / HTTP/1.1', 'Host: a'), 400, 'SY_HTTP_BAD_TARGET');
  rejects(req('CONNECT a:443 HTTP/1.1', 'Host: b:443'), 400, 'SY_HTTP_BAD_HOST');
  rejects(req('GET a:443 HTTP/1.1', 'Host: a'), 400, 'SY_HTTP_BAD_TARGET');
  assert.equal(ok(req('OPTIONS * HTTP/1.1', 'Host: a')).targetForm, 'asterisk');
  rejects(req('GET * HTTP/1.1', 'Host: a'), 400, 'SY_HTTP_BAD_TARGET');
  rejects(req('OPTIONS *a HTTP/1.1', 'Host: a'), 400, 'SY_HTTP_BAD_TARGET');
  for (const t of ['/a#b', '/a\x00', '/\x80', '/\xff', '/a\x7f']) {
    rejects(req(`GET ${t} HTTP/1.1`, 'Host: a'), 400, 'SY_HTTP_BAD_TARGET');
  }
  assert.equal(ok(req('GET /x?j={"a":[1]}|^`\\ HTTP/1.1', 'Host: a')).target, '/x?j={"a":[1]}|^`\\');
});

test('limits: 414, 431, decided as soon as they are exceeded', () => {
  const limits = httpLimits({ maxUriBytes: 64, maxHeaders: 3, maxHeaderBytes: 256 });
  assert.equal(ok(req(`GET /${'a'.repeat(63)} HTTP/1.1`, 'Host: a'), limits).target.length, 64);
  rejects(req(`GET /${'a'.repeat(64)} HTTP/1.1`, 'Host: a'), 414, 'SY_HTTP_URI_TOO_LONG', limits);
  rejects(`GET /${'a'.repeat(64)}`, 414, 'SY_HTTP_URI_TOO_LONG', limits);
  assert.equal(ok(req('GET / HTTP/1.1', 'Host: a', 'B: 1', 'C: 2'), limits).headers.length, 6);
  rejects(req('GET / HTTP/1.1', 'Host: a', 'B: 1', 'C: 2', 'D: 3'), 431, 'SY_HTTP_TOO_MANY_HEADERS', limits);
  rejects('GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD', 431, 'SY_HTTP_TOO_MANY_HEADERS', limits);
  const exact = req('GET / HTTP/1.1', 'Host: a', `X: ${'x'.repeat(256 - 32)}`);
  assert.equal(exact.length, 256);
  assert.equal(ok(exact, limits).consumed, 256);
  rejects(req('GET / HTTP/1.1', 'Host: a', `X: ${'x'.repeat(256 - 31)}`), 431, 'SY_HTTP_HEADERS_TOO_LARGE', limits);
  rejects(`GET / HTTP/1.1\r\nX: ${'x'.repeat(300)}`, 431, 'SY_HTTP_HEADERS_TOO_LARGE', limits);
  rejects('\r\n'.repeat(128), 431, 'SY_HTTP_HEADERS_TOO_LARGE', limits);
  assert.equal(parse('\r\n'.repeat(127), limits).kind, 'incomplete');
  assert.throws(() => httpLimits({ maxHeaders: 0 }), RangeError);
  assert.throws(() => httpLimits({ maxUriBytes: 1.5 }), RangeError);
});

test('incomplete heads and early syntax errors', () => {
  for (const s of [
    '',
    'G',
    'GET',
    'GET ',
    'GET /',
    'GET / HTTP/1.',
    'GET / HTTP/1.1\r',
    'GET / HTTP/1.1\r\nHost: a\r\n\r',
  ]) {
    assert.equal(parse(s).kind, 'incomplete', JSON.stringify(s));
  }
  // Rejected at the first bad byte, long before any CRLF CRLF.
  rejects('GET /\x00', 400, 'SY_HTTP_BAD_TARGET');
  rejects('\x16\x03\x01\x02\x00', 400, 'SY_HTTP_BAD_REQUEST_LINE');
  rejects('GET / HTTP/1.1\r\nX\x00', 400, 'SY_HTTP_BAD_HEADER');
});

test('split at every offset gives the same result, with and without resume', () => {
  const corpus = [
    req('GET /a?b HTTP/1.1', 'Host: example.com', 'Accept: */*', 'Connection: keep-alive, X-A', 'X-A:  1 '),
    `\r\n\r\n${req('POST http://a/x HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', 'Expect: 100-continue')}5\r\nhello`,
    req('CONNECT a:443 HTTP/1.1', 'Host: a:443'),
    req('OPTIONS * HTTP/1.0'),
    req('GET / HTTP/1.1', 'Host: a', 'Content-Length: 5', 'Transfer-Encoding: chunked'),
    req('GET / HTTP/2.0', 'Host: a'),
    req('GET / HTTP/1.1', 'Host: a', 'X: a', ' folded'),
    'GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n',
    req('GET / HTTP/1.1', 'Host: a', 'Bad Name: b'),
    req(`GET /${'a'.repeat(40)} HTTP/1.1`, 'Host: a', 'B: 1'),
    req(`${'M'.repeat(40)} / HTTP/1.1`),
  ];
  const small = httpLimits({ maxUriBytes: 32, maxHeaders: 2, maxHeaderBytes: 90 });
  for (const s of corpus) {
    assertSplitInvariant(s);
    assertSplitInvariant(s, small);
  }
});

test('a resume token from a response parse is ignored by the request parser', () => {
  const b = bin(req('GET / HTTP/1.1', 'Host: a'));
  const bogus = new HeadProgress(true, 5, 7, 0, 0);
  assert.deepEqual(parseRequestHead(b, 0, b.length, undefined, bogus), parseRequestHead(b, 0, b.length));
});
