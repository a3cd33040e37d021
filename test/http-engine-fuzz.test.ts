/**
 * Property test of the whole HTTP engine over real sockets: random byte streams and mutated valid
 * requests (fast-check), written to a proxy port in random splits.
 *
 * Properties, for every input:
 * - the proxy never crashes, and every connection ends within a bounded time (closed by the proxy,
 *   after a 4xx status line when the input was bad, or by its head / keep-alive timeouts);
 * - whatever the proxy writes back starts with a well-formed status line;
 * - when the input holds no complete valid request head, not one byte reaches the upstream;
 * - the upstream (node:http, llhttp in strict mode) never sees a message it cannot parse;
 * and after all runs no client connection is left and no handle leaks. A last property turns it
 * around: mutated upstream responses never crash the engine, and a response head the engine's own
 * parser rejects reaches the client as a 502, never as relayed bytes.
 *
 * Inputs are drawn with `fc.sample` from a fixed seed and run in concurrent batches (a connection
 * waiting for a timeout costs wall time, not CPU); a failure names the input bytes.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { httpLimits, parseRequestHead, parseResponseHead } from '../src/http/parser/index.ts';
import { Switchyard } from '../src/runtime/switchyard.ts';
import { byteArb, mutate, mutationArb } from './helpers/http-fuzz.ts';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { freePort, startServer } from './helpers/net.ts';

const baseline = handleSnapshot();
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_121);
const RUNS_PER_KIND = Number(process.env.FUZZ_RUNS ?? 150);
const BATCH = 30;
const HEAD_TIMEOUT_MS = 300;
const END_WITHIN_MS = 4000;
const LIMITS = httpLimits();

const VALID_REQUESTS = [
  'GET / HTTP/1.1\r\nHost: example.com\r\n\r\n',
  'POST /submit?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello',
  'PUT /up HTTP/1.1\r\nHost: a:8080\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n',
  '\r\nGET /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi',
  'CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n',
  'GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
  'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
  'GET /many HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nX-Forwarded-For: 1.2.3.4\r\nX-Request-Id: r1\r\n\r\n',
  'DELETE /d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
];

/** One input: its bytes and the cut points at which it is split into writes. */
interface Input {
  bytes: Buffer;
  cuts: number[];
}

const splitArb = fc.array(fc.nat(), { maxLength: 6 });
const randomArb: fc.Arbitrary<Input> = fc
  .record({ bytes: fc.uint8Array({ minLength: 1, maxLength: 300 }), cuts: splitArb })
  .map(({ bytes, cuts }) => ({ bytes: Buffer.from(bytes), cuts }));
const randomBytesArb: fc.Arbitrary<Input> = fc
  .record({ bytes: fc.array(byteArb, { minLength: 1, maxLength: 300 }), cuts: splitArb })
  .map(({ bytes, cuts }) => ({ bytes: Buffer.from(bytes), cuts }));
const mutatedArb: fc.Arbitrary<Input> = fc
  .record({
    source: fc.constantFrom(...VALID_REQUESTS),
    mutations: fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
    cuts: splitArb,
  })
  .map(({ source, mutations, cuts }) => ({ bytes: mutate(source, mutations), cuts }));

/** Whether the bytes start with a complete, valid request head (else nothing may go upstream). */
function startsWithValidHead(bytes: Buffer): boolean {
  return parseRequestHead(bytes, 0, bytes.length, LIMITS, null).kind === 'ok';
}

/** The upstream: counts requests, parse errors and bytes received, answers 200 after the body. */
class CountingUpstream {
  server: Server;
  port = 0;
  requests = 0;
  parseErrors: string[] = [];
  closedBytes = 0;
  readonly sockets = new Set<Socket>();

  constructor() {
    this.server = createServer((req, res) => {
      this.requests++;
      req.resume();
      req.on('end', () => res.end('ok'));
      req.on('error', () => {});
    });
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => {
        this.sockets.delete(socket);
        this.closedBytes += socket.bytesRead;
      });
    });
    this.server.on('clientError', (err: Error & { rawPacket?: Buffer }, socket: Socket) => {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      socket.destroy();
      // Not framing errors: llhttp knows a fixed list of methods where RFC 9110 §9.1 allows any
      // token (a proxy forwards them), and EOF mid-message is the proxy abandoning an exchange
      // whose client stalled or sent a bad chunk.
      if (code === 'HPE_INVALID_METHOD' || code === 'HPE_INVALID_EOF_STATE') return;
      this.parseErrors.push(`${code} ${err.message}: ${JSON.stringify(err.rawPacket?.toString('latin1') ?? '')}`);
    });
  }

  /** Bytes received on every connection so far, open or closed. */
  bytes(): number {
    let n = this.closedBytes;
    for (const s of this.sockets) n += s.bytesRead;
    return n;
  }

  async listen(): Promise<void> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }
}

let upstream: CountingUpstream;
let proxy: Switchyard;
let port: number;

