/**
 * The response side the LLM gateway writes to (`LlmResponse`), over a client connection of the
 * HTTP engine: a head from `writeHead`, then a body framed by Content-Length when the gateway
 * gives one, chunked otherwise (streams), and the exchange finished on `end`.
 */
import type { LlmResponse } from '../llm/types.ts';
import type { ClientConnection } from './client-connection.ts';
import { reasonPhrase } from './local-response.ts';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

function uncork(response: GatewayResponse): void {
  response.corked = false;
  response.conn.socket.uncork();
}

/** One LLM response in progress. */
export class GatewayResponse implements LlmResponse {
  readonly conn: ClientConnection;
  headersSent: boolean;
  /** Whether the body is sent chunked (no Content-Length from the gateway). */
  chunked: boolean;
  ended: boolean;
  head: boolean;
  /**
   * Whether writes are being held until the end of the tick. The gateway writes a head, then
   * events and a last chunk as they come; gathering one tick's writes into one syscall (as
   * node:http does) cut CPU per stream by about a third (bench: llm-stream).
   */
  corked: boolean;

  constructor(conn: ClientConnection, head: boolean) {
    this.conn = conn;
    this.headersSent = false;
    this.chunked = false;
    this.ended = false;
    this.head = head;
    this.corked = false;
  }

  /** Holds this tick's writes back, to go out together once the tick ends. */
  hold(): void {
    if (this.corked) return;
    this.corked = true;
    this.conn.socket.cork();
    process.nextTick(uncork, this);
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
    for (const [name, value] of Object.entries(headers)) {
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
    conn.engine.countResponse(conn.route, status);
    this.hold();
    conn.socket.write(`${out}\r\n`, 'latin1');
    return this;
  }

  write(chunk: Buffer | string): boolean {
    if (this.ended || this.destroyed) return false;
    if (!this.headersSent) this.writeHead(200, {});
    const socket = this.conn.socket;
    const length = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    if (length === 0 || this.head) return true;
    this.hold();
    if (!this.chunked) return socket.write(chunk);
    socket.write(`${length.toString(16)}\r\n`, 'latin1');
    socket.write(chunk);
    return socket.write('\r\n', 'latin1');
  }

  end(chunk?: Buffer | string): this {
    if (this.ended) return this;
    if (chunk !== undefined) this.write(chunk);
    this.ended = true;
    if (this.destroyed) return this;
    if (!this.headersSent) this.writeHead(200, { 'content-length': '0' });
    if (this.chunked) {
      this.hold();
      this.conn.socket.write('0\r\n\r\n', 'latin1');
    }
    this.conn.llmFinished(this);
    return this;
  }

  once(event: 'drain' | 'close', listener: () => void): this {
    this.conn.socket.once(event, listener);
    return this;
  }
}
