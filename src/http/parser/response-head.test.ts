import assert from 'node:assert/strict';
import { test } from 'node:test';
import { F_CONNECTION, F_CONTENT_LENGTH, F_OTHER } from './framing.ts';
import type { HeadProgress } from './head-scanner.ts';
import { type HttpLimits, httpLimits } from './limits.ts';
import { parseResponseHead, type ResponseHead, type ResponseHeadResult } from './response-head.ts';

const bin = (s: string): Buffer => Buffer.from(s, 'latin1');
const res = (...lines: string[]): string => `${lines.join('\r\n')}\r\n\r\n`;

function parse(s: string, method = 'GET', limits?: HttpLimits): ResponseHeadResult {
  const b = bin(s);
  return parseResponseHead(b, 0, b.length, limits, method);
}

function ok(s: string, method = 'GET'): ResponseHead {
  const r = parse(s, method);
  assert.equal(r.kind, 'ok', `expected ok, got ${JSON.stringify(r)}`);
  return r as ResponseHead;
}

function rejects(s: string, code: string, method = 'GET', limits?: HttpLimits): void {
  const r = parse(s, method, limits);
  assert.equal(r.kind, 'error', `expected ${code} for ${JSON.stringify(s)}, got ${JSON.stringify(r)}`);
  if (r.kind !== 'error') return;
  assert.equal(r.code, code, `for ${JSON.stringify(s)}: ${r.reason}`);
  assert.equal(r.status, 502);
}

test('parses a small response head', () => {
  const text = res('HTTP/1.1 200 OK', 'Content-Type: text/plain', 'Content-Length: 12', 'Connection: keep-alive');
  const h = ok(`${text}hello world!`);
  assert.equal(h.status, 200);
  assert.equal(h.reason, 'OK');
  assert.equal(h.versionMinor, 1);
  assert.deepEqual(h.headers, ['Content-Type', 'text/plain', 'Content-Length', '12', 'Connection', 'keep-alive']);
  assert.equal(h.framing, 'length');
  assert.equal(h.contentLength, 12);
  assert.equal(h.keepAlive, true);
  assert.equal(h.consumed, text.length);
  assert.equal(ok(res('HTTP/1.1 404 Not Found Here', 'Content-Length: 0')).reason, 'Not Found Here');
  assert.equal(ok(res('HTTP/1.1 200 ', 'Content-Length: 0')).reason, '');
  assert.equal(ok(res('HTTP/1.1 200', 'Content-Length: 0')).reason, '');
  assert.equal(ok(res('HTTP/1.1 599 \xe9\t!', 'Content-Length: 0')).reason, '\xe9\t!');
});

test('framing per RFC 9112 §6.3', () => {
  assert.equal(ok(res('HTTP/1.1 200 OK', 'Transfer-Encoding: chunked')).framing, 'chunked');
  const close = ok(res('HTTP/1.1 200 OK'));
  assert.equal(close.framing, 'close');
  assert.equal(close.keepAlive, false);
  const head = ok(res('HTTP/1.1 200 OK', 'Content-Length: 100'), 'HEAD');
  assert.equal(head.framing, 'none');
  assert.equal(head.contentLength, 100);
  assert.equal(head.keepAlive, true);
  assert.equal(ok(res('HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'), 'HEAD').framing, 'none');
  assert.equal(ok(res('HTTP/1.1 204 No Content')).framing, 'none');
  assert.equal(ok(res('HTTP/1.1 204 No Content', 'Content-Length: 0')).framing, 'none');
  assert.equal(ok(res('HTTP/1.1 304 Not Modified', 'Content-Length: 50')).framing, 'none');
  const interim = ok(res('HTTP/1.1 100 Continue'));
  assert.equal(interim.interim, true);
  assert.equal(interim.framing, 'none');
  assert.equal(ok(res('HTTP/1.1 103 Early Hints', 'Link: </a>; rel=preload')).interim, true);
  const up = ok(res('HTTP/1.1 101 Switching Protocols', 'Connection: Upgrade', 'Upgrade: websocket'));
  assert.equal(up.upgrade, true);
  assert.equal(up.interim, false);
  assert.equal(up.framing, 'tunnel');
  assert.equal(up.keepAlive, false);
  assert.equal(ok(res('HTTP/1.1 200 Connection established'), 'CONNECT').framing, 'tunnel');
  assert.equal(ok(res('HTTP/1.1 407 Auth', 'Content-Length: 0'), 'CONNECT').framing, 'length');
  assert.equal(ok(res('HTTP/1.0 200 OK', 'Content-Length: 1')).keepAlive, false);
  assert.equal(ok(res('HTTP/1.0 200 OK', 'Content-Length: 1', 'Connection: keep-alive')).keepAlive, true);
  assert.equal(ok(res('HTTP/1.1 200 OK', 'Content-Length: 1', 'Connection: close')).keepAlive, false);
});

