/**
 * Differential test of the HTTP/1.1 framing layer against Node's own llhttp-based server.
 *
 * Every case of a corpus of well-formed and malformed requests (request-smuggling patterns included, much
 * of it generated combinatorially) is framed twice: by src/http/parser, and by a real node:http server on
 * 127.0.0.1 that receives the bytes over a raw TCP connection and records what its handlers see (method,
 * url, rawHeaders, body, rawTrailers) or that it rejected the bytes. The verdicts are compared message by
 * message:
 *
 * - every message we accept, Node accepts at the same position and sees identically (method, target,
 *   header names and values, body bytes, trailers); so we never accept what Node would frame differently;
 * - when Node rejects a message, we reject it too (or an earlier one), unless the case is one of the
 *   {@link EXCEPTIONS} below, where we accept something Node rejects that has only one reading.
 *
 * Node server settings: `insecureHTTPParser: false` (llhttp's strict mode, no lenient flags);
 * `requireHostHeader: true` (HTTP/1.1 without Host is a 400, like ours); `joinDuplicateHeaders: false`
 * (irrelevant: we compare `rawHeaders`, which keep duplicates as sent); `maxHeaderSize` equal to our
 * `maxHeaderBytes`. Chunked bodies are compared after decoding our side with a small test-only decoder over
 * the bytes the ChunkedScanner says belong to the body.
 *
 * The request corpus then goes through a running Switchyard to a second node:http server: the upstream must
 * see exactly the messages our framing accepted (method, origin-form target, body, trailers), and the client
 * one response per message, in order; this checks the engine's rebuilt heads, not just the parser.
 *
 * A second, smaller corpus does the same for upstream responses against Node's HTTP client: every response
 * we accept, Node's client accepts with the same status, raw headers and body (no exceptions needed).
 */

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, test } from 'node:test';
import {
  ChunkedScanner,
  type HttpLimits,
  httpLimits,
  parseRequestHead,
  parseResponseHead,
} from '../src/http/parser/index.ts';
import { Switchyard } from '../src/runtime/switchyard.ts';
import { parseAll, parseResponse, type RawResponse } from './helpers/http.ts';
import { freePort } from './helpers/net.ts';

const LIMITS: HttpLimits = httpLimits();

interface Message {
  method: string;
  url: string;
  rawHeaders: string[];
  body: string;
  trailers: string[];
}

/** How a byte stream ended: every message accepted, rejected, cut short, or handed over as a tunnel. */
type End = 'clean' | 'closed' | 'error' | 'incomplete' | 'tunnel';

interface Outcome {
  messages: Message[];
  end: End;
  detail: string;
}

interface Case {
  name: string;
  bytes: Buffer;
}

// ---------------------------------------------------------------------------------------------------------
// Our side

/** Test-only chunked decoder over bytes the scanner accepted: returns the data and the trailer fields. */
function decodeChunked(buf: Buffer, start: number, end: number): { body: string; trailers: string[] } {
  let p = start;
  let body = '';
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', p, 'latin1');
    const line = buf.toString('latin1', p, lineEnd);
    const size = Number.parseInt(line.split(';')[0], 16);
    p = lineEnd + 2;
    if (size === 0) break;
    body += buf.toString('latin1', p, p + size);
    p += size + 2;
  }
  const trailers: string[] = [];
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', p, 'latin1');
    if (lineEnd === p) break;
    const line = buf.toString('latin1', p, lineEnd);
    const colon = line.indexOf(':');
    trailers.push(line.slice(0, colon), line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, ''));
    p = lineEnd + 2;
  }
  assert.equal(p + 2, end, 'decoder and scanner disagree on the end of the chunked body');
  return { body, trailers };
}

function frameWithSwitchyard(buf: Buffer): Outcome {
  const messages: Message[] = [];
  const scanner = new ChunkedScanner(LIMITS);
  let p = 0;
  while (p < buf.length) {
    const r = parseRequestHead(buf, p, buf.length, LIMITS);
    if (r.kind === 'incomplete') return { messages, end: 'incomplete', detail: 'head' };
    if (r.kind === 'error') return { messages, end: 'error', detail: `${r.status} ${r.code}: ${r.reason}` };
    const message: Message = { method: r.method, url: r.target, rawHeaders: r.headers, body: '', trailers: [] };
    const bodyStart = p + r.consumed;
    if (r.upgrade || r.method === 'CONNECT') {
      messages.push(message);
      return { messages, end: 'tunnel', detail: '' };
    }
    let bodyEnd = bodyStart;
    if (r.chunked) {
      scanner.reset(LIMITS);
      const n = scanner.scan(buf, bodyStart, buf.length);
      if (n < 0) return { messages, end: 'error', detail: `${scanner.error!.code}: ${scanner.error!.reason}` };
      if (!scanner.done) return { messages, end: 'incomplete', detail: 'chunked body' };
      bodyEnd = bodyStart + n;
      const decoded = decodeChunked(buf, bodyStart, bodyEnd);
      assert.equal(decoded.body.length, scanner.bodyBytes);
      message.body = decoded.body;
      message.trailers = decoded.trailers;
    } else if (r.contentLength > 0) {
      bodyEnd = bodyStart + r.contentLength;
      if (bodyEnd > buf.length) return { messages, end: 'incomplete', detail: 'body' };
      message.body = buf.toString('latin1', bodyStart, bodyEnd);
    }
    messages.push(message);
    p = bodyEnd;
    if (!r.keepAlive) return { messages, end: 'closed', detail: '' };
  }
  return { messages, end: 'clean', detail: '' };
}

// ---------------------------------------------------------------------------------------------------------
// Node's side

interface ConnRecord {
  messages: Message[];
  error: string;
  tunnel: boolean;
}

let server: http.Server;
let port = 0;
const records = new Map<number, ConnRecord>();
const serverSockets = new Set<net.Socket>();

function recordFor(socket: net.Socket): ConnRecord {
  let rec = records.get(socket.remotePort!);
  if (rec === undefined) {
    rec = { messages: [], error: '', tunnel: false };
    records.set(socket.remotePort!, rec);
  }
  return rec;
}

function startServer(): Promise<void> {
  server = http.createServer({
    insecureHTTPParser: false,
    requireHostHeader: true,
    joinDuplicateHeaders: false,
    maxHeaderSize: LIMITS.maxHeaderBytes,
  });
  server.on('connection', (socket: net.Socket) => {
    serverSockets.add(socket);
    socket.on('close', () => serverSockets.delete(socket));
    recordFor(socket);
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const rec = recordFor(req.socket);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', (err: NodeJS.ErrnoException) => {
      rec.error ||= `body: ${err.code ?? err.message}`;
    });
    req.on('end', () => {
      rec.messages.push({
        method: req.method!,
        url: req.url!,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks).toString('latin1'),
        trailers: req.rawTrailers,
      });
      res.end('ok');
    });
  });
  const tunnel = (req: http.IncomingMessage, socket: net.Socket) => {
    const rec = recordFor(socket);
    rec.messages.push({ method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, body: '', trailers: [] });
    rec.tunnel = true;
    socket.destroy();
  };
  server.on('upgrade', tunnel);
  server.on('connect', tunnel);
  server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
    const rec = recordFor(socket);
    rec.error ||= err.code ?? err.message;
    socket.destroy();
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      port = (server.address() as net.AddressInfo).port;
      resolve();
    });
  });
}

