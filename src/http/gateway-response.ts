/**
 * The response side the LLM gateway writes to (`LlmResponse`), over a client connection of the
 * HTTP engine: a head from `writeHead`, then a body framed by Content-Length when the gateway
 * gives one, chunked otherwise (streams), and the exchange finished on `end`.
 */
import type { LlmResponse } from '../llm/types.ts';
import type { ClientConnection } from './client-connection.ts';
import { reasonPhrase } from './local-response.ts';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

/**
 * Largest head plus body `end` copies into one buffer for one `write` (a chat reply fits); a
 * larger body, such as a batch of embeddings, is written beside the head (writev), not copied:
 * copies that size would use up Node's shared allocation pool every few responses, and fresh
 * ArrayBuffers at that rate are the garbage that drove major GCs on http-64k (docs/operations.md,
 * Memory).
 */
const COALESCE_MAX_BYTES = 4 * 1024;

/** End of the tick: sends a head nobody wrote a body after, and releases the cork of `hold`. */
function flush(response: GatewayResponse): void {
  response.scheduled = false;
  if (response.pendingHead !== null) response.sendHead();
  if (response.corked) {
    response.corked = false;
    response.conn.socket.uncork();
  }
}

/** One LLM response in progress. */
export class GatewayResponse implements LlmResponse {
  readonly conn: ClientConnection;
  headersSent: boolean;
  /** Whether the body is sent chunked (no Content-Length from the gateway). */
  chunked: boolean;
  ended: boolean;
  head: boolean;
  /** Status of the head, counted when the head goes to the socket. */
  status: number;
  /**
   * The head `writeHead` built and nothing has written yet. A complete response (`writeHead`
   * then `end(body)`, as the gateway answers every non-streamed request) goes out at once, in one
   * `write` (see {@link COALESCE_MAX_BYTES}); a head without a body in the same tick goes out at
   * its end.
   */
  pendingHead: string | null;
  /**
   * Whether writes are being held until the end of the tick. The gateway writes a head, then
   * events and a last chunk as they come; gathering one tick's writes into one syscall (as
   * node:http does) cut CPU per stream by about a third (bench: llm-stream).
   */
  corked: boolean;
  /** Whether {@link flush} is queued for the end of this tick. */
  scheduled: boolean;

  constructor(conn: ClientConnection, head: boolean) {
    this.conn = conn;
    this.headersSent = false;
    this.chunked = false;
    this.ended = false;
    this.head = head;
    this.status = 0;
    this.pendingHead = null;
    this.corked = false;
    this.scheduled = false;
  }

  /** Queues {@link flush} for the end of the tick, once. */
  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    process.nextTick(flush, this);
  }

  /** Holds this tick's writes back, to go out together once the tick ends. */
  hold(): void {
    if (this.corked) return;
    this.corked = true;
    this.conn.socket.cork();
    this.schedule();
  }

  /** Writes the pending head on its own (it is counted either way). */
  sendHead(): void {
    const head = this.pendingHead!;
    this.pendingHead = null;
    const conn = this.conn;
    if (!this.destroyed) conn.socket.write(head, 'latin1');
    conn.engine.countResponse(conn.route, this.status);
  }

  get destroyed(): boolean {
    return this.conn.socket.destroyed;
  }

  writeHead(status: number, headers: Record<string, string | string[]>): this {
    if (this.headersSent || this.destroyed) return this;
    this.headersSent = true;
    const conn = this.conn;
    let out = `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n`;
    let hasLength = false;
    for (const name in headers) {
      const value = headers[name];
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower)) continue;
      if (lower === 'content-length') hasLength = true;
      if (Array.isArray(value)) for (const v of value) out += `${name}: ${v}\r\n`;
      else out += `${name}: ${value}\r\n`;
    }
    out += `${conn.engine.requestIdHeader}: ${conn.requestId}\r\n`;
    const http10 = conn.req?.versionMinor === 0;
    if (!hasLength && !this.head && status !== 204 && status !== 304) {
      // A stream: chunked for HTTP/1.1 clients; an HTTP/1.0 client reads to the close.
      if (http10) conn.keepAlive = false;
      else {
        this.chunked = true;
        out += 'transfer-encoding: chunked\r\n';
      }
    }
    if (!conn.keepAlive) out += 'connection: close\r\n';
    else if (http10) out += 'connection: keep-alive\r\n';
    this.status = status;
    this.pendingHead = `${out}\r\n`;
    this.schedule();
    return this;
  }

  write(chunk: Buffer | string): boolean {
    if (this.ended || this.destroyed) return false;
    if (!this.headersSent) this.writeHead(200, {});
    const socket = this.conn.socket;
    const length = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    if (length === 0 || this.head) return true;
    this.hold();
    if (this.pendingHead !== null) this.sendHead();
    if (!this.chunked) return socket.write(chunk);
    socket.write(`${length.toString(16)}\r\n`, 'latin1');
    socket.write(chunk);
    return socket.write('\r\n', 'latin1');
  }

  end(chunk?: Buffer | string): this {
    if (this.ended) return this;
    if (chunk !== undefined) {
      if (this.pendingHead !== null && !this.chunked && !this.head && !this.destroyed) this.#sendWhole(chunk);
      else this.write(chunk);
    }
    this.ended = true;
    if (this.destroyed) return this;
    if (!this.headersSent) this.writeHead(200, { 'content-length': '0' });
    // A stream's head (when no event was written) and its last chunk go out together.
    if (this.chunked) this.hold();
    if (this.pendingHead !== null) this.sendHead();
    if (this.chunked) this.conn.socket.write('0\r\n\r\n', 'latin1');
    // Nothing more will be written: flush now rather than at the end of the tick, so the bytes
    // do not wait for the gateway's and undici's bookkeeping after the response.
    if (this.corked) {
      this.corked = false;
      this.conn.socket.uncork();
    }
    this.conn.llmFinished(this);
    return this;
  }

  /**
   * Writes the pending head and a whole Content-Length body: one buffer, one `write`, rather
   * than a head and a body gathered by cork into a writev. For a 326-byte reply that took 3.0
   * against 4.4 µs of CPU per response on the 2-core bench VM (a loop of writes to a loopback
   * socket).
   */
  #sendWhole(chunk: Buffer | string): void {
    const head = this.pendingHead!;
    const body = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const socket = this.conn.socket;
    if (head.length + body.length > COALESCE_MAX_BYTES) {
      this.hold();
      this.sendHead();
      socket.write(body);
      return;
    }
    this.pendingHead = null;
    // The head is latin1 (one byte per character), as sendHead writes it.
    const out = Buffer.allocUnsafe(head.length + body.length);
    out.write(head, 0, 'latin1');
    body.copy(out, head.length);
    socket.write(out);
    this.conn.engine.countResponse(this.conn.route, this.status);
  }

  once(event: 'drain' | 'close', listener: () => void): this {
    this.conn.socket.once(event, listener);
    return this;
  }
}