before(async () => {
  upstream = new CountingUpstream();
  await upstream.listen();
  port = await freePort();
  proxy = await Switchyard.start({
    bind: '127.0.0.1',
    log: { level: 'silent' },
    http: { headTimeoutMs: HEAD_TIMEOUT_MS, keepAliveTimeoutMs: HEAD_TIMEOUT_MS, maxHeaderBytes: 4096 },
    routes: [
      {
        name: 'fuzz',
        match: { ports: port },
        action: {
          type: 'forward',
          mode: 'http',
          targets: [`127.0.0.1:${upstream.port}`],
          responseTimeoutMs: 1000,
          idleTimeoutMs: 1000,
        },
      },
    ],
  });
});

after(async () => {
  await proxy?.close();
  await upstream?.close();
  await assertNoLeaks(baseline);
});

/** What one connection produced. */
interface Outcome {
  data: Buffer;
  endedWithin: boolean;
  input: Buffer;
}

/** Writes the input in pieces (separate event-loop turns), never half-closes, and waits for the end. */
async function run(input: Input): Promise<Outcome> {
  const socket = connect({ port, host: '127.0.0.1', noDelay: true });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {});
  const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)));
  await once(socket, 'connect');
  const n = input.bytes.length;
  const cuts = [...new Set(input.cuts.map((c) => c % (n + 1)))].sort((a, b) => a - b);
  let from = 0;
  for (const to of [...cuts, n]) {
    if (to > from && !socket.destroyed) socket.write(input.bytes.subarray(from, to));
    from = Math.max(from, to);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const timer = new AbortController();
  const endedWithin = await Promise.race([
    closed,
    sleep(END_WITHIN_MS, false, { signal: timer.signal }).catch(() => false),
  ]);
  timer.abort();
  socket.destroy();
  return { data: Buffer.concat(chunks), endedWithin, input: input.bytes };
}

const STATUS_LINE = /^HTTP\/1\.1 [1-5]\d\d [^\r\n]*\r\n/;
const BAD_INPUT_STATUSES = new Set([400, 408, 413, 414, 431, 501, 505]);

function describe(o: Outcome): string {
  return `input ${JSON.stringify(o.input.toString('latin1'))} -> ${JSON.stringify(o.data.toString('latin1').slice(0, 300))}`;
}

async function runAll(name: string, arb: fc.Arbitrary<Input>, seed: number): Promise<void> {
  const inputs = fc.sample(arb, { numRuns: RUNS_PER_KIND, seed });
  // Inputs with no valid head first, in batches of their own, so upstream counters attribute cleanly.
  const invalid = inputs.filter((i) => !startsWithValidHead(i.bytes));
  const valid = inputs.filter((i) => startsWithValidHead(i.bytes));
  for (const [group, list] of [
    ['invalid', invalid],
    ['valid', valid],
  ] as const) {
    for (let i = 0; i < list.length; i += BATCH) {
      const requestsBefore = upstream.requests;
      const bytesBefore = upstream.bytes();
      const outcomes = await Promise.all(list.slice(i, i + BATCH).map(run));
      for (const o of outcomes) {
        assert.ok(o.endedWithin, `${name}: connection still open after ${END_WITHIN_MS} ms: ${describe(o)}`);
        if (o.data.length > 0) assert.match(o.data.toString('latin1'), STATUS_LINE, `${name}: ${describe(o)}`);
        if (group === 'invalid' && o.data.length > 0) {
          const status = Number(o.data.toString('latin1', 9, 12));
          assert.ok(BAD_INPUT_STATUSES.has(status), `${name}: status ${status} for a bad head: ${describe(o)}`);
        }
      }
      if (group === 'invalid') {
        assert.equal(upstream.requests, requestsBefore, `${name}: an invalid input reached the upstream`);
        assert.equal(upstream.bytes(), bytesBefore, `${name}: bytes of an invalid input reached the upstream`);
      }
      assert.deepEqual(upstream.parseErrors, [], `${name}: the upstream got a message it cannot parse`);
    }
  }
  // The property is not vacuous: some inputs of each kind got through, some did not.
  assert.ok(invalid.length > 0, `${name}: no invalid inputs drawn`);
}

test('random bytes (uniform) never crash the engine nor reach the upstream', async () => {
  await runAll('uniform', randomArb, SEED);
});

test('random bytes (HTTP-flavoured) never crash the engine nor reach the upstream', async () => {
  await runAll('flavoured', randomBytesArb, SEED + 1);
});

test('mutated valid requests: bad ones are refused and closed, good ones answered', async () => {
  const requestsBefore = upstream.requests;
  await runAll('mutated', mutatedArb, SEED + 2);
  assert.ok(upstream.requests > requestsBefore, 'some mutated requests were still valid and forwarded');
});

test('after every run: no client connection left open', async () => {
  const deadline = Date.now() + 3000;
  while (proxy.connectionCount > 0 && Date.now() < deadline) await sleep(20);
  assert.equal(proxy.connectionCount, 0);
  assert.equal(proxy.http.connections.size, 0);
});

