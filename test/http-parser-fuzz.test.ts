/**
 * Property tests of the HTTP/1.1 framing layer (src/http/parser) with fast-check: random byte streams and
 * random mutations of valid requests, fed whole and in random splits (the way socket reads arrive).
 *
 * Properties: the parsers never throw; every result is one of the documented kinds with a registered code
 * and a plausible status; and the verdict is the same however the bytes are split, with or without the
 * `resume` progress token. Runs are bounded (a few thousand in total, a few seconds).
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  ChunkedScanner,
  type HeadProgress,
  HTTP_PARSE_ERRORS,
  type HttpLimits,
  httpLimits,
  parseRequestHead,
  parseResponseHead,
  type RequestHeadResult,
  type ResponseHeadResult,
} from '../src/http/parser/index.ts';
import { byteArb, mutate, mutationArb } from './helpers/http-fuzz.ts';

const DEFAULT = httpLimits();
const SMALL = httpLimits({
  maxHeaderBytes: 120,
  maxHeaders: 4,
  maxUriBytes: 24,
  maxTrailerBytes: 40,
  maxChunkExtBytes: 12,
});
const REQUEST_STATUSES = new Set([400, 413, 414, 431, 501, 505]);

const VALID_REQUESTS = [
  'GET / HTTP/1.1\r\nHost: example.com\r\n\r\n',
  'POST /submit?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello',
  'PUT /up HTTP/1.1\r\nHost: a:8080\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n',
  '\r\nGET http://a/x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n',
  'CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n',
  'OPTIONS * HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n',
  'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
  'GET /many HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n',
];
const VALID_RESPONSES = [
  'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
  'HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n',
  'HTTP/1.0 304 Not Modified\r\nX: y\r\n\r\n',
  'HTTP/1.1 204\r\n\r\n',
];

/** Sorted cut points inside a buffer of length `n`. */
function cutsFor(n: number, raw: number[]): number[] {
  return [...new Set(raw.map((x) => (n === 0 ? 0 : x % (n + 1))))].sort((a, b) => a - b);
}

type HeadResult = RequestHeadResult | ResponseHeadResult;

function checkResult(r: HeadResult, len: number, response: boolean): void {
  assert.ok(r.kind === 'ok' || r.kind === 'incomplete' || r.kind === 'error', `kind ${String(r.kind)}`);
  if (r.kind === 'error') {
    const e = r;
    assert.ok(e.code in HTTP_PARSE_ERRORS, e.code);
    assert.equal(e.status, HTTP_PARSE_ERRORS[e.code].status);
    assert.ok(response ? e.status === 502 : REQUEST_STATUSES.has(e.status), `status ${e.status}`);
    assert.equal(e.code.startsWith('SY_UPS_'), response);
  } else if (r.kind === 'ok') {
    const consumed = r.consumed;
    assert.ok(consumed > 0 && consumed <= len, `consumed ${consumed} of ${len}`);
  }
}

type HeadParser = (
  buf: Buffer,
  start: number,
  end: number,
  limits: HttpLimits,
  resume: HeadProgress | null,
) => HeadResult;
const parseReq: HeadParser = (b, s, e, l, r) => parseRequestHead(b, s, e, l, r);
const parseRes: HeadParser = (b, s, e, l, r) => parseResponseHead(b, s, e, l, 'GET', r);

/** Parses `buf` whole, then as the prefixes ending at `cuts`, resuming or not; all verdicts must agree. */
function checkSplits(
  parse: HeadParser,
  buf: Buffer,
  cuts: number[],
  limits: HttpLimits,
  useResume: boolean,
  response: boolean,
): void {
  const whole = parse(buf, 0, buf.length, limits, null);
  checkResult(whole, buf.length, response);
  let progress: HeadProgress | null = null;
  for (const end of [...cuts, buf.length]) {
    const r = parse(buf, 0, end, limits, useResume ? progress : null);
    checkResult(r, end, response);
    // Resuming must land in exactly the state a fresh scan of the same bytes reaches, progress included.
    if (useResume) assert.deepEqual(r, parse(buf, 0, end, limits, null), `resumed at ${end} of ${buf.length}`);
    if (r.kind === 'incomplete') {
      progress = r as HeadProgress;
      continue;
    }
    assert.deepEqual(r, whole, `prefix ${end} of ${buf.length}`);
    return;
  }
  assert.equal(whole.kind, 'incomplete');
}

interface BodyVerdict {
  consumed: number;
  done: boolean;
  code: string | null;
  bodyBytes: number;
}

