/**
 * A deterministic OpenAI-compatible server: the built-in `mock` provider, the quick-start
 * backend, and "the same mock upstream" that tests and benchmarks call directly.
 *
 * Replies echo the last user message (`echo: <text>`) and ids derive from the request, so equal
 * requests get byte-identical answers; token counts are whitespace-separated
 * words. Requests with `tools` get a tool call. Streams honour `stream_options.include_usage`.
 * Faults and pacing come from the config, from {@link MockLlmServer.enqueueFaults}, or per
 * request from headers:
 *
 * - `x-mock-fault`: `429`, `400`, `401`, `500`, `503`, `cut`, `slow-first-byte`, `stall`
 * - `x-mock-chunk-size`, `x-mock-chunk-delay-ms`, `x-mock-first-byte-delay-ms`,
 *   `x-mock-retry-after` (seconds), `x-mock-cut-after` (events), `x-mock-line-ending` (`lf`/`crlf`),
 *   `x-mock-reply-repeat` (the echoed text that many times, for large replies)
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type MockConfig, type MockConfigInput, type MockFault, parseMockConfig } from '../schema.ts';

/** Faults a mock can inject, for validation of the `x-mock-fault` header. */
const FAULTS: ReadonlySet<string> = new Set(['429', '500', '400', '401', '503', 'cut', 'slow-first-byte', 'stall']);

/** `created` of every reply, so replies are byte-for-byte reproducible. */
const CREATED = 1_700_000_000;

/** Counters a test or benchmark can read. */
export interface MockCounters {
  /** Requests received (every endpoint). */
  requests: number;
  /** Responses the client abandoned before the mock ended them. */
  disconnects: number;
  /** Responses received and not yet ended by the mock (or abandoned by the client). */
  inFlight: number;
  /** Most responses in progress at once since start (or the last `resetCounters`). */
  maxInFlight: number;
}

/** The last request received, for assertions. */
export interface MockRequestRecord {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown> | null;
}

/** Effective settings of one request: the config with header overrides applied. */
interface RequestSettings {
  fault: MockFault | null;
  chunkSize: number | null;
  chunkDelayMs: number;
  firstByteDelayMs: number;
  retryAfterS: number;
  cutAfterEvents: number;
  eol: string;
  /** Times the echoed text is repeated (large replies for backpressure tests and benchmarks). */
  replyRepeat: number;
}

/** The mock server; see the file comment. */
export class MockLlmServer {
  readonly config: MockConfig;
  readonly counters: MockCounters = { requests: 0, disconnects: 0, inFlight: 0, maxInFlight: 0 };
  lastRequest: MockRequestRecord | null = null;
  #server: Server;
  #sockets = new Set<Socket>();
  #timers = new Set<NodeJS.Timeout>();
  #faults: MockFault[] = [];
  #settled = new WeakSet<ServerResponse>();
  #url = '';

  constructor(config: MockConfigInput = {}) {
    this.config = parseMockConfig(config);
    this.#server = createServer((req, res) => this.#onRequest(req, res));
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  /** Base URL including `/v1`, e.g. `http://127.0.0.1:41234/v1`; empty before `listen`. */
  get url(): string {
    return this.#url;
  }

  /** Starts listening (port 0: any free port) and resolves with {@link url}. */
  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    this.#server.listen(port, host);
    await once(this.#server, 'listening');
    const address = this.#server.address() as AddressInfo;
    const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    this.#url = `http://${shownHost}:${address.port}/v1`;
    return this.#url;
  }

  /** Faults for the next requests, one each, before the configured fault applies again. */
  enqueueFaults(...faults: MockFault[]): void {
    this.#faults.push(...faults);
  }

  /** Zeroes the counters. */
  resetCounters(): void {
    this.counters.requests = 0;
    this.counters.disconnects = 0;
    this.counters.maxInFlight = this.counters.inFlight;
  }

  /** Stops listening, drops every connection and pending timer. */
  async close(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const socket of this.#sockets) socket.destroy();
    if (this.#server.listening) {
      this.#server.close();
      await once(this.#server, 'close');
    }
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.counters.requests++;
    this.counters.inFlight++;
    if (this.counters.inFlight > this.counters.maxInFlight) this.counters.maxInFlight = this.counters.inFlight;
    res.once('close', () => {
      if (this.#settled.has(res)) return;
      this.counters.disconnects++;
      this.#settle(res);
    });
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => {
      this.#route(req, res, Buffer.concat(chunks)).catch((error: Error) => {
        if (!res.headersSent) this.#sendError(res, 500, 'server_error', `mock failed: ${error.message}`, 0);
        else {
          this.#settle(res);
          res.destroy();
        }
      });
    });
  }

