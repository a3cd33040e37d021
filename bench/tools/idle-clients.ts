/**
 * Opens many keep-alive client connections, sends one request on each, reads the whole response
 * and then holds them all open, idle. Used by the `http-idle` scenario to measure what an idle
 * client connection costs a proxy. Prints one JSON line when every connection has its response
 * (`{"event":"ready",...}`) and one when the hold ends (`{"event":"done",...}`), then exits.
 *
 * node bench/tools/idle-clients.ts --port P [--host H] [--count N] [--path /p] [--concurrency C]
 *   [--hold-ms MS] [--sources 127.0.0.2,127.0.0.3 --source-ports 10000-32767]
 *
 * With `--sources`, each connection is bound to an explicit source address and port, taken in
 * turn from the given addresses and port range (a port in use is skipped). Letting the kernel pick
 * source ports is quadratic here: each connect scans the ephemeral range for a free port, and with
 * ~19,000 of its ~28,000 ports held by this very client (plus TIME_WAIT left by the previous
 * contender) opening 19,000 connections took 30-60 s of mostly system time; with explicit ports,
 * a few seconds.
 */
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    count: { type: 'string', default: '20000' },
    path: { type: 'string', default: '/' },
    concurrency: { type: 'string', default: '50' },
    'hold-ms': { type: 'string', default: '5000' },
    sources: { type: 'string' },
    'source-ports': { type: 'string', default: '10000-32767' },
  },
});
const host = values.host;
const port = Number(values.port);
const count = Number(values.count);
const concurrency = Number(values.concurrency);
const holdMs = Number(values['hold-ms']);
const [lowPort, highPort] = values['source-ports'].split('-').map(Number);
if (!(port > 0 && count > 0 && concurrency > 0 && holdMs >= 0 && lowPort > 0 && highPort >= lowPort)) {
  throw new Error('bad arguments');
}

/** Per source address, the next source port to try. */
const sources = values.sources?.split(',').map((address) => ({ address, nextPort: lowPort })) ?? null;
const request = Buffer.from(`GET ${values.path} HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`);
const HEAD_END = Buffer.from('\r\n\r\n');

let started = 0;
let pending = 0;
let open = 0;
let failed = 0;
let closedEarly = 0;
let portsSkipped = 0;
let firstError: string | null = null;
let ready = false;
const startedAt = performance.now();

function print(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function fail(message: string): void {
  failed++;
  firstError ??= message;
}

/** Connects from the next free source port of source `index % sources`, or lets the kernel pick. */
function connectFrom(index: number): Socket {
  if (sources === null) return connect({ host, port });
  const source = sources[index % sources.length];
  if (source.nextPort > highPort) throw new Error(`source ports of ${source.address} used up`);
  return connect({ host, port, localAddress: source.address, localPort: source.nextPort++ });
}

/** One connection: waits for a complete response to its one request, then stays open. */
function open1(index: number): void {
  pending++;
  let buffered = Buffer.alloc(0);
  let done = false;
  let settled = false;
  let connected = false;
  let socket: Socket;
  try {
    socket = connectFrom(index);
  } catch (error) {
    pending--;
    fail((error as Error).message);
    return;
  }
  const settle = (ok: boolean, message?: string): void => {
    if (settled) return;
    settled = true;
    pending--;
    if (ok) open++;
    else fail(message ?? 'failed');
    next();
  };
  socket.once('connect', () => {
    connected = true;
    socket.write(request);
  });
  socket.on('data', (chunk: Buffer) => {
    if (done) return;
    buffered = Buffer.concat([buffered, chunk]);
    const headEnd = buffered.indexOf(HEAD_END);
    if (headEnd === -1) return;
    const head = buffered.subarray(0, headEnd).toString('latin1');
    if (!/^HTTP\/1\.1 200 /.test(head)) {
      socket.destroy();
      settle(false, `unexpected response: ${head.split('\r\n')[0]}`);
      return;
    }
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (length === null) {
      socket.destroy();
      settle(false, 'response without Content-Length');
      return;
    }
    if (buffered.length - headEnd - HEAD_END.length < Number(length[1])) return;
    done = true;
    buffered = Buffer.alloc(0);
    settle(true);
  });
  socket.on('error', (error: NodeJS.ErrnoException) => {
    // A source port taken by someone else: try the next one, as a new connection.
    if (!connected && sources !== null && (error.code === 'EADDRINUSE' || error.code === 'EADDRNOTAVAIL')) {
      settled = true;
      pending--;
      portsSkipped++;
      open1(index);
      return;
    }
    settle(false, error.message);
  });
  socket.on('close', () => {
    if (!settled) settle(false, 'closed before the response');
    else if (done) {
      open--;
      closedEarly++;
    }
  });
}

function next(): void {
  while (pending < concurrency && started < count) open1(started++);
  if (pending === 0 && started === count && !ready) {
    ready = true;
    const ms = Math.round(performance.now() - startedAt);
    print({ event: 'ready', open, failed, firstError, portsSkipped, ms });
    setTimeout(() => {
      print({ event: 'done', open, closedEarly });
      process.exit(0);
    }, holdMs);
  }
}

process.on('SIGTERM', () => process.exit(0));
next();