const clientSockets = new Set<net.Socket>();

function frameWithNode(bytes: Buffer): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    clientSockets.add(socket);
    const replies: Buffer[] = [];
    let localPort = 0;
    const timer = setTimeout(() => socket.destroy(), 5000);
    socket.on('connect', () => {
      localPort = socket.localPort!;
      socket.end(bytes);
    });
    socket.on('data', (d: Buffer) => replies.push(d));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      clientSockets.delete(socket);
      // Let the server finish its side of the close before reading the record.
      setImmediate(() => {
        const rec = records.get(localPort) ?? { messages: [], error: 'no connection record', tunnel: false };
        records.delete(localPort);
        const reply = Buffer.concat(replies).toString('latin1');
        // Interim 1xx replies (100 Continue) are not verdicts.
        const statuses = [...reply.matchAll(/HTTP\/1\.[01] ([2-5]\d\d)/g)].map((m) => m[1]);
        const refused = statuses.find((s) => s !== '200');
        let end: End = 'clean';
        let detail = '';
        if (rec.tunnel) end = 'tunnel';
        else if (rec.error !== '' || refused !== undefined) {
          end = rec.error === 'HPE_INVALID_EOF_STATE' || rec.error === 'body: ECONNRESET' ? 'incomplete' : 'error';
          detail = rec.error || `answered ${refused}`;
        }
        resolve({ messages: rec.messages, end, detail });
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------------------
// The corpus

const CRLF = '\r\n';
const bin = (s: string): Buffer => Buffer.from(s, 'latin1');
const request = (lines: string[], body = ''): Buffer => bin(lines.join(CRLF) + CRLF + CRLF + body);
const CHUNKED_HELLO = `5${CRLF}hello${CRLF}0${CRLF}${CRLF}`;

function buildCorpus(): Case[] {
  const cases: Case[] = [];
  const add = (name: string, bytes: Buffer | string) =>
    cases.push({ name, bytes: typeof bytes === 'string' ? bin(bytes) : bytes });

  // 1. Well-formed requests: methods x targets x versions x body framing.
  const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];
  const targets = ['/', '/a/b/c.html', '/search?q=a+b&lang=en', '/%7Euser/', '/x?json={"a":[1,2]}|^', '/a;b=c/d'];
  for (const m of methods) {
    for (const t of targets) {
      for (const v of ['1.1', '1.0']) {
        const host = 'Host: example.com';
        add(`valid ${m} ${t} HTTP/${v}`, request([`${m} ${t} HTTP/${v}`, host, 'User-Agent: corpus/1']));
        add(`valid ${m} ${t} HTTP/${v} CL`, request([`${m} ${t} HTTP/${v}`, host, 'Content-Length: 5'], 'hello'));
        if (v === '1.1') {
          add(
            `valid ${m} ${t} chunked`,
            request([`${m} ${t} HTTP/${v}`, host, 'Transfer-Encoding: chunked'], CHUNKED_HELLO),
          );
        }
      }
    }
  }
  add('asterisk OPTIONS', request(['OPTIONS * HTTP/1.1', 'Host: example.com']));
  add('asterisk GET', request(['GET * HTTP/1.1', 'Host: example.com']));
  add('absolute-form', request(['GET http://example.com/a?b HTTP/1.1', 'Host: example.com']));
  add('absolute-form https', request(['GET https://example.com:8443/ HTTP/1.1', 'Host: example.com:8443']));
  add('absolute-form empty path', request(['GET http://example.com HTTP/1.1', 'Host: example.com']));
  add('absolute-form host mismatch', request(['GET http://evil.com/ HTTP/1.1', 'Host: example.com']));
  add('absolute-form userinfo', request(['GET http://u:p@example.com/ HTTP/1.1', 'Host: example.com']));
  add('absolute-form ftp', request(['GET ftp://example.com/ HTTP/1.1', 'Host: example.com']));
  add('authority-form CONNECT', request(['CONNECT example.com:443 HTTP/1.1', 'Host: example.com:443']));
  add('authority-form GET', request(['GET example.com:443 HTTP/1.1', 'Host: example.com']));
  add('CONNECT origin-form', request(['CONNECT / HTTP/1.1', 'Host: example.com']));
  add('CONNECT no port', request(['CONNECT example.com HTTP/1.1', 'Host: example.com']));

  // 2. The request line.
  const lines = [
    'GET  / HTTP/1.1',
    'GET /  HTTP/1.1',
    'GET\t/ HTTP/1.1',
    'GET /\tHTTP/1.1',
    ' GET / HTTP/1.1',
    'GET / HTTP/1.1 ',
    'GET / http/1.1',
    'GET / HTTP/1.2',
    'GET / HTTP/2.0',
    'GET / HTTP/0.9',
    'GET / HTTP/1',
    'GET / HTTP/1.10',
    'GET / HTTP/11',
    'GET / HTTPS/1.1',
    'GET /',
    'GET',
    '/ HTTP/1.1',
    'GET  HTTP/1.1',
    'get / HTTP/1.1',
    'G=T / HTTP/1.1',
    'GE T / HTTP/1.1',
    'GET /a b HTTP/1.1',
    'GET /a\x00b HTTP/1.1',
    'GET /a\x7fb HTTP/1.1',
    'GET /a\x80b HTTP/1.1',
    'GET /\xe9 HTTP/1.1',
    'GET /a#frag HTTP/1.1',
    'GET /a\x01 HTTP/1.1',
    'GET a HTTP/1.1',
    'GET ?a HTTP/1.1',
    'GET / HTTP/1.1 extra',
    'FOO / HTTP/1.1',
    'PROPFIND / HTTP/1.1',
    'MKCOL /d HTTP/1.1',
    'PURGE / HTTP/1.1',
    `${'X'.repeat(33)} / HTTP/1.1`,
    'GET /\\ HTTP/1.1',
    'GET /"<>` HTTP/1.1',
    'GET // HTTP/1.1',
  ];
  for (const line of lines) add(`request line ${JSON.stringify(line)}`, request([line, 'Host: example.com']));
  add('leading CRLF', `\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n`);
  add('leading LF', `\nGET / HTTP/1.1\r\nHost: a\r\n\r\n`);
  add('leading CR', `\rGET / HTTP/1.1\r\nHost: a\r\n\r\n`);
  add('leading space line', ` \r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n`);

  // 3. Line endings: each CRLF of a request with a body replaced in turn.
  const base = ['POST /p HTTP/1.1', 'Host: example.com', 'Content-Length: 5', 'X-A: b'];
  const ends = ['\n', '\r', '\r\r\n', '\n\r', '\r \n', '\r\n\r'];
  for (let k = 0; k <= base.length; k++) {
    for (const e of ends) {
      const text = `${base.map((l, i) => l + (i === k ? e : CRLF)).join('') + (k === base.length ? e : CRLF)}hello`;
      add(`line ending ${JSON.stringify(e)} at line ${k}`, text);
    }
  }

  // 4. Field names.
  const names = [
    'X-Test',
    'x-test',
    "X!#$%&'*+-.^_`|~9",
    'X Test',
    'X\tTest',
    'X(Test',
    'X)Test',
    'X/Test',
    'X@Test',
    'X[Test',
    'X]Test',
    'X{Test',
    'X}Test',
    'X"Test',
    'X,Test',
    'X;Test',
    'X=Test',
    'X?Test',
    'X\\Test',
    'X\x00Test',
    'X\x7fTest',
    'X\x80Test',
    'X\xffTest',
    'X-Test ',
    'X-Test\t',
    ' X-Test',
    '\tX-Test',
    '',
    'X<Test',
    'X>Test',
    'X\x01Test',
  ];
  for (const n of names) add(`field name ${JSON.stringify(n)}`, request(['GET / HTTP/1.1', 'Host: a', `${n}: v`]));
  add('field line without colon', request(['GET / HTTP/1.1', 'Host: a', 'X-Test v']));

  // 5. Field values.
  const values = [
    '',
    ' ',
    'a',
    ' a',
    'a ',
    '\ta\t',
    '  a  b  ',
    'a\x00b',
    '\x00',
    'a\x01b',
    'a\x08b',
    'a\x0bb',
    'a\x0cb',
    'a\x1bb',
    'a\x1fb',
    'a\x7fb',
    'a\x80b',
    '\xe9t\xe9',
    '\xff',
    'a\rb',
    'a\r b',
    '"quoted"',
    'a,b;c=d',
    'x'.repeat(4000),
  ];
  for (const v of values)
    add(
      `field value ${JSON.stringify(v.slice(0, 20))} (${v.length})`,
      request(['GET / HTTP/1.1', 'Host: a', `X-Test:${v}`]),
    );
  add('obs-fold', request(['GET / HTTP/1.1', 'Host: a', 'X-Test: a', ' b']));
  add('obs-fold tab', request(['GET / HTTP/1.1', 'Host: a', 'X-Test: a', '\tb']));
  add('obs-fold first line', request(['GET / HTTP/1.1', ' Host: a']));

  // 6. Content-Length.
  const cls = [
    '5',
    '05',
    '0005',
    '+5',
    '-5',
    ' 5',
    '5 ',
    '\t5\t',
    '5,5',
    '5, 5',
    '5 5',
    '0x5',
    '5.0',
    '5e0',
    '',
    'five',
    '99999999999999999999',
    '4',
    '6',
    '0',
    '1\x005',
  ];
  for (const v of cls)
    add(`Content-Length ${JSON.stringify(v)}`, request(['POST / HTTP/1.1', 'Host: a', `Content-Length:${v}`], 'hello'));
  for (const n of [
    'Content-Length',
    'content-length',
    'CONTENT-LENGTH',
    'Content-Length ',
    'Content-Length\t',
    'Content_Length',
    ' Content-Length',
  ]) {
    add(`CL name ${JSON.stringify(n)}`, request(['POST / HTTP/1.1', 'Host: a', `${n}: 5`], 'hello'));
  }
  add('duplicate CL equal', request(['POST / HTTP/1.1', 'Host: a', 'Content-Length: 5', 'Content-Length: 5'], 'hello'));
  add(
    'duplicate CL different',
    request(['POST / HTTP/1.1', 'Host: a', 'Content-Length: 5', 'Content-Length: 6'], 'hello!'),
  );
  add('duplicate CL case', request(['POST / HTTP/1.1', 'Host: a', 'Content-Length: 5', 'content-length: 5'], 'hello'));
  add('CL body short', request(['POST / HTTP/1.1', 'Host: a', 'Content-Length: 10'], 'hello'));
  add('CL on GET', request(['GET / HTTP/1.1', 'Host: a', 'Content-Length: 5'], 'hello'));
  add(
    'CL extra bytes become a request',
    request(['POST / HTTP/1.1', 'Host: a', 'Content-Length: 5'], 'helloGET /2 HTTP/1.1\r\nHost: a\r\n\r\n'),
  );

  // 7. Transfer-Encoding values and names, alone and with Content-Length (CL.TE and TE.CL).
  const tes = [
    'chunked',
    'Chunked',
    'CHUNKED',
    ' chunked',
    'chunked ',
    '\tchunked',
    'chunked\t',
    'xchunked',
    'chunkedx',
    'chunked, chunked',
    'gzip, chunked',
    'chunked, gzip',
    'identity',
    'identity, chunked',
    'gzip',
    ',chunked',
    'chunked,',
    'chunked;q=1',
    '"chunked"',
    'chunk',
    'chu nked',
    'chunked\x00',
    'deflate,chunked',
    ', chunked',
    'x, chunked',
    'chunked , chunked',
    'ch\xfcnked',
    'chunked\x0b',
    '',
  ];
  for (const v of tes) {
    add(`TE ${JSON.stringify(v)}`, request(['POST / HTTP/1.1', 'Host: a', `Transfer-Encoding:${v}`], CHUNKED_HELLO));
    add(
      `CL.TE ${JSON.stringify(v)}`,
      request(['POST / HTTP/1.1', 'Host: a', 'Content-Length: 6', `Transfer-Encoding:${v}`], '0\r\n\r\nG'),
    );
    add(
      `TE.CL ${JSON.stringify(v)}`,
      request(
        ['POST / HTTP/1.1', 'Host: a', `Transfer-Encoding:${v}`, 'Content-Length: 3'],
        '8\r\nSMUGGLED\r\n0\r\n\r\n',
      ),
    );
  }
  const teNames = [
    'Transfer-Encoding',
    'transfer-encoding',
    'TRANSFER-ENCODING',
    'Transfer-Encoding ',
    'Transfer-Encoding\t',
    ' Transfer-Encoding',
    'Transfer_Encoding',
    'Transfer-Encodin',
    'X-Transfer-Encoding',
    'Transfer-Encoding\x0b',
  ];
  for (const n of teNames)
    add(
      `TE name ${JSON.stringify(n)}`,
      request(['POST / HTTP/1.1', 'Host: a', `${n}: chunked`, 'Content-Length: 5'], 'hello'),
    );
  add(
    'TE twice',
    request(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'], CHUNKED_HELLO),
  );
  add(
    'TE gzip then chunked lines',
    request(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: gzip', 'Transfer-Encoding: chunked'], CHUNKED_HELLO),
  );
  add(
    'TE chunked then identity lines',
    request(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', 'Transfer-Encoding: identity'], CHUNKED_HELLO),
  );
  add('TE obs-fold', request(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding:', ' chunked'], CHUNKED_HELLO));
  add('TE in HTTP/1.0', request(['POST / HTTP/1.0', 'Host: a', 'Transfer-Encoding: chunked'], CHUNKED_HELLO));
  add(
    'TE in HTTP/1.0 keep-alive',
    request(['POST / HTTP/1.0', 'Host: a', 'Connection: keep-alive', 'Transfer-Encoding: chunked'], CHUNKED_HELLO),
  );
  add('TE on GET', request(['GET / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], CHUNKED_HELLO));
  const smuggled = 'GET /admin HTTP/1.1\r\nHost: a\r\n\r\n';
  add(
    'CL.TE smuggle',
    request(
      ['POST / HTTP/1.1', 'Host: a', `Content-Length: ${5 + smuggled.length}`, 'Transfer-Encoding: chunked'],
      `0\r\n\r\n${smuggled}`,
    ),
  );
  add(
    'TE.CL smuggle',
    request(
      ['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', 'Content-Length: 4'],
      `${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`,
    ),
  );

  // 8. Chunked bodies.
  const chunkBodies = [
    '5\r\nhello\r\n0\r\n\r\n',
    '5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n',
    '0\r\n\r\n',
    '005\r\nhello\r\n0\r\n\r\n',
    '5\r\nhello\r\n000\r\n\r\n',
    'A\r\n0123456789\r\n0\r\n\r\n',
    'a\r\n0123456789\r\n0\r\n\r\n',
    '0x5\r\nhello\r\n0\r\n\r\n',
    '+5\r\nhello\r\n0\r\n\r\n',
    '-5\r\nhello\r\n0\r\n\r\n',
    ' 5\r\nhello\r\n0\r\n\r\n',
    '5 \r\nhello\r\n0\r\n\r\n',
    '5\t\r\nhello\r\n0\r\n\r\n',
    '5;\r\nhello\r\n0\r\n\r\n',
    '5;a\r\nhello\r\n0\r\n\r\n',
    '5;a=b\r\nhello\r\n0\r\n\r\n',
    '5;a="b c"\r\nhello\r\n0\r\n\r\n',
    '5;a="b\\"c"\r\nhello\r\n0\r\n\r\n',
    '5;a="unterminated\r\nhello\r\n0\r\n\r\n',
    '5 ;a=b\r\nhello\r\n0\r\n\r\n',
    '5; a=b\r\nhello\r\n0\r\n\r\n',
    '5;a = b\r\nhello\r\n0\r\n\r\n',
    '5;a;b;c=d\r\nhello\r\n0\r\n\r\n',
    '5;;\r\nhello\r\n0\r\n\r\n',
    '5;=v\r\nhello\r\n0\r\n\r\n',
    '5;a=\r\nhello\r\n0\r\n\r\n',
    '5;a=b,c\r\nhello\r\n0\r\n\r\n',
    '5;a\x00\r\nhello\r\n0\r\n\r\n',
    '5;a=b\nhello\r\n0\r\n\r\n',
    '5\nhello\r\n0\r\n\r\n',
    '5\r\nhello\n0\r\n\r\n',
    '5\r\nhello0\r\n\r\n',
    '5\r\nhelloXX\r\n0\r\n\r\n',
    '5\r\nhell\r\n0\r\n\r\n',
    '5\r\nhello\r\n0\r\n',
    '5\r\nhello\r\n0\r\n\n',
    '5\r\nhello\r\n0\n\r\n',
    'fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n',
    'ffffffffffffffff\r\nhello\r\n0\r\n\r\n',
    '0000000000000000005\r\nhello\r\n0\r\n\r\n',
    '5\r\nhello\r\n0\r\nX-T: v\r\n\r\n',
    '5\r\nhello\r\n0\r\nX-T: v\r\nY: w\r\n\r\n',
    '5\r\nhello\r\n0\r\nX T: v\r\n\r\n',
    '5\r\nhello\r\n0\r\nX-T : v\r\n\r\n',
    '5\r\nhello\r\n0\r\nX-T: v\x00\r\n\r\n',
    '5\r\nhello\r\n0\r\nX-T: v\r\n w\r\n\r\n',
    '5\r\nhello\r\n0\r\nX-T v\r\n\r\n',
    '5\r\nhello\r\n0\r\nX-T: v\n\r\n',
    '5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n',
    '5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n',
    '5\r\nhello\r\n0\r\nHost: b\r\n\r\n',
    '5\r\nhello\r\n0\r\nConnection: close\r\n\r\n',
    '5\r\nhello\r\n0\r\nHostx: b\r\n\r\n',
    '5\r\nhello\r\n0\r\ncontent-LENGTH: 5\r\n\r\n',
    '5\r\nhello\r\n0\r\nContent-Lengthy: 5\r\n\r\n',
    '5\r\n\r\n\r\n\r\n0\r\n\r\n',
    'g\r\nhello\r\n0\r\n\r\n',
    '\r\n5\r\nhello\r\n0\r\n\r\n',
    '5\r\nhello\r\n0;ext=1\r\n\r\n',
    '5\r\nhello\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n',
    '5\r\rhello\r\n0\r\n\r\n',
    '1;a="\x7f"\r\nx\r\n0\r\n\r\n',
    '1;a="\t"\r\nx\r\n0\r\n\r\n',
    '1;a="\xe9"\r\nx\r\n0\r\n\r\n',
    '1;\xe9\r\nx\r\n0\r\n\r\n',
  ];
  for (const b of chunkBodies)
    add(`chunked body ${JSON.stringify(b)}`, request(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked'], b));

  // 9. Host.
  const hosts = [
    'example.com',
    'EXAMPLE.com',
    'example.com:8080',
    'example.com:',
    '127.0.0.1',
    '[::1]',
    '[::1]:8080',
    '[::1',
    'exa mple.com',
    'example.com:99999',
    'example.com:80a',
    'a@b',
    'a/b',
    'example.com, other.com',
    '',
    'a\x00b',
    'xn--bcher-kva.example',
    'under_score.example',
    '%41.example',
  ];
  for (const h of hosts) add(`Host ${JSON.stringify(h)}`, request(['GET / HTTP/1.1', `Host: ${h}`]));
  add('Host missing 1.1', request(['GET / HTTP/1.1', 'X: y']));
  add('Host missing 1.0', request(['GET / HTTP/1.0', 'X: y']));
  add('Host twice', request(['GET / HTTP/1.1', 'Host: a', 'Host: b']));
  add('Host twice same', request(['GET / HTTP/1.1', 'Host: a', 'Host: a']));

  // 10. Connection, Upgrade, Expect, keep-alive and pipelining.
  add('Connection close', request(['GET / HTTP/1.1', 'Host: a', 'Connection: close']));
  add(
    'Connection close then pipelined',
    bin(
      `${request(['GET / HTTP/1.1', 'Host: a', 'Connection: close']).toString('latin1')}GET /2 HTTP/1.1\r\nHost: a\r\n\r\n`,
    ),
  );
  add('Connection list', request(['GET / HTTP/1.1', 'Host: a', 'Connection: keep-alive, X-Foo', 'X-Foo: 1']));
  add('Connection invalid', request(['GET / HTTP/1.1', 'Host: a', 'Connection: close;x']));
  add('Upgrade websocket', request(['GET /ws HTTP/1.1', 'Host: a', 'Connection: Upgrade', 'Upgrade: websocket']));
  add('Upgrade header only', request(['GET / HTTP/1.1', 'Host: a', 'Upgrade: websocket']));
  add(
    'Expect 100-continue',
    request(['POST / HTTP/1.1', 'Host: a', 'Expect: 100-continue', 'Content-Length: 5'], 'hello'),
  );
  add('HTTP/1.0 keep-alive pipelined', `GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n`);
  add(
    'pipelined three',
    `GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiGET /3 HTTP/1.1\r\nHost: a\r\n\r\n`,
  );
  add(
    'pipelined CRLF between',
    `POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n`,
  );
  add(
    'pipelined chunked then bad',
    `POST /1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /2 HTTP/1.1\nHost: a\r\n\r\n`,
  );

  // Connection naming framing or routing fields (RFC 9110 §7.6.1 forbids the option, but it must
  // never change how the body is framed), and pipelined requests after bodies with extensions and
  // trailers: the engine-level check below feeds these through a running proxy.
  const hidden = 'GET /smuggled HTTP/1.1\r\nHost: internal.admin\r\n\r\n';
  for (const option of [
    'content-length',
    'Content-Length',
    'keep-alive, content-length',
    'close, content-length',
    'transfer-encoding',
    'host',
  ]) {
    add(
      `Connection: ${option} with a Content-Length body`,
      request(['POST /c HTTP/1.1', 'Host: a', `Content-Length: ${hidden.length}`, `Connection: ${option}`], hidden),
    );
  }
  add(
    'Connection: content-length then pipelined',
    request(['POST /c HTTP/1.1', 'Host: a', 'Content-Length: 5', 'Connection: content-length'], `hello${hidden}`),
  );
  add(
    'Connection: transfer-encoding with a chunked body',
    request(
      ['POST /c HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', 'Connection: transfer-encoding'],
      `${hidden.length.toString(16)}\r\n${hidden}\r\n0\r\n\r\n`,
    ),
  );
  add(
    'pipelined after chunked with extensions and trailers',
    `POST /1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0;last\r\nX-Trailer: t\r\n\r\n` +
      `GET /2 HTTP/1.1\r\nHost: a\r\n\r\nPOST /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi` +
      `PUT /4 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nDELETE /5 HTTP/1.1\r\nHost: a\r\n\r\n`,
  );
  add(
    'pipelined after a body holding a request head',
    request(['POST /1 HTTP/1.1', 'Host: a', `Content-Length: ${hidden.length}`], `${hidden}${hidden}`),
  );

  // 11. Limits.
  add('URI at the limit', request([`GET /${'a'.repeat(LIMITS.maxUriBytes - 1)} HTTP/1.1`, 'Host: a']));
  add('URI over the limit', request([`GET /${'a'.repeat(LIMITS.maxUriBytes)} HTTP/1.1`, 'Host: a']));
  const many = (n: number) => Array.from({ length: n }, (_, i) => `X-${i}: ${i}`);
  add('100 fields', request(['GET / HTTP/1.1', 'Host: a', ...many(99)]));
  add('101 fields', request(['GET / HTTP/1.1', 'Host: a', ...many(100)]));
  add('head over 16 KiB', request(['GET / HTTP/1.1', 'Host: a', `X-Big: ${'b'.repeat(LIMITS.maxHeaderBytes)}`]));
  add(
    'head just under 16 KiB',
    request(['GET / HTTP/1.1', 'Host: a', `X-Big: ${'b'.repeat(LIMITS.maxHeaderBytes - 200)}`]),
  );

  // 12. Combinatorial smuggling: obfuscated TE field lines x framing companions.
  const teLines = [
    'Transfer-Encoding: chunked',
    'Transfer-Encoding : chunked',
    'Transfer-Encoding:\tchunked',
    'Transfer-Encoding: xchunked',
    'Transfer-Encoding:\x0bchunked',
    'Transfer-Encoding: chunked\x00',
    'Transfer-Encoding\r\n : chunked',
    'Transfer-Encoding: chunked, identity',
    'Transfer-Encoding: identity',
  ];
  const companions: [string, string[], string][] = [
    ['alone', [], CHUNKED_HELLO],
    ['CL before', ['Content-Length: 4'], '5\r\nhello\r\n0\r\n\r\n'],
    ['CL after', [], '5\r\nhello\r\n0\r\n\r\n'],
    ['second TE plain', ['Transfer-Encoding: chunked'], CHUNKED_HELLO],
  ];
  for (const te of teLines) {
    for (const [label, extra, body] of companions) {
      const fieldsList = label === 'CL after' ? [te, 'Content-Length: 4'] : [...extra, te];
      add(`smuggle ${JSON.stringify(te)} ${label}`, request(['POST / HTTP/1.1', 'Host: a', ...fieldsList], body));
    }
  }
  return cases;
}

// ---------------------------------------------------------------------------------------------------------
// Documented exceptions: messages we accept although Node rejects them. Each must have exactly one reading.

interface Exception {
  why: string;
  applies: (c: Case, node: Outcome) => boolean;
}

const EXCEPTIONS: Exception[] = [
  {
    why:
      'extension methods: any RFC 9110 token is a method (case-sensitive, so `get` is not `GET`); llhttp only ' +
      'knows a fixed list. The method does not take part in request framing, so there is one reading.',
    applies: (c, node) =>
      node.detail === 'HPE_INVALID_METHOD' && /^[A-Za-z]+ \//.test(c.bytes.toString('latin1', 0, 40)),
  },
];

// ---------------------------------------------------------------------------------------------------------

function compare(c: Case, ours: Outcome, node: Outcome): string | null {
  const k = Math.min(ours.messages.length, node.messages.length);
  for (let i = 0; i < k; i++) {
    try {
      assert.deepEqual(ours.messages[i], node.messages[i]);
    } catch {
      return `message ${i} differs:\n  ours ${JSON.stringify(ours.messages[i])}\n  node ${JSON.stringify(node.messages[i])}`;
    }
  }
  if (ours.end === 'closed' || ours.end === 'tunnel') {
    if (node.messages.length >= ours.messages.length) return null;
  }
  if (ours.messages.length > node.messages.length) {
    return `we accepted message ${node.messages.length} (${ours.end}) that Node did not: node ${node.end} ${node.detail}`;
  }
  if (ours.messages.length === node.messages.length && ours.end === 'clean' && node.end !== 'clean') {
    return `we ended clean, node ${node.end} ${node.detail}`;
  }
  void c;
  return null;
}

before(startServer);
after(async () => {
  for (const s of clientSockets) s.destroy();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

test('framing agrees with Node (llhttp) on the request corpus', async () => {
  const corpus = buildCorpus();
  const results: { c: Case; ours: Outcome; node: Outcome }[] = [];
  const queue = [...corpus];
  const worker = async () => {
    for (let c = queue.shift(); c !== undefined; c = queue.shift()) {
      results.push({ c, ours: frameWithSwitchyard(c.bytes), node: await frameWithNode(c.bytes) });
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));

  let oursAccepted = 0;
  let nodeAccepted = 0;
  let bothRejected = 0;
  let stricter = 0;
  const exceptionsUsed = new Map<string, string[]>();
  const violations: string[] = [];
  for (const { c, ours, node } of results) {
    const oursOk = ours.end === 'clean' || ours.end === 'closed' || ours.end === 'tunnel';
    const nodeOk = node.end === 'clean' || node.end === 'tunnel';
    if (oursOk) oursAccepted++;
    if (nodeOk) nodeAccepted++;
    if (!oursOk && !nodeOk) bothRejected++;
    if (!oursOk && nodeOk) stricter++;
    if (process.env.HTTP_DIFF_DUMP) {
      console.log(
        `${oursOk ? 'ACCEPT' : 'reject'} ${nodeOk ? 'ACCEPT' : 'reject'} ${c.name} | ${ours.detail} | ${node.detail}`,
      );
    }
    const problem = compare(c, ours, node);
    if (problem === null) continue;
    const exception = EXCEPTIONS.find((e) => e.applies(c, node));
    if (exception !== undefined) {
      exceptionsUsed.set(exception.why, [...(exceptionsUsed.get(exception.why) ?? []), c.name]);
      continue;
    }
    violations.push(`${c.name}: ${problem}\n  ours: ${ours.end} ${ours.detail}`);
  }
  console.log(
    `http differential: ${corpus.length} cases; switchyard accepted ${oursAccepted}, rejected ${corpus.length - oursAccepted}; ` +
      `node accepted ${nodeAccepted}; both rejected ${bothRejected}; only switchyard rejected ${stricter}; ` +
      `documented exceptions used ${[...exceptionsUsed.values()].reduce((n, v) => n + v.length, 0)}`,
  );
  for (const [why, names] of exceptionsUsed) console.log(`  exception (${names.length}): ${why}`);
  assert.ok(corpus.length >= 300, 'the corpus should hold several hundred cases');
  assert.deepEqual(violations, []);
});

// ---------------------------------------------------------------------------------------------------------
// The engine: the same corpus again, through a running Switchyard to a second node:http server (llhttp,
// strict). Parsing that agrees with Node is not enough: the engine rebuilds every head, and a field it drops
// or adds can change the framing the upstream sees (`Connection: content-length` stripping the body's
// Content-Length was one, fixed in dac809a). For every case, the upstream must see exactly the messages our
// framing accepted, in order (method, origin-form target, body, trailers) and nothing else, and never bytes
// it cannot parse; the client must get one response per forwarded message, in order, then at most one
// local answer (the refusal of what followed).

/** One message as the engine's upstream received it. */
interface Forwarded {
  method: string;
  url: string;
  body: string;
  trailers: string[];
}

/** Completed messages by client address (the X-Forwarded-For the engine sets: clients are untrusted). */
const forwardedBy = new Map<string, Forwarded[]>();
const upstreamParseErrors: string[] = [];

function startEngineUpstream(): Promise<http.Server> {
  // Room for the fields the engine adds to heads near our own 16 KiB limit.
  const upstream = http.createServer({ insecureHTTPParser: false, requireHostHeader: true, maxHeaderSize: 65_536 });
  const record = (req: http.IncomingMessage, message: Forwarded) => {
    const client = String(req.headers['x-forwarded-for']);
    forwardedBy.set(client, [...(forwardedBy.get(client) ?? []), message]);
  };
  upstream.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    // Only a message whose body arrived whole counts: the engine may have begun one it then refused.
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('latin1');
      record(req, { method: req.method!, url: req.url!, body, trailers: req.rawTrailers });
      const text = `${req.method} ${req.url}`;
      // Content-Length even for HTTP/1.0 (which node:http would close-delimit), so the engine may keep
      // the client connection and every pipelined request gets its turn.
      res.setHeader('x-upstream', '1');
      res.setHeader('content-length', Buffer.byteLength(text));
      res.end(text);
    });
  });
  upstream.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
    record(req, { method: req.method!, url: req.url!, body: '', trailers: [] });
    const text = `${req.method} ${req.url}`;
    socket.end(
      `HTTP/1.1 400 Bad Request\r\nx-upstream: 1\r\nconnection: close\r\ncontent-length: ${text.length}\r\n\r\n${text}`,
    );
    // An upgrade socket is handed over paused: read on, so the proxy's FIN closes it.
    socket.resume();
  });
  upstream.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
    // A message cut short (the engine gave up a request whose body never completed) is not a parse error.
    if (err.code !== 'HPE_INVALID_EOF_STATE' && err.code !== 'ECONNRESET')
      upstreamParseErrors.push(err.code ?? err.message);
    socket.destroy();
  });
  return new Promise((resolve) => upstream.listen(0, '127.0.0.1', () => resolve(upstream)));
}

/** What the upstream should receive for a case: our accepted messages, up to a CONNECT (answered 405). */
function expectedUpstream(ours: Outcome): Forwarded[] {
  const out: Forwarded[] = [];
  for (const m of ours.messages) {
    if (m.method === 'CONNECT') break;
    out.push({ method: m.method, url: originForm(m.url), body: m.body, trailers: m.trailers });
  }
  return out;
}

/** The engine sends targets upstream in origin form. */
function originForm(target: string): string {
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?]*(.*)$/.exec(target);
  if (m === null) return target;
  return m[1] === '' || m[1].startsWith('?') ? `/${m[1]}` : m[1];
}

/**
 * Writes a case from `localAddress` and collects what the engine answers until it closes. The client
 * half-closes only once the responses to the `expected` messages are in (and a little after, so a message
 * the engine should not have forwarded has time to show): a client FIN makes the engine finish the
 * exchange in flight and close, which would hide pipelined requests it never started.
 */
function throughEngine(
  proxyPort: number,
  bytes: Buffer,
  localAddress: string,
  expected: Forwarded[],
): Promise<{ reply: Buffer; timedOut: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect({ port: proxyPort, host: '127.0.0.1', localAddress });
    clientSockets.add(socket);
    const replies: Buffer[] = [];
    let timedOut = false;
    let finals = 0;
    let at = 0;
    let ending: NodeJS.Timeout | null = null;
    const endSoon = () => {
      ending ??= setTimeout(() => socket.end(), 20);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, 5000);
    socket.on('connect', () => {
      socket.write(bytes);
      if (expected.length === 0) endSoon();
    });
    socket.on('data', (d: Buffer) => {
      replies.push(d);
      const reply = Buffer.concat(replies);
      try {
        for (let step = parseResponse(reply, at, expected[finals]?.method ?? 'GET', false); step !== null; ) {
          finals++;
          at = step.end;
          step = parseResponse(reply, at, expected[finals]?.method ?? 'GET', false);
        }
      } catch {
        endSoon();
      }
      if (finals >= expected.length) endSoon();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      if (ending !== null) clearTimeout(ending);
      clientSockets.delete(socket);
      resolve({ reply: Buffer.concat(replies), timedOut });
    });
  });
}

function judgeEngine(expected: Forwarded[], seen: Forwarded[], reply: Buffer, timedOut: boolean): string | null {
  if (timedOut) return 'the engine did not close the connection within 5 s';
  try {
    assert.deepEqual(seen, expected);
  } catch {
    return `upstream saw ${JSON.stringify(seen)}\n  expected ${JSON.stringify(expected)}`;
  }
  let responses: RawResponse[];
  try {
    responses = parseAll(reply, [...expected.map((m) => m.method), 'GET']);
  } catch (error) {
    return `client got unparseable bytes (${(error as Error).message}): ${JSON.stringify(reply.toString('latin1').slice(0, 300))}`;
  }
  for (let i = 0; i < responses.length; i++) {
    const r = responses[i];
    const relayed = r.headers['x-upstream'] === '1';
    if (i < expected.length) {
      const m = expected[i];
      if (!relayed) return `response ${i} is a local ${r.status}, not the upstream's answer to ${m.method} ${m.url}`;
      if (m.method !== 'HEAD' && r.body.toString('latin1') !== `${m.method} ${m.url}`)
        return `response ${i} answers ${JSON.stringify(r.body.toString('latin1'))}, not ${m.method} ${m.url}`;
    } else if (relayed || i > expected.length) {
      return `${responses.length} responses for ${expected.length} forwarded messages`;
    }
  }
  if (responses.length < expected.length) return `${responses.length} responses for ${expected.length} messages`;
  return null;
}

test('the engine forwards exactly the messages the framing accepts, and answers each one in order', async () => {
  const upstream = await startEngineUpstream();
  const proxyPort = await freePort();
  const proxy = await Switchyard.start({
    bind: '127.0.0.1',
    log: { level: 'silent' },
    routes: [
      {
        name: 'all',
        match: { ports: proxyPort },
        action: {
          type: 'forward',
          mode: 'http',
          targets: [`127.0.0.1:${(upstream.address() as net.AddressInfo).port}`],
        },
      },
    ],
  });
  const corpus = buildCorpus();
  const violations: string[] = [];
  let forwarded = 0;
  let expectedTotal = 0;
  let skipped = 0;
  try {
    const queue = [...corpus];
    // One client address per worker, so the upstream can tell whose messages it got.
    const worker = async (slot: number) => {
      const address = `127.0.0.${20 + slot}`;
      for (let c = queue.shift(); c !== undefined; c = queue.shift()) {
        const ours = frameWithSwitchyard(c.bytes);
        // Extension methods: llhttp would refuse them upstream (the documented exception above).
        if (ours.messages.some((m) => !http.METHODS.includes(m.method))) {
          skipped++;
          continue;
        }
        const expected = expectedUpstream(ours);
        expectedTotal += expected.length;
        const { reply, timedOut } = await throughEngine(proxyPort, c.bytes, address, expected);
        const seen = forwardedBy.get(address) ?? [];
        forwardedBy.delete(address);
        forwarded += seen.length;
        const problem = judgeEngine(expected, seen, reply, timedOut);
        if (problem !== null) violations.push(`${c.name}: ${problem}`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, slot) => worker(slot)));
  } finally {
    await proxy.close();
    upstream.closeAllConnections();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  }
  console.log(
    `http engine differential: ${corpus.length} cases (${skipped} with extension methods skipped); ` +
      `${forwarded} messages reached the upstream`,
  );
  assert.deepEqual(violations, []);
  assert.deepEqual(upstreamParseErrors, [], 'the upstream was sent bytes it could not parse');
  assert.equal(forwarded, expectedTotal);
  assert.ok(expectedTotal >= 300, 'the corpus should send hundreds of messages upstream');
});

// ---------------------------------------------------------------------------------------------------------
// Responses: the same comparison for upstream responses, against Node's HTTP client (llhttp in response
// mode). A raw TCP server writes each case's bytes and closes; the client records status, rawHeaders and
// body, or the error. Our side applies parseResponseHead (skipping 1xx interim heads) and the body framing.

interface ResponseOutcome {
  ok: boolean;
  status: number;
  rawHeaders: string[];
  body: string;
  detail: string;
}

function frameResponseWithSwitchyard(buf: Buffer): ResponseOutcome {
  const fail = (detail: string): ResponseOutcome => ({ ok: false, status: 0, rawHeaders: [], body: '', detail });
  let p = 0;
  for (;;) {
    const r = parseResponseHead(buf, p, buf.length, LIMITS, 'GET');
    if (r.kind === 'incomplete') return fail('incomplete head');
    if (r.kind === 'error') return fail(`${r.code}: ${r.reason}`);
    const bodyStart = p + r.consumed;
    if (r.interim) {
      p = bodyStart;
      continue;
    }
    let body = '';
    let end = bodyStart;
    if (r.framing === 'length') {
      end = bodyStart + r.contentLength;
      if (end > buf.length) return fail('incomplete body');
      body = buf.toString('latin1', bodyStart, end);
    } else if (r.framing === 'chunked') {
      const scanner = new ChunkedScanner(LIMITS, Number.POSITIVE_INFINITY, true);
      const n = scanner.scan(buf, bodyStart, buf.length);
      if (n < 0) return fail(`${scanner.error!.code}: ${scanner.error!.reason}`);
      if (!scanner.done) return fail('incomplete chunked body');
      end = bodyStart + n;
      body = decodeChunked(buf, bodyStart, end).body;
    } else if (r.framing === 'close') {
      end = buf.length;
      body = buf.toString('latin1', bodyStart);
    }
    // Bytes after a complete response on a connection the client asked to close are not a response:
    // Node's client fails on them, and the engine would discard the connection rather than read them.
    if (end < buf.length && r.framing !== 'tunnel') return fail('bytes after the response');
    return { ok: true, status: r.status, rawHeaders: r.headers, body, detail: r.framing };
  }
}

function frameResponseWithNode(bytes: Buffer): Promise<ResponseOutcome> {
  return new Promise((resolve) => {
    const raw = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => socket.end(bytes));
    });
    raw.listen(0, '127.0.0.1', () => {
      let settled = false;
      const done = (o: ResponseOutcome) => {
        if (settled) return;
        settled = true;
        raw.close();
        resolve(o);
      };
      const fail = (detail: string) => done({ ok: false, status: 0, rawHeaders: [], body: '', detail });
      const req = http.get({
        host: '127.0.0.1',
        port: (raw.address() as net.AddressInfo).port,
        agent: false,
        insecureHTTPParser: false,
      });
      req.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message));
      req.on('upgrade', (res: http.IncomingMessage, socket: net.Socket) => {
        socket.destroy();
        done({ ok: true, status: res.statusCode!, rawHeaders: res.rawHeaders, body: '', detail: 'upgrade' });
      });
      req.on('response', (res: http.IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message));
        res.on('aborted', () => fail('aborted'));
        res.on('end', () => {
          if (!res.complete) return fail('incomplete');
          done({
            ok: true,
            status: res.statusCode!,
            rawHeaders: res.rawHeaders,
            body: Buffer.concat(chunks).toString('latin1'),
            detail: '',
          });
        });
      });
    });
  });
}