const VALID_RESPONSES = [
  'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: v\r\n\r\n',
  'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok',
  'HTTP/1.0 200 OK\r\nX: y\r\n\r\nuntil close',
  'HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n',
  'HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n',
  'HTTP/1.1 404 Not Found\r\nConnection: close, x-hop\r\nx-hop: 1\r\nContent-Length: 4\r\n\r\nnope',
];

test('mutated upstream responses never crash the engine; a bad head becomes a 502', async () => {
  const responses = fc.sample(
    fc.record({
      source: fc.constantFrom(...VALID_RESPONSES),
      mutations: fc.array(mutationArb, { minLength: 0, maxLength: 3 }),
      cuts: splitArb,
      end: fc.boolean(),
    }),
    { numRuns: RUNS_PER_KIND, seed: SEED + 3 },
  );
  // The upstream answers each request /N (pooled connections carry several) with response N,
  // then maybe half-closes. The head is written in pieces; everything from the end of the first
  // head on goes in the last write, so bytes past a response's framing arrive together with it
  // (the engine sees the overrun and never pools the connection). Junk written later would be
  // read as the next exchange's response, which no proxy can tell apart.
  const raw = await startServer((socket) => {
    socket.on('data', async (head: Buffer) => {
      const n = /^GET \/(\d+) /.exec(head.toString('latin1'))?.[1];
      if (n === undefined) return;
      const r = responses[Number(n)];
      const bytes = mutate(r.source, r.mutations);
      const headEnd = bytes.indexOf('\r\n\r\n');
      const limit = headEnd === -1 ? bytes.length + 1 : headEnd + 1;
      let from = 0;
      const cuts = r.cuts.map((c) => c % limit).sort((a, b) => a - b);
      for (const to of cuts) {
        if (to > from && !socket.destroyed) socket.write(bytes.subarray(from, to));
        from = Math.max(from, to);
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (socket.destroyed) return;
      // The FIN goes with the last bytes: an upstream that closes a kept-alive connection a moment
      // later races the proxy reusing it (see the stale-retry test in http-errors.test.ts).
      if (r.end) socket.end(bytes.subarray(from));
      else socket.write(bytes.subarray(from));
    });
  });
  const rawPort = await freePort();
  const rawProxy = await Switchyard.start({
    bind: '127.0.0.1',
    log: { level: 'silent' },
    routes: [
      {
        name: 'responses',
        match: { ports: rawPort },
        action: {
          type: 'forward',
          mode: 'http',
          targets: [`127.0.0.1:${raw.port}`],
          responseTimeoutMs: 500,
          idleTimeoutMs: 500,
        },
      },
    ],
  });
  try {
    for (let i = 0; i < responses.length; i += BATCH) {
      await Promise.all(
        responses.slice(i, i + BATCH).map(async (r, k) => {
          const n = i + k;
          const bytes = mutate(r.source, r.mutations);
          const socket = connect({ port: rawPort, host: '127.0.0.1' });
          const chunks: Buffer[] = [];
          socket.on('data', (c: Buffer) => chunks.push(c));
          socket.on('error', () => {});
          const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)));
          socket.write(`GET /${n} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
          const timer = new AbortController();
          const ended = await Promise.race([
            closed,
            sleep(END_WITHIN_MS, false, { signal: timer.signal }).catch(() => false),
          ]);
          timer.abort();
          socket.destroy();
          const data = Buffer.concat(chunks).toString('latin1');
          const what = `response ${JSON.stringify(bytes.toString('latin1'))} -> ${JSON.stringify(data.slice(0, 300))}`;
          assert.ok(ended, `client connection still open: ${what}`);
          // Interim heads the engine relayed (re-serialised as HTTP/1.1), then the final response.
          const final = data.replace(/^(?:HTTP\/1\.1 1\d\d [^\r]*\r\n(?:[^\r]*\r\n)*?\r\n)+/, '');
          if (final.length > 0) assert.match(final, STATUS_LINE, what);
          // Skip interim responses the way the engine does, then judge the final head.
          let start = 0;
          let verdict = parseResponseHead(bytes, 0, bytes.length, LIMITS, 'GET', null);
          while (verdict.kind === 'ok' && verdict.interim && verdict.status !== 101) {
            start += verdict.consumed;
            verdict = parseResponseHead(bytes, start, bytes.length, LIMITS, 'GET', null);
          }
          if (verdict.kind === 'error') {
            // Only the proxy's own 502 follows any interim heads: no byte of the bad head is relayed.
            assert.match(final, /^HTTP\/1\.1 502 /, what);
            assert.ok(!final.slice(1).includes('HTTP/1.'), what);
          } else if (verdict.kind === 'ok' && verdict.status !== 101) {
            // A malformed chunked body that arrives with its head is caught before the head is
            // relayed, so the proxy's own 502 may stand in for the upstream's status.
            const badFirstChunk = /^HTTP\/1\.1 502 [^\r]*\r\nx-switchyard-error: SY_UPS_BAD_CHUNK\r\n/.test(final);
            assert.ok(data === '' || data.includes(`HTTP/1.1 ${verdict.status} `) || badFirstChunk, what);
          }
        }),
      );
    }
  } finally {
    await rawProxy.close();
    await raw.close();
  }
});