  /**
   * Counts a response as done the moment the mock ends it (or drops it on purpose), before the
   * client can see the end: in-flight counts then never lag behind what the client observes.
   */
  #settle(res: ServerResponse): void {
    if (this.#settled.has(res)) return;
    this.#settled.add(res);
    this.counters.inFlight--;
  }

  async #route(req: IncomingMessage, res: ServerResponse, raw: Buffer): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    let body: Record<string, unknown> | null = null;
    if (raw.length > 0) {
      try {
        const parsed: unknown = JSON.parse(raw.toString('utf8'));
        if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
          body = parsed as Record<string, unknown>;
        }
      } catch {
        // Answered below as a 400, like a real provider.
      }
    }
    this.lastRequest = { method: req.method ?? 'GET', path, headers: req.headers, body };
    const settings = this.#settings(req);

    if (settings.fault === 'slow-first-byte') await this.#sleep(settings.firstByteDelayMs || 1000);
    else if (settings.firstByteDelayMs > 0) await this.#sleep(settings.firstByteDelayMs);
    if (res.destroyed) return;

    switch (settings.fault) {
      case '400':
        return this.#sendError(res, 400, 'invalid_request_error', 'mock: bad request', 0, 'messages');
      case '401':
        return this.#sendError(res, 401, 'authentication_error', 'mock: invalid API key', 0);
      case '429':
        return this.#sendError(res, 429, 'rate_limit_error', 'mock: rate limited', settings.retryAfterS);
      case '500':
        return this.#sendError(res, 500, 'server_error', 'mock: internal error', 0);
      case '503':
        return this.#sendError(res, 503, 'server_error', 'mock: overloaded', settings.retryAfterS);
    }

    if (req.method === 'GET' && path.endsWith('/models')) {
      return this.#sendJson(res, {
        object: 'list',
        data: [{ id: 'mock-model', object: 'model', created: CREATED, owned_by: 'switchyard-mock' }],
      });
    }
    if (req.method !== 'POST') return this.#sendError(res, 405, 'invalid_request_error', 'mock: use POST', 0);
    if (body === null) return this.#sendError(res, 400, 'invalid_request_error', 'mock: body is not a JSON object', 0);
    if (path.endsWith('/chat/completions')) return this.#chat(res, body, settings);
    if (path.endsWith('/completions')) return this.#completion(res, body, settings);
    if (path.endsWith('/embeddings')) return this.#embeddings(res, body, settings);
    return this.#sendError(res, 404, 'not_found_error', `mock: no endpoint ${path}`, 0);
  }

  #settings(req: IncomingMessage): RequestSettings {
    const h = req.headers;
    const c = this.config;
    const headerFault =
      typeof h['x-mock-fault'] === 'string' && FAULTS.has(h['x-mock-fault']) ? h['x-mock-fault'] : null;
    const queued = this.#faults.shift();
    const lineEnding = h['x-mock-line-ending'] ?? c.lineEnding;
    return {
      fault: queued ?? (headerFault as MockFault | null) ?? c.fault ?? null,
      chunkSize: headerInt(h['x-mock-chunk-size']) ?? c.chunkSize ?? null,
      chunkDelayMs: headerInt(h['x-mock-chunk-delay-ms']) ?? c.chunkDelayMs,
      firstByteDelayMs: headerInt(h['x-mock-first-byte-delay-ms']) ?? c.firstByteDelayMs,
      retryAfterS: headerInt(h['x-mock-retry-after']) ?? c.retryAfterS,
      cutAfterEvents: headerInt(h['x-mock-cut-after']) ?? c.cutAfterEvents,
      eol: lineEnding === 'crlf' ? '\r\n' : '\n',
      replyRepeat: headerInt(h['x-mock-reply-repeat']) ?? 1,
    };
  }

  async #chat(res: ServerResponse, body: Record<string, unknown>, s: RequestSettings): Promise<void> {
    const model = String(body.model ?? 'mock-model');
    const userText = lastUserText(body.messages);
    const id = `chatcmpl-mock-${fnv1a(model + userText).toString(16)}`;
    const text =
      this.config.reply ?? `echo: ${s.replyRepeat > 1 ? `${userText} `.repeat(s.replyRepeat).trimEnd() : userText}`;
    const tool = pickTool(body.tools, body.tool_choice);
    const promptTokens = countWords(JSON.stringify(body.messages ?? ''));
    const args = JSON.stringify({ echo: userText });
    const completionTokens = tool === null ? countWords(text) : countWords(args);
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    };
    const finish = tool === null ? 'stop' : 'tool_calls';
    const toolCall =
      tool === null
        ? null
        : { id: `call_mock_${fnv1a(args).toString(16)}`, type: 'function', function: { name: tool, arguments: args } };

    if (body.stream !== true) {
      const message: Record<string, unknown> = {
        role: 'assistant',
        content: tool === null ? text : null,
        refusal: null,
      };
      if (toolCall !== null) message.tool_calls = [toolCall];
      return this.#sendJson(
        res,
        {
          id,
          object: 'chat.completion',
          created: CREATED,
          model,
          choices: [{ index: 0, message, logprobs: null, finish_reason: finish }],
          usage,
        },
        s,
      );
    }
    const base = { id, object: 'chat.completion.chunk', created: CREATED, model };
    const events: unknown[] = [
      {
        ...base,
        choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
      },
    ];
    if (toolCall === null) {
      for (const piece of splitWords(text)) {
        events.push({
          ...base,
          choices: [{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }],
        });
      }
    } else {
      const half = Math.ceil(args.length / 2);
      events.push({
        ...base,
        choices: [
          {
            index: 0,
            delta: {
              tool_calls: [{ index: 0, id: toolCall.id, type: 'function', function: { name: tool, arguments: '' } }],
            },
            logprobs: null,
            finish_reason: null,
          },
        ],
      });
      for (const part of [args.slice(0, half), args.slice(half)]) {
        events.push({
          ...base,
          choices: [
            {
              index: 0,
              delta: { tool_calls: [{ index: 0, function: { arguments: part } }] },
              logprobs: null,
              finish_reason: null,
            },
          ],
        });
      }
    }
    events.push({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: finish }] });
    if (includeUsage(body)) events.push({ ...base, choices: [], usage });
    return this.#sendStream(res, events, s);
  }

  async #completion(res: ServerResponse, body: Record<string, unknown>, s: RequestSettings): Promise<void> {
    const model = String(body.model ?? 'mock-model');
    const prompt = Array.isArray(body.prompt) ? body.prompt.join(' ') : String(body.prompt ?? '');
    const id = `cmpl-mock-${fnv1a(model + prompt).toString(16)}`;
    const text = this.config.reply ?? `echo: ${prompt}`;
    const promptTokens = countWords(prompt);
    const completionTokens = countWords(text);
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    };
    const base = { id, object: 'text_completion', created: CREATED, model };
    if (body.stream !== true) {
      return this.#sendJson(
        res,
        { ...base, choices: [{ text, index: 0, logprobs: null, finish_reason: 'stop' }], usage },
        s,
      );
    }
    const events: unknown[] = [];
    for (const piece of splitWords(text)) {
      events.push({ ...base, choices: [{ text: piece, index: 0, logprobs: null, finish_reason: null }] });
    }
    events.push({ ...base, choices: [{ text: '', index: 0, logprobs: null, finish_reason: 'stop' }] });
    if (includeUsage(body)) events.push({ ...base, choices: [], usage });
    return this.#sendStream(res, events, s);
  }

  async #embeddings(res: ServerResponse, body: Record<string, unknown>, s: RequestSettings): Promise<void> {
    const model = String(body.model ?? 'mock-embedding');
    const inputs =
      Array.isArray(body.input) && !body.input.every((x) => typeof x === 'number') ? body.input : [body.input];
    const dimensions =
      typeof body.dimensions === 'number' && body.dimensions > 0 ? body.dimensions : this.config.embeddingDimensions;
    const base64 = body.encoding_format === 'base64';
    let tokens = 0;
    const data = inputs.map((input, index) => {
      const text = typeof input === 'string' ? input : JSON.stringify(input);
      tokens += countWords(text);
      const vector = embed(text, dimensions);
      const embedding = base64
        ? Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64')
        : Array.from(vector);
      return { object: 'embedding', index, embedding };
    });
    return this.#sendJson(
      res,
      { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } },
      s,
    );
  }

  #sendJson(res: ServerResponse, value: unknown, s?: RequestSettings): void {
    const payload = Buffer.from(JSON.stringify(value));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(payload.length) });
    if (s?.fault === 'cut' || s?.fault === 'stall') {
      res.write(payload.subarray(0, payload.length >> 1));
      if (s.fault === 'cut') {
        this.#settle(res);
        res.socket?.destroySoon();
      }
      return;
    }
    this.#settle(res);
    res.end(payload);
  }

  #sendError(
    res: ServerResponse,
    status: number,
    type: string,
    message: string,
    retryAfterS: number,
    param: string | null = null,
  ): void {
    const payload = JSON.stringify({ error: { message, type, code: type, param } });
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(payload)),
    };
    if (status === 429 || status === 503) headers['retry-after'] = String(retryAfterS);
    res.writeHead(status, headers);
    this.#settle(res);
    res.end(payload);
  }

  async #sendStream(res: ServerResponse, events: unknown[], s: RequestSettings): Promise<void> {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
    const blank = s.eol + s.eol;
    const frames: Buffer[] = events.map((e) => Buffer.from(`data: ${JSON.stringify(e)}${blank}`));
    frames.push(Buffer.from(`data: [DONE]${blank}`));
    const stopAfter =
      s.fault === 'cut' || s.fault === 'stall' ? Math.min(s.cutAfterEvents, frames.length - 1) : frames.length;
    let pieces = frames.slice(0, stopAfter);
    if (s.chunkSize !== null) {
      const all = Buffer.concat(pieces);
      pieces = [];
      for (let i = 0; i < all.length; i += s.chunkSize) pieces.push(all.subarray(i, i + s.chunkSize));
    }
    for (let i = 0; i < pieces.length; i++) {
      if (res.destroyed) return;
      if (i > 0 && s.chunkDelayMs > 0) await this.#sleep(s.chunkDelayMs);
      if (res.destroyed) return;
      if (!res.write(pieces[i])) await drainedOrClosed(res);
    }
    if (res.destroyed) return;
    if (s.fault === 'cut') {
      // destroySoon flushes what was written first: the client sees the events, then a
      // connection that dies mid-body.
      this.#settle(res);
      res.socket?.destroySoon();
      return;
    }
    if (s.fault === 'stall') return;
    this.#settle(res);
    res.end();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve();
      }, ms);
      this.#timers.add(timer);
    });
  }
}