function scanChunked(buf: Buffer, start: number, cuts: number[], limits: HttpLimits, response: boolean): BodyVerdict {
  const scanner = new ChunkedScanner(limits, 64, response);
  let from = start;
  let consumed = 0;
  for (const to of [...cuts.filter((c) => c > start), buf.length]) {
    const n = scanner.scan(buf, from, to);
    if (n < 0) {
      assert.ok(scanner.error !== null);
      assert.ok(scanner.error.code in HTTP_PARSE_ERRORS);
      return { consumed: -1, done: false, code: scanner.error.code, bodyBytes: scanner.bodyBytes };
    }
    assert.ok(n <= to - from);
    consumed += n;
    if (scanner.done) break;
    assert.equal(n, to - from);
    from = to;
  }
  return { consumed, done: scanner.done, code: null, bodyBytes: scanner.bodyBytes };
}

test('random byte streams: never throw, valid kinds, split-invariant (requests)', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
      fc.array(fc.nat(), { maxLength: 8 }),
      fc.boolean(),
      fc.boolean(),
      (buf, rawCuts, useResume, small) => {
        checkSplits(parseReq, buf, cutsFor(buf.length, rawCuts), small ? SMALL : DEFAULT, useResume, false);
      },
    ),
    { numRuns: 1000 },
  );
});

test('HTTP-flavoured byte streams: requests and responses, split-invariant', () => {
  fc.assert(
    fc.property(
      fc.array(byteArb, { maxLength: 300 }).map((a) => Buffer.from(a)),
      fc.array(fc.nat(), { maxLength: 8 }),
      fc.boolean(),
      fc.boolean(),
      (buf, rawCuts, useResume, small) => {
        const cuts = cutsFor(buf.length, rawCuts);
        const limits = small ? SMALL : DEFAULT;
        checkSplits(parseReq, buf, cuts, limits, useResume, false);
        checkSplits(parseRes, buf, cuts, limits, useResume, true);
        checkSplits(parseReq, Buffer.concat([Buffer.from('GET / HTTP/1.1\r\n'), buf]), cuts, limits, useResume, false);
      },
    ),
    { numRuns: 1500 },
  );
});

test('mutated valid requests: heads and chunked bodies, split-invariant', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...VALID_REQUESTS),
      fc.array(mutationArb, { maxLength: 4 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      fc.boolean(),
      fc.boolean(),
      (source, mutations, rawCuts, useResume, small) => {
        const buf = mutate(source, mutations);
        const cuts = cutsFor(buf.length, rawCuts);
        const limits = small ? SMALL : DEFAULT;
        checkSplits(parseReq, buf, cuts, limits, useResume, false);
        const head = parseRequestHead(buf, 0, buf.length, limits);
        if (head.kind === 'ok' && head.chunked) {
          const whole = scanChunked(buf, head.consumed, [], limits, false);
          assert.deepEqual(scanChunked(buf, head.consumed, cuts, limits, false), whole);
          if (whole.done) assert.ok(head.consumed + whole.consumed <= buf.length);
        }
      },
    ),
    { numRuns: 1500 },
  );
});

test('mutated valid responses, split-invariant', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...VALID_RESPONSES),
      fc.array(mutationArb, { maxLength: 4 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      fc.boolean(),
      (source, mutations, rawCuts, useResume) => {
        const buf = mutate(source, mutations);
        const cuts = cutsFor(buf.length, rawCuts);
        checkSplits(parseRes, buf, cuts, DEFAULT, useResume, true);
        const head = parseResponseHead(buf, 0, buf.length, DEFAULT, 'GET');
        if (head.kind === 'ok' && head.framing === 'chunked') {
          const whole = scanChunked(buf, head.consumed, [], DEFAULT, true);
          assert.deepEqual(scanChunked(buf, head.consumed, cuts, DEFAULT, true), whole);
        }
      },
    ),
    { numRuns: 1000 },
  );
});

test('random chunked bodies: scanner never throws and is split-invariant', () => {
  const pieceArb = fc.oneof(
    fc.constantFrom(
      '0',
      '5',
      'a',
      'F',
      '00',
      '\r\n',
      ';',
      '=',
      '"',
      '\\',
      'x',
      ': ',
      'T',
      'hello',
      ' ',
      '\t',
      '\n',
      '\r',
    ),
    byteArb.map((b) => String.fromCharCode(b)),
  );
  fc.assert(
    fc.property(
      fc.array(pieceArb, { maxLength: 60 }).map((p) => Buffer.from(p.join(''), 'latin1')),
      fc.array(fc.nat(), { maxLength: 10 }),
      fc.boolean(),
      fc.boolean(),
      (buf, rawCuts, small, response) => {
        const limits = small ? SMALL : DEFAULT;
        const whole = scanChunked(buf, 0, [], limits, response);
        assert.deepEqual(scanChunked(buf, 0, cutsFor(buf.length, rawCuts), limits, response), whole);
        if (whole.done) assert.ok(whole.consumed > 0 && whole.consumed <= buf.length);
      },
    ),
    { numRuns: 1500 },
  );
});
