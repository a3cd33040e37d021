/**
 * Micro benchmark of the HTTP/1.1 framing layer (src/http/parser): ns per operation for typical heads and
 * MB/s for chunked body scanning, so regressions show. Also measures the two speed choices the parser's
 * comments point here for: decoding one latin1 string per head instead of one per field, and resuming an
 * incomplete head instead of rescanning it.
 *
 *   node bench/micro/http-parser.ts [--json]
 *
 * Numbers are medians of several timed rounds after a warm-up; compare runs on the same machine only.
 */

import type { HeadProgress } from '../../src/http/parser/index.ts';
import { ChunkedScanner, parseRequestHead, parseResponseHead } from '../../src/http/parser/index.ts';

const BROWSER_HEAD = Buffer.from(
  [
    'GET /products/search?q=red+shoes&size=42&page=2 HTTP/1.1',
    'Host: shop.example.com',
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
    'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
    'Accept-Language: en-US,en;q=0.5',
    'Accept-Encoding: gzip, deflate, br',
    'Connection: keep-alive',
    'Cookie: session=4f1c2a9e7b; theme=dark',
    'Upgrade-Insecure-Requests: 1',
    'Sec-Fetch-Dest: document',
    '',
    '',
  ].join('\r\n'),
  'latin1',
);
const SMALL_REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n', 'latin1');
const RESPONSE_HEAD = Buffer.from(
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nConnection: keep-alive\r\n\r\n',
  'latin1',
);

function chunkedBody(chunks: number, size: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < chunks; i++)
    parts.push(Buffer.from(`${size.toString(16)}\r\n`), Buffer.alloc(size, 0x61), Buffer.from('\r\n'));
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}
const CHUNKED_64K = chunkedBody(8, 8192);
const CHUNKED_SMALL = chunkedBody(256, 16);

let sink = 0;

/** Median ns per call of `fn` over `rounds` rounds of `iterations` calls, after a warm-up round. */
function measure(fn: () => number, iterations: number, rounds = 7): number {
  for (let i = 0; i < iterations; i++) sink += fn();
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) sink += fn();
    samples.push(Number(process.hrtime.bigint() - t0) / iterations);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

/** Field offsets of BROWSER_HEAD, for the decode-strategy comparison. */
const OFFSETS: number[] = (() => {
  const o: number[] = [];
  let p = BROWSER_HEAD.indexOf(10) + 1;
  while (BROWSER_HEAD[p] !== 13) {
    const colon = BROWSER_HEAD.indexOf(58, p);
    const cr = BROWSER_HEAD.indexOf(13, p);
    o.push(p, colon, colon + 2, cr);
    p = cr + 2;
  }
  return o;
})();

function decodePerField(): number {
  const b = BROWSER_HEAD as Latin1Buffer;
  const out: string[] = [];
  for (let i = 0; i < OFFSETS.length; i += 4)
    out.push(b.latin1Slice(OFFSETS[i], OFFSETS[i + 1]), b.latin1Slice(OFFSETS[i + 2], OFFSETS[i + 3]));
  return out.length;
}

function decodeOnce(): number {
  const text = (BROWSER_HEAD as Latin1Buffer).latin1Slice(0, BROWSER_HEAD.length);
  const out: string[] = [];
  for (let i = 0; i < OFFSETS.length; i += 4)
    out.push(text.slice(OFFSETS[i], OFFSETS[i + 1]), text.slice(OFFSETS[i + 2], OFFSETS[i + 3]));
  return out.length;
}

/** Parses BROWSER_HEAD delivered `step` bytes per read, resuming or rescanning. */
function trickle(step: number, resume: boolean): number {
  let progress: HeadProgress | null = null;
  for (let end = step; ; end += step) {
    const r = parseRequestHead(
      BROWSER_HEAD,
      0,
      Math.min(end, BROWSER_HEAD.length),
      undefined,
      resume ? progress : null,
    );
    if (r.kind !== 'incomplete') return r.kind === 'ok' ? r.consumed : 0;
    progress = r;
  }
}

const scanner = new ChunkedScanner();

const results: Record<string, number> = {
  [`parseRequestHead, ${BROWSER_HEAD.length}-byte browser head (ns/op)`]: measure(() => {
    const r = parseRequestHead(BROWSER_HEAD, 0, BROWSER_HEAD.length);
    return r.kind === 'ok' ? r.consumed : 0;
  }, 200_000),
  [`parseRequestHead, ${SMALL_REQUEST.length}-byte wrk-style head (ns/op)`]: measure(() => {
    const r = parseRequestHead(SMALL_REQUEST, 0, SMALL_REQUEST.length);
    return r.kind === 'ok' ? r.consumed : 0;
  }, 500_000),
  [`parseResponseHead, ${RESPONSE_HEAD.length}-byte head (ns/op)`]: measure(() => {
    const r = parseResponseHead(RESPONSE_HEAD, 0, RESPONSE_HEAD.length, undefined, 'GET');
    return r.kind === 'ok' ? r.consumed : 0;
  }, 300_000),
  'parseRequestHead, incomplete head (ns/op)': measure(
    () => parseRequestHead(BROWSER_HEAD, 0, 300).kind.length,
    300_000,
  ),
  'ChunkedScanner, 64 KiB in 8 chunks (ns/op)': measure(
    () => scanner.reset().scan(CHUNKED_64K, 0, CHUNKED_64K.length),
    300_000,
  ),
  'ChunkedScanner, 256 chunks of 16 bytes (ns/op)': measure(
    () => scanner.reset().scan(CHUNKED_SMALL, 0, CHUNKED_SMALL.length),
    20_000,
  ),
  'decode: latin1Slice per name and value (ns/op)': measure(decodePerField, 200_000),
  'decode: one latin1Slice + substrings (ns/op)': measure(decodeOnce, 200_000),
  'browser head 1 byte per read, rescanning (ns/head)': measure(() => trickle(1, false), 200),
  'browser head 1 byte per read, resuming (ns/head)': measure(() => trickle(1, true), 2_000),
};

if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ node: process.version, arch: process.arch, results }, null, 2));
} else {
  console.log(`HTTP/1.1 framing micro benchmark, node ${process.version} ${process.arch}`);
  for (const [name, ns] of Object.entries(results)) console.log(`  ${ns.toFixed(0).padStart(9)}  ${name}`);
  const small = results['ChunkedScanner, 256 chunks of 16 bytes (ns/op)'];
  console.log(
    `  ChunkedScanner on 16-byte chunks: ${((CHUNKED_SMALL.length / small) * 1000).toFixed(0)} MB/s of framing`,
  );
}
if (sink === 42) console.log('');