/** Resolves when `res` can take more data or is gone, leaving no listener behind. */
function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

function headerInt(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}

function includeUsage(body: Record<string, unknown>): boolean {
  const options = body.stream_options as { include_usage?: unknown } | null | undefined;
  return options?.include_usage === true;
}

function countWords(text: string): number {
  const words = text.trim().split(/\s+/);
  return words[0] === '' ? 0 : words.length;
}

/** Words with their trailing whitespace, so the pieces concatenate back to `text`. */
function splitWords(text: string): string[] {
  return text.match(/\S+\s*|\s+/g) ?? [''];
}

function lastUserText(messages: unknown): string {
  if (!Array.isArray(messages)) return '';
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as { role?: unknown; content?: unknown } | null;
    if (m?.role !== 'user') continue;
    if (typeof m.content === 'string') return m.content;
    if (Array.isArray(m.content)) {
      return m.content
        .map((part: { type?: unknown; text?: unknown }) => (part?.type === 'text' ? String(part.text) : ''))
        .join('');
    }
  }
  return '';
}

/** Name of the tool to call, or null when the request has no tools or forbids calls. */
function pickTool(tools: unknown, choice: unknown): string | null {
  if (!Array.isArray(tools) || tools.length === 0 || choice === 'none') return null;
  const chosen = (choice as { function?: { name?: unknown } } | null)?.function?.name;
  if (typeof chosen === 'string') return chosen;
  const name = (tools[0] as { function?: { name?: unknown } } | null)?.function?.name;
  return typeof name === 'string' ? name : 'tool';
}

/** 32-bit FNV-1a of a string's UTF-16 code units: ids and vectors that depend only on the request. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/** A unit vector derived from FNV-1a hashes of the text: equal texts, equal vectors. */
function embed(text: string, dimensions: number): Float32Array {
  const vector = new Float32Array(dimensions);
  let hash = fnv1a(text);
  let norm = 0;
  for (let d = 0; d < dimensions; d++) {
    hash = Math.imul(hash ^ d, 0x01000193) >>> 0;
    const value = hash / 0xffffffff - 0.5;
    vector[d] = value;
    norm += value * value;
  }
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  for (let d = 0; d < dimensions; d++) vector[d] *= scale;
  return vector;
}