test('ambiguous or invalid framing is an error (502)', () => {
  rejects(res('HTTP/1.1 200 OK', 'Content-Length: 5', 'Transfer-Encoding: chunked'), 'SY_UPS_BAD_FRAMING');
  rejects(res('HTTP/1.1 200 OK', 'Content-Length: 5', 'Content-Length: 5'), 'SY_UPS_BAD_FRAMING');
  rejects(res('HTTP/1.1 200 OK', 'Content-Length: -1'), 'SY_UPS_BAD_FRAMING');
  rejects(res('HTTP/1.1 200 OK', 'Content-Length:\t1'), 'SY_UPS_BAD_FRAMING');
  rejects(res('HTTP/1.1 200 OK', 'Transfer-Encoding: gzip'), 'SY_UPS_BAD_FRAMING');
  rejects(res('HTTP/1.1 200 OK', 'Transfer-Encoding: gzip, chunked'), 'SY_UPS_BAD_FRAMING');
  rejects(res('HTTP/1.1 200 OK', 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'), 'SY_UPS_BAD_FRAMING');
  rejects(res('HTTP/1.0 200 OK', 'Transfer-Encoding: chunked'), 'SY_UPS_BAD_FRAMING');
  rejects(res('HTTP/1.1 204 No Content', 'Content-Length: 5'), 'SY_UPS_BAD_FRAMING');
  rejects(res('HTTP/1.1 100 Continue', 'Transfer-Encoding: chunked'), 'SY_UPS_BAD_FRAMING');
  rejects(res('HTTP/1.1 304 Not Modified', 'Transfer-Encoding: chunked'), 'SY_UPS_BAD_FRAMING');
  rejects(res('HTTP/1.1 200 OK', 'Content-Length: 5', 'Transfer-Encoding: chunked'), 'SY_UPS_BAD_FRAMING', 'HEAD');
  rejects(res('HTTP/1.1 101 Switching Protocols', 'Connection: upgrade'), 'SY_UPS_BAD_RESPONSE_HEAD');
  rejects(res('HTTP/1.1 200 OK', 'Connection: close x'), 'SY_UPS_BAD_RESPONSE_HEAD');
});

test('status line syntax', () => {
  for (const line of [
    'HTTP/1.1 20 OK',
    'HTTP/1.1 2000 OK',
    'HTTP/1.1 099 X',
    'HTTP/1.1 600 X',
    'HTTP/1.1  200 OK',
    'HTTP/1.1 2x0 OK',
    'http/1.1 200 OK',
    'HTTP/1.1 200 O\x00K',
    'HTTP/1.1 200 O\x7f',
    'HTTP/1.1\t200 OK',
  ]) {
    rejects(res(line, 'Content-Length: 0'), 'SY_UPS_BAD_RESPONSE_HEAD');
  }
  for (const line of ['HTTP/2.0 200 OK', 'HTTP/0.9 200 OK']) rejects(res(line), 'SY_UPS_BAD_RESPONSE_HEAD');
  rejects('\r\nHTTP/1.1 200 OK\r\n\r\n', 'SY_UPS_BAD_RESPONSE_HEAD');
  rejects('HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n', 'SY_UPS_BAD_RESPONSE_HEAD');
  rejects('HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n', 'SY_UPS_BAD_RESPONSE_HEAD');
  rejects('HTTP/1.1 200 OK\r\nX : a\r\n\r\n', 'SY_UPS_BAD_RESPONSE_HEAD');
  rejects('HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n', 'SY_UPS_BAD_RESPONSE_HEAD');
  const limits = httpLimits({ maxHeaders: 1, maxHeaderBytes: 64 });
  rejects(res('HTTP/1.1 200 OK', 'A: 1', 'B: 2'), 'SY_UPS_RESPONSE_HEAD_TOO_LARGE', 'GET', limits);
  rejects(`HTTP/1.1 200 OK\r\nA: ${'a'.repeat(64)}`, 'SY_UPS_RESPONSE_HEAD_TOO_LARGE', 'GET', limits);
});

test('split at every offset gives the same result, with and without resume', () => {
  const corpus = [
    `${res('HTTP/1.1 200 OK', 'Content-Length: 5', 'Connection: keep-alive, X-A')}hello`,
    res('HTTP/1.1 101 Switching Protocols', 'Connection: Upgrade', 'Upgrade: websocket'),
    res('HTTP/1.0 304 Not Modified'),
    res('HTTP/1.1 200', 'Transfer-Encoding: chunked'),
    res('HTTP/1.1 200 OK', 'Content-Length: 5', 'Transfer-Encoding: chunked'),
    'HTTP/1.1 200 OK\r\nA: b\nC: d\r\n\r\n',
    res('HTTP/1.1 2000 OK'),
    res('HTTP/1.1 200 OK', 'A: 1', 'B: 2', 'C: 3'),
  ];
  const small = httpLimits({ maxHeaders: 2, maxHeaderBytes: 70 });
  for (const s of corpus) {
    for (const limits of [undefined, small]) {
      const b = bin(s);
      const whole = parseResponseHead(b, 0, b.length, limits, 'GET');
      let progress: HeadProgress | null = null;
      for (let end = 0; end <= b.length; end++) {
        const fresh = parseResponseHead(b, 0, end, limits, 'GET');
        const resumed = parseResponseHead(b, 0, end, limits, 'GET', progress);
        assert.deepEqual(resumed, fresh);
        if (fresh.kind === 'incomplete') progress = fresh;
        else assert.deepEqual(fresh, whole, `at ${end} of ${JSON.stringify(s)}`);
      }
    }
  }
});

test('field lines read back by position: values without OWS, empty values, kinds and names', () => {
  // The head keeps only where each line starts and where its name ends: values are found again
  // from the colon, so check the edges (OWS both sides, an empty value, the last line) at an offset.
  const text = res('HTTP/1.1 200 OK', 'X-A: \t x  y \t', 'X-Empty:', 'content-length:5', 'CONNECTION:  close  ');
  const b = bin(`junk${text}hello`);
  const h = parseResponseHead(b, 4, b.length) as ResponseHead;
  assert.equal(h.kind, 'ok');
  assert.deepEqual(h.headers, ['X-A', 'x  y', 'X-Empty', '', 'content-length', '5', 'CONNECTION', 'close']);
  assert.equal(h.fieldCount, 4);
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => h.fieldKind(i)),
    [F_OTHER, F_OTHER, F_CONTENT_LENGTH, F_CONNECTION],
  );
  assert.ok(h.nameIs(1, 'x-empty') && h.nameIs(3, 'connection') && !h.nameIs(0, 'x-empty'));
  assert.equal(b.toString('latin1', h.lineStart(1), h.lineEnd(1)), 'X-Empty:\r\n');
  assert.equal(b.toString('latin1', h.lineStart(3), h.lineEnd(3)), 'CONNECTION:  close  \r\n');
  assert.equal(h.nameEnd(2), h.lineStart(2) + 'content-length'.length);
});
