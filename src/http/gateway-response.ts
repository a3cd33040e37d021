/**
 * The response side the LLM gateway writes to (`LlmResponse`), over a client connection of the
 * HTTP engine: a head from `writeHead`, then a body framed by Content-Length when the gateway
 * gives one, chunked otherwise (streams), and the exchange finished on `end`.
 */
import { flushHeld, needsDrain, writeGathered, writeHeadAndBodySoon } from '../listener/fast-write.ts';
import type { LlmResponse } from '../llm/types.ts';
import type { ClientConnection } from './client-connection.ts';
import { reasonPhrase } from './local-response.ts';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

/**
 * Anything but what a field value may hold (RFC 9110 §5.5: HTAB, SP, visible ASCII, obs-text).
 * A CR or LF would split the head; no value should carry one (undici refuses them in upstream
 * heads, ours are escaped), so this is defence in depth. About 50 ns per value on a 2-core VM
 * (micro loop over the 7 fields of a typical chat response).
 */
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

const CRLF = Buffer.from('\r\n', 'latin1');
const CRLF_LAST_CHUNK = Buffer.from('\r\n0\r\n\r\n', 'latin1');
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

/**
 * End of the tick: sends the stream's gathered events as one chunk (with a head nobody sent
 * yet), or a head nobody wrote a body after, and releases the cork of `hold`.
 */
function flush(response: GatewayResponse): void {
  response.scheduled = false;
  if (response.pieces.length > 0) response.sendPieces(false);
  else if (response.pendingHead !== null) response.sendHead();
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
   * write (see `#sendWhole`); a head without a body in the same tick goes out at its end.
   */
  pendingHead: string | null;
  /**
   * A chunked stream's body bytes written this tick, not sent yet. Upstream events that arrive
   * in one read reach `write` in one tick; they leave at its end as one chunk, with the head
   * before the first and the last chunk after the final one, in one write: one syscall per tick,
   * as cork gave, without Writable's per-write bookkeeping or a chunk frame per event
   * (bench: llm-stream). Nothing waits past the tick that wrote it.
   */
  pieces: Buffer[];
  /** Bytes in {@link pieces}. */
  pieceBytes: number;
  /**
   * Whether writes of a body that is not chunked (an HTTP/1.0 stream) are held by cork until the
   * end of the tick.
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
    this.pieces = [];
    this.pieceBytes = 0;
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
    // Writes the engine held for this socket go first (fast-write.ts).
    flushHeld(this.conn.socket);
    this.conn.socket.cork();
    this.schedule();
  }

  /** Writes the pending head on its own (it is counted either way). */
  sendHead(): void {
    const head = this.pendingHead!;
    this.pendingHead = null;
    const conn = this.conn;
    if (!this.destroyed) {
      flushHeld(conn.socket);
      conn.socket.write(head, 'latin1');
    }
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
    const idName = conn.engine.requestIdHeader;
    let hasLength = false;
    let hasId = false;
    for (const name in headers) {
      const value = headers[name];
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower)) continue;
      if (lower === 'content-length') hasLength = true;
      if (Array.isArray(value)) {
        for (const v of value) {
          if (BAD_VALUE.test(v)) this.#unsafe(name);
          else {
            out += `${name}: ${v}\r\n`;
            if (lower === idName) hasId = true;
          }
        }
      } else if (BAD_VALUE.test(value)) this.#unsafe(name);
      else {
        out += `${name}: ${value}\r\n`;
        if (lower === idName) hasId = true;
      }
    }
    // A provider's own request ID (OpenAI sends `x-request-id` on every reply) is kept, and ours
    // not added beside it, as the forward path does (message-head.ts): two lines of one field
    // reach clients as one joined value, and the SDKs report that as the request ID.
    if (!hasId) out += `${idName}: ${conn.requestId}\r\n`;
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

  /** A field whose value could split the head is left out, and said so. */
  #unsafe(name: string): void {
    this.conn.engine.logger.warn(
      { header: name, requestId: this.conn.requestId },
      'response header with a control character left out',
    );
  }

  write(chunk: Buffer | string): boolean {
    if (this.ended || this.destroyed) return false;
    if (!this.headersSent) this.writeHead(200, {});
    const socket = this.conn.socket;
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (data.length === 0 || this.head) return true;
    if (this.chunked) {
      this.pieces.push(data);
      this.pieceBytes += data.length;
      this.schedule();
      return !needsDrain(socket);
    }
    this.hold();
    if (this.pendingHead !== null) this.sendHead();
    return socket.write(data);
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
    // Nothing more will be written: send now rather than at the end of the tick, so the bytes do
    // not wait for the gateway's and undici's bookkeeping after the response. A stream's head
    // (when no event was written), its last events and its last chunk go out together.
    if (this.chunked) this.sendPieces(true);
    else if (this.pendingHead !== null) this.sendHead();
    if (this.corked) {
      this.corked = false;
      this.conn.socket.uncork();
    }
    this.conn.llmFinished(this);
    return this;
  }

  /**
   * Sends the pending head (if any), the gathered {@link pieces} as one chunk (if any), and with
   * `last` the last chunk, in one write (fast-write.ts `writeGathered`).
   */
  sendPieces(last: boolean): void {
    const pieces = this.pieces;
    const bytes = this.pieceBytes;
    this.pieces = [];
    this.pieceBytes = 0;
    let head = this.pendingHead;
    const counted = head !== null;
    this.pendingHead = null;
    if (bytes > 0) {
      head = `${head ?? ''}${bytes.toString(16)}\r\n`;
      pieces.push(last ? CRLF_LAST_CHUNK : CRLF);
    } else if (last) pieces.push(LAST_CHUNK);
    // Held to the end of the poll phase with the other streams' writes (fast-write.ts); the next
    // write() sees a send that stayed pending through needsDrain.
    if (!this.destroyed) writeGathered(this.conn.socket, head, pieces, false, null);
    if (counted) this.conn.engine.countResponse(this.conn.route, this.status);
  }

  /**
   * Writes the pending head and a whole Content-Length body at once, as the HTTP engine writes a
   * response head with its first body bytes (fast-write.ts `writeHeadAndBody`: a chat reply is
   * copied behind the head into one buffer, a larger body such as a batch of embeddings goes
   * beside it in one writev).
   */
  #sendWhole(chunk: Buffer | string): void {
    const head = this.pendingHead!;
    this.pendingHead = null;
    writeHeadAndBodySoon(this.conn.socket, head, typeof chunk === 'string' ? Buffer.from(chunk) : chunk, false, null);
    this.conn.engine.countResponse(this.conn.route, this.status);
  }

  once(event: 'drain' | 'close', listener: () => void): this {
    this.conn.socket.once(event, listener);
    return this;
  }
}
