/**
 * HTTP test clients over raw sockets: a response parser that keeps every byte as sent (so a test can
 * see exactly what the proxy wrote), a keep-alive client that reads one response at a time, and a
 * one-shot `request()` built on node:http for the plain cases.
 */
import { once } from 'node:events';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';

/** One HTTP response as it came off the wire. */
export interface RawResponse {
  status: number;
  reason: string;
  /** Lower-cased names; repeated fields joined with `, `. */
  headers: Record<string, string>;
  /** Field lines in order, as [name, value, ...]. */
  rawHeaders: string[];
  /** Decoded body (chunked framing removed). */
  body: Buffer;
  /** 1xx responses that came before this one. */
  interim: Array<{ status: number; rawHead: string }>;
  /** Head bytes (status line and fields, up to and without the blank line). */
  rawHead: string;
}

/** Result of trying to parse one response from `buf[start..]`. */
type ParseStep = { response: RawResponse; end: number } | null;

/**
 * Parses one complete response (interim 1xx responses included) starting at `start`; null when more
 * bytes are needed. `ended` says the peer closed, which completes a close-delimited body. Throws on bytes
 * that are not a response.
 */
export function parseResponse(buf: Buffer, start: number, method: string, ended: boolean): ParseStep {
  const interim: RawResponse['interim'] = [];
  let p = start;
  for (;;) {
    const headEnd = buf.indexOf('\r\n\r\n', p, 'latin1');
    if (headEnd === -1) {
      if (ended && p < buf.length) throw new Error(`truncated head: ${JSON.stringify(buf.subarray(p).toString())}`);
      return null;
    }
    const rawHead = buf.toString('latin1', p, headEnd);
    const lines = rawHead.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]);
    if (m === null) throw new Error(`not a status line: ${JSON.stringify(lines[0])}`);
    const status = Number(m[1]);
    const rawHeaders: string[] = [];
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new Error(`bad field line: ${JSON.stringify(line)}`);
      const name = line.slice(0, colon);
      const value = line.slice(colon + 1).trim();
      rawHeaders.push(name, value);
      const lower = name.toLowerCase();
      headers[lower] = lower in headers ? `${headers[lower]}, ${value}` : value;
    }
    p = headEnd + 4;
    if (status >= 100 && status < 200 && status !== 101) {
      interim.push({ status, rawHead });
      continue;
    }
    const base = { status, reason: m[2] ?? '', headers, rawHeaders, interim, rawHead };
    if (method === 'HEAD' || status === 204 || status === 304 || status === 101) {
      return { response: { ...base, body: Buffer.alloc(0) }, end: p };
    }
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', p, 'latin1');
        if (lineEnd === -1) return null;
        const size = Number.parseInt(buf.toString('latin1', p, lineEnd).split(';')[0], 16);
        if (Number.isNaN(size)) throw new Error('bad chunk size');
        if (size === 0) {
          // Trailers, up to an empty line.
          let q = lineEnd + 2;
          for (;;) {
            const e = buf.indexOf('\r\n', q, 'latin1');
            if (e === -1) return null;
            if (e === q) return { response: { ...base, body: Buffer.concat(parts) }, end: e + 2 };
            q = e + 2;
          }
        }
        if (buf.length < lineEnd + 2 + size + 2) return null;
        parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        p = lineEnd + 2 + size + 2;
      }
    }
    if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (buf.length < p + length) return null;
      return { response: { ...base, body: buf.subarray(p, p + length) }, end: p + length };
    }
    if (!ended) return null;
    return { response: { ...base, body: buf.subarray(p) }, end: buf.length };
  }
}

/** Parses every response in a complete byte stream (the peer closed after the last one). */
export function parseAll(buf: Buffer, methods: string[] = []): RawResponse[] {
  const out: RawResponse[] = [];
  let p = 0;
  while (p < buf.length) {
    const step = parseResponse(buf, p, methods[out.length] ?? 'GET', true);
    if (step === null) throw new Error(`incomplete response at byte ${p}`);
    out.push(step.response);
    p = step.end;
  }
  return out;
}

/**
 * A client connection that writes raw bytes and reads responses one at a time, for keep-alive,
 * pipelining and malformed-input tests.
 */
export class RawClient {
  readonly socket: Socket;
  buf: Buffer;
  ended: boolean;
  closed: boolean;
  #waiter: (() => void) | null;

  constructor(port: number) {
    this.socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    this.buf = Buffer.alloc(0);
    this.ended = false;
    this.closed = false;
    this.#waiter = null;
    this.socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.#wake();
    });
    this.socket.on('end', () => {
      this.ended = true;
      this.#wake();
    });
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.closed = true;
      this.ended = true;
      this.#wake();
    });
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  async connected(): Promise<this> {
    if (!this.socket.connecting) return this;
    await once(this.socket, 'connect');
    return this;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Reads the next response; rejects when the connection ends first or after `timeoutMs`. */
  async read(method = 'GET', timeoutMs = 5000): Promise<RawResponse> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const step = parseResponse(this.buf, 0, method, this.ended);
      if (step !== null) {
        this.buf = this.buf.subarray(step.end);
        return step.response;
      }
      if (this.ended) throw new Error(`connection ended before a response; got ${JSON.stringify(this.buf.toString())}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no response within ${timeoutMs} ms; got ${JSON.stringify(this.buf.toString())}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Resolves once the proxy ended or closed the connection (rejects after `timeoutMs`). */
  async waitEnd(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`connection still open after ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * Sends raw bytes on a fresh connection, half-closes unless `end` is false, and collects everything
 * until the proxy closes. `reset` tells whether the connection ended with an error (e.g. ECONNRESET)
 * instead of a clean FIN.
 */
export async function rawExchange(
  port: number,
  payload: string | Buffer,
  options: { end?: boolean; timeoutMs?: number } = {},
): Promise<{ data: Buffer; error: Error | null; timedOut: boolean }> {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const chunks: Buffer[] = [];
  let error: Error | null = null;
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', (e) => {
    error = e;
  });
  socket.on('end', () => socket.end());
  const done = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    socket.destroy();
  }, options.timeoutMs ?? 5000);
  await once(socket, 'connect').catch(() => {});
  if (!socket.destroyed) socket.write(payload);
  if ((options.end ?? true) && !socket.destroyed) socket.end();
  await done;
  clearTimeout(timer);
  return { data: Buffer.concat(chunks), error, timedOut };
}

/** A response read with node:http. */
export interface SimpleResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One request with node:http on its own connection (no agent, `Connection: close`). */
export function request(
  port: number,
  options: { method?: string; path?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: options.method ?? 'GET',
        path: options.path ?? '/',
        headers: options.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}
