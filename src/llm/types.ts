/**
 * The contract between the HTTP engine and the LLM gateway.
 *
 * The engine reads a whole request body (LLM requests are small JSON documents) and hands the
 * exchange to the gateway. The response side is a structural subset of node:http's
 * `ServerResponse`, so the gateway can be driven by node:http in tests and by Switchyard's own
 * engine in production.
 */

/** One request as the engine hands it to the gateway. */
export interface LlmRequest {
  /** Upper-case method, e.g. `POST`. */
  readonly method: string;
  /** Path and query, e.g. `/v1/chat/completions`. */
  readonly url: string;
  /** Request headers, names lower-cased; repeated headers joined with `, `. */
  readonly headers: Readonly<Record<string, string>>;
  /** The complete request body. */
  readonly body: Buffer;
  /** Client address (after a trusted PROXY header), for logs and limits. */
  readonly clientAddress: string;
  /** Aborted as soon as the client disconnects. */
  readonly signal: AbortSignal;
}

/** Response side, a structural subset of node:http's ServerResponse. */
export interface LlmResponse {
  /** Sends the status line and headers. Called once. */
  writeHead(status: number, headers: Record<string, string | string[]>): unknown;
  /** Writes body bytes; false means the client is slow: wait for `drain` before writing more. */
  write(chunk: Buffer | string): boolean;
  /** Ends the response, optionally with a last chunk. */
  end(chunk?: Buffer | string): unknown;
  /** `drain`: the client caught up. `close`: the connection is gone (the request signal aborts too). */
  once(event: 'drain' | 'close', listener: () => void): unknown;
  /** True once the connection is gone. */
  readonly destroyed: boolean;
  /** True once headers were sent. */
  readonly headersSent: boolean;
}