function buildResponseCorpus(): Case[] {
  const cases: Case[] = [];
  const add = (name: string, s: string) => cases.push({ name, bytes: bin(s) });
  const res = (lines: string[], body = '') => `${lines.join(CRLF)}${CRLF}${CRLF}${body}`;
  for (const line of [
    'HTTP/1.1 200 OK',
    'HTTP/1.1 200',
    'HTTP/1.1 200 ',
    'HTTP/1.0 200 OK',
    'HTTP/1.1 404 Not Found',
    'HTTP/1.1 599 X',
    'HTTP/1.1 600 X',
    'HTTP/1.1 099 X',
    'HTTP/1.1 20 OK',
    'HTTP/1.1 2000 OK',
    'HTTP/1.1  200 OK',
    'HTTP/2.0 200 OK',
    'http/1.1 200 OK',
    'HTTP/1.1 200 O\x00K',
    'HTTP/1.1 200 \xe9',
    'HTTP/1.1\t200 OK',
    'HTTP/1.1 200 OK\r',
  ]) {
    add(`status line ${JSON.stringify(line)}`, res([line, 'Content-Length: 2'], 'hi'));
  }
  for (const v of ['2', '02', '+2', '-2', ' 2', '2 ', '2,2', '0x2', '', '99999999999999999999', '1', '3']) {
    add(`CL ${JSON.stringify(v)}`, res(['HTTP/1.1 200 OK', `Content-Length:${v}`], 'hi'));
  }
  add('CL twice', res(['HTTP/1.1 200 OK', 'Content-Length: 2', 'Content-Length: 2'], 'hi'));
  for (const v of [
    'chunked',
    'Chunked',
    ' chunked',
    'chunked\t',
    'xchunked',
    'gzip',
    'gzip, chunked',
    'chunked, gzip',
    'identity',
    'chunked, chunked',
    ',chunked',
  ]) {
    add(`TE ${JSON.stringify(v)}`, res(['HTTP/1.1 200 OK', `Transfer-Encoding:${v}`], CHUNKED_HELLO));
    add(
      `CL+TE ${JSON.stringify(v)}`,
      res(['HTTP/1.1 200 OK', 'Content-Length: 3', `Transfer-Encoding:${v}`], CHUNKED_HELLO),
    );
  }
  add('TE in 1.0', res(['HTTP/1.0 200 OK', 'Transfer-Encoding: chunked'], CHUNKED_HELLO));
  for (const b of [
    '5\r\nhello\r\n0\r\n\r\n',
    '5;a=b\r\nhello\r\n0\r\n\r\n',
    '5 \r\nhello\r\n0\r\n\r\n',
    '0x5\r\nhello\r\n0\r\n\r\n',
    '5\r\nhello\n0\r\n\r\n',
    '5\r\nhello\r\n0\r\nX: y\r\n\r\n',
    '5\r\nhello\r\n0\r\nContent-Length: 1\r\n\r\n',
    'fffffffffffffffffff\r\nhello\r\n0\r\n\r\n',
    '5\r\nhelloXX\r\n0\r\n\r\n',
  ]) {
    add(`chunked ${JSON.stringify(b)}`, res(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'], b));
  }
  add('close-delimited', res(['HTTP/1.1 200 OK', 'X: y'], 'all of this until close'));
  add('close-delimited 1.0', res(['HTTP/1.0 200 OK'], 'body'));
  add('204', res(['HTTP/1.1 204 No Content']));
  add('204 CL 0', res(['HTTP/1.1 204 No Content', 'Content-Length: 0']));
  add('204 CL 5', res(['HTTP/1.1 204 No Content', 'Content-Length: 5'], 'hello'));
  add('304 CL', res(['HTTP/1.1 304 Not Modified', 'Content-Length: 5']));
  add('100 then 200', `HTTP/1.1 100 Continue\r\n\r\n${res(['HTTP/1.1 200 OK', 'Content-Length: 2'], 'hi')}`);
  add(
    '103 then 200',
    `HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n${res(['HTTP/1.1 200 OK', 'Content-Length: 2'], 'hi')}`,
  );
  add('obs-fold', res(['HTTP/1.1 200 OK', 'X: a', ' b', 'Content-Length: 2'], 'hi'));
  add('bare LF', 'HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nhi');
  add('bare LF everywhere', 'HTTP/1.1 200 OK\nContent-Length: 2\n\nhi');
  add('space before colon', res(['HTTP/1.1 200 OK', 'Content-Length : 2'], 'hi'));
  add('NUL in value', res(['HTTP/1.1 200 OK', 'X: a\x00b', 'Content-Length: 2'], 'hi'));
  add('obs-text value', res(['HTTP/1.1 200 OK', 'X: \xe9\xff', 'Content-Length: 2'], 'hi'));
  add('leading CRLF', `\r\n${res(['HTTP/1.1 200 OK', 'Content-Length: 2'], 'hi')}`);
  return cases;
}

test('response framing agrees with Node (llhttp client)', async () => {
  const corpus = buildResponseCorpus();
  let oursAccepted = 0;
  let nodeAccepted = 0;
  const violations: string[] = [];
  for (const c of corpus) {
    const ours = frameResponseWithSwitchyard(c.bytes);
    const node = await frameResponseWithNode(c.bytes);
    if (process.env.HTTP_DIFF_DUMP)
      console.log(
        `${ours.ok ? 'ACCEPT' : 'reject'} ${node.ok ? 'ACCEPT' : 'reject'} ${c.name} | ${ours.detail} | ${node.detail}`,
      );
    if (ours.ok) oursAccepted++;
    if (node.ok) nodeAccepted++;
    if (!ours.ok) continue;
    if (!node.ok) {
      violations.push(`${c.name}: we accepted (${ours.detail}), Node: ${node.detail}`);
      continue;
    }
    try {
      assert.deepEqual(
        { status: ours.status, rawHeaders: ours.rawHeaders, body: ours.body },
        { status: node.status, rawHeaders: node.rawHeaders, body: node.body },
      );
    } catch {
      violations.push(`${c.name}: differs\n  ours ${JSON.stringify(ours)}\n  node ${JSON.stringify(node)}`);
    }
  }
  console.log(
    `http response differential: ${corpus.length} cases; switchyard accepted ${oursAccepted}; node accepted ${nodeAccepted}`,
  );
  assert.ok(corpus.length >= 70);
  assert.deepEqual(violations, []);
});
