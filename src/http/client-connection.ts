/**
 * One client connection of the HTTP/1.1 engine: reads requests, routes each one, forwards it over a
 * pooled upstream connection (or answers it locally) and relays the response, one exchange at a
 * time so pipelined requests are answered in order.
 *
 * Hot path (DESIGN.md decision 2). Choices measured with `npm run bench -- --only http-small`
 * (docs/benchmarks.md):
 * - all per-request state lives in fields of this object, set in the constructor, so there is no
 *   allocation per exchange beyond the parsed head and the serialised head strings;
 * - socket handlers are shared top-level functions that find this object through a symbol;
 * - the client socket is not paused between keep-alive requests (pause/resume costs two epoll
 *   calls per request); bytes read ahead are buffered and reading pauses only past a threshold;
 * - timeouts are a deadline field swept by the engine's one coarse timer, not a timer per request.
 */
import type { Socket } from 'node:net';
import type { ActionConfig, ForwardActionConfig } from '../config/schema.ts';
import { SwitchyardError } from '../errors.ts';
import { Tunnel } from '../l4/tunnel.ts';
import { type FastSocket, kOnData, kOnShared, recycle } from '../listener/fast-read.ts';
import {
  closeAfterHeld,
  endAfterHeld,
  flushHeld,
  type HeldWriteOwner,
  needsDrain,
  writeHeadAndBodySoon,
  writeSoon,
} from '../listener/fast-write.ts';
import { openAiErrorBody } from '../llm/openai-error.ts';
import { type ClientGoneListener, clientGone, type LlmRequest } from '../llm/types.ts';
import { firstTarget } from '../policy/load-balancer.ts';
import type { TargetState } from '../policy/target-state.ts';
import type { CompiledRoute, MatchContext, RouteTable } from '../route/route-table.ts';
import { ChunkedDecoder } from './chunked-decoder.ts';
import { GatewayResponse } from './gateway-response.ts';
import type { HttpEngine } from './http-engine.ts';
import { errorBody, redirectLocation, serializeResponse } from './local-response.ts';
import {
  type AddedLines,
  addedLinesFor,
  buildInterimHead,
  buildRequestHead,
  buildResponseHead,
  buildUpgradeResponseHead,
} from './message-head.ts';
import {
  ChunkedScanner,
  type HeadProgress,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
  type ResponseHead,
} from './parser/index.ts';
import type { PoolUser, UpstreamConnection, UpstreamPool } from './upstream-pool.ts';

const kClient = Symbol('switchyard.httpClient');

interface ClientSocket extends FastSocket {
  [kClient]?: ClientConnection;
}

// Connection states.
/** Waiting for the first byte of a request (keep-alive deadline). */
const S_IDLE = 0;
/** Part of a request head has arrived (head deadline: slowloris gets 408). */
const S_HEAD = 1;
/** Head parsed and routed; waiting for an upstream connection. */
const S_WAIT_UPSTREAM = 2;
/** Request sent (body may still stream); relaying the response. */
const S_FORWARD = 3;
/** Ending after a final response; nothing more is read. */
const S_CLOSING = 4;
const S_CLOSED = 5;
/** An LLM request: reading its body, then the gateway answers. */
const S_LLM = 6;

// Body framing of the current request or response.
const B_NONE = 0;
const B_LENGTH = 1;
const B_CHUNKED = 2;
const B_CLOSE = 3;

/** Read-ahead buffered while an exchange is in flight before the client is paused. */
const READ_AHEAD_BYTES = 64 * 1024;
/**
 * A Content-Length body smaller than this that arrives whole with its head goes out in one buffer
 * with the head (startResponse). Small enough that head and body come from Node's 8 KiB
 * allocation pool rather than a fresh ArrayBuffer.
 */
const WHOLE_RESPONSE_BYTES = 2048;
/** Fresh connections tried after a reused one turned out stale, for idempotent requests. */
const STALE_RETRIES = 2;

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** The HTTP engine's state for one client socket. */
export class ClientConnection implements PoolUser, HeldWriteOwner {
  readonly engine: HttpEngine;
  readonly socket: ClientSocket;
  readonly table: RouteTable;
  readonly clientIp: string;
  /** Whether the peer is a trusted proxy (its X-Forwarded-* fields are kept and appended to). */
  readonly peerTrusted: boolean;
  readonly match: MatchContext;
  /** What repeats between this connection's requests (its Host's name and head lines); made on the first request. */
  addedLines: AddedLines | null;
  state: number;
  /** Coarse deadline (ms since epoch) checked by the engine's sweep; 0 for none. */
  deadline: number;
  queueDeadline: number;
  /** Whether the connection stays open after the current exchange. */
  keepAlive: boolean;
  /** True while `next()` runs, so exchanges that finish synchronously do not recurse into it. */
  looping: boolean;

  // Bytes read from the client and not consumed yet.
  buf: Buffer | null;
  bufStart: number;
  progress: HeadProgress | null;

  // The current request.
  req: RequestHead | null;
  route: CompiledRoute | null;
  action: ForwardActionConfig | null;
  requestId: string;
  /** `<request ID header>: <requestId>` and CRLF, made by the first head that carries it; '' until then. */
  requestIdLine: string;
  reqBody: number;
  reqRemaining: number;
  reqBodyDone: boolean;
  readonly reqScanner: ChunkedScanner;
  upstream: UpstreamConnection | null;
  target: TargetState | null;
  attempts: number;
  firstIndex: number;
  staleRetries: number;

  // The current response.
  respBuf: Buffer | null;
  respStart: number;
  respProgress: HeadProgress | null;
  resp: ResponseHead | null;
  respBody: number;
  respRemaining: number;
  readonly respScanner: ChunkedScanner;
  /** Whether any response byte went to the client (then errors can only cut the connection). */
  respStarted: boolean;
  /** Whether the upstream sent bytes past the end of its response (it cannot be reused). */
  respOverrun: boolean;
  /** Re-frames a chunked response as close-delimited for an HTTP/1.0 client; created on first need. */
  dechunker: ChunkedDecoder | null;
  /** A response head waiting to go out with the first body bytes (startResponse → sendBody). */
  pendingHead: Buffer | null;

  // The current LLM request, if any.
  llmChunks: Buffer[] | null;
  /** The LLM request in progress, told through clientGone if the client leaves first. */
  llmRequest: EngineLlmRequest | null;
  llmResponse: GatewayResponse | null;

  constructor(engine: HttpEngine, socket: Socket, table: RouteTable, port: number, clientIp: string, tls: boolean) {
    this.engine = engine;
    this.socket = socket as ClientSocket;
    this.table = table;
    this.clientIp = clientIp;
    this.peerTrusted = engine.trustedProxies?.matches(clientIp) === true;
    this.match = { port, serverName: null, clientIp, tls, path: null, headers: null, layer: 7 };
    this.addedLines = null;
    this.state = S_IDLE;
    this.deadline = engine.now + table.config.http.keepAliveTimeoutMs;
    this.queueDeadline = 0;
    this.keepAlive = true;
    this.looping = false;
    this.buf = null;
    this.bufStart = 0;
    this.progress = null;
    this.req = null;
    this.route = null;
    this.action = null;
    this.requestId = '';
    this.requestIdLine = '';
    this.reqBody = B_NONE;
    this.reqRemaining = 0;
    this.reqBodyDone = true;
    this.reqScanner = new ChunkedScanner(engine.limits);
    this.upstream = null;
    this.target = null;
    this.attempts = 0;
    this.firstIndex = 0;
    this.staleRetries = 0;
    this.respBuf = null;
    this.respStart = 0;
    this.respProgress = null;
    this.resp = null;
    this.respBody = B_NONE;
    this.respRemaining = 0;
    this.respScanner = new ChunkedScanner(engine.limits, Number.POSITIVE_INFINITY, true);
    this.respStarted = false;
    this.respOverrun = false;
    this.dechunker = null;
    this.pendingHead = null;
    this.llmChunks = null;
    this.llmRequest = null;
    this.llmResponse = null;
    this.socket[kClient] = this;
    this.socket[kOnData] = onClientData;
    this.socket[kOnShared] = onClientShared;
    socket.on('end', onClientEnd);
    socket.on('error', onClientError);
    socket.on('close', onClientClose);
    socket.on('drain', onClientDrain);
  }

  /** Starts reading, with bytes the listener already read (peeked) if any. */
  start(initial: Buffer | null): void {
    if (initial !== null && initial.length > 0) this.onData(initial);
    if (this.state !== S_CLOSED) this.socket.resume();
  }

  // ---- client side -------------------------------------------------------------------------

  onData(chunk: Buffer): void {
    const state = this.state;
    if (state === S_FORWARD && !this.reqBodyDone) {
      this.forwardBody(chunk, 0);
      return;
    }
    if (state === S_LLM && !this.reqBodyDone) {
      this.collectLlmBody(chunk, 0);
      return;
    }
    this.append(chunk);
    if (state === S_IDLE || state === S_HEAD) this.next();
    else if (this.buffered() > READ_AHEAD_BYTES) this.socket.pause();
  }

  /**
   * A read still in fast-read's shared buffer (`kOnShared`): a connection waiting for a request
   * with nothing buffered parses the head in place and copies only what follows it, if anything.
   * The request keeps no reference to the bytes it was parsed from. Anything else (a head not yet
   * complete, a bad one, a connection mid-exchange) is declined, and takes the copying path.
   */
  onShared(shared: Buffer, length: number): boolean {
    if (this.state !== S_IDLE || this.buf !== null || this.looping) return false;
    const r = parseRequestHead(shared, 0, length, this.engine.limits, null);
    if (r.kind !== 'ok') return false;
    if (r.consumed < length) {
      const rest = Buffer.allocUnsafe(length - r.consumed);
      shared.copy(rest, 0, r.consumed, length);
      this.buf = rest;
      this.bufStart = 0;
    }
    this.looping = true;
    try {
      this.startRequest(r);
      this.parseLoop();
    } finally {
      this.looping = false;
    }
    return true;
  }

  append(chunk: Buffer): void {
    if (this.buf === null) {
      this.buf = chunk;
      this.bufStart = 0;
    } else {
      this.buf = Buffer.concat([this.buf.subarray(this.bufStart), chunk]);
      this.bufStart = 0;
    }
  }

  buffered(): number {
    return this.buf === null ? 0 : this.buf.length - this.bufStart;
  }

  /** Parses and starts buffered requests while the connection is between exchanges. */
  next(): void {
    if (this.looping) return;
    this.looping = true;
    try {
      this.parseLoop();
    } finally {
      this.looping = false;
    }
  }

  parseLoop(): void {
    while (this.state === S_IDLE || this.state === S_HEAD) {
      const buf = this.buf;
      if (buf === null) return;
      const engine = this.engine;
      const r = parseRequestHead(buf, this.bufStart, buf.length, engine.limits, this.progress);
      if (r.kind === 'incomplete') {
        this.progress = r;
        if (this.state === S_IDLE) {
          this.state = S_HEAD;
          this.deadline = engine.now + this.table.config.http.headTimeoutMs;
        }
        return;
      }
      this.progress = null;
      if (r.kind === 'error') {
        this.keepAlive = false;
        this.engine.countError(r.code);
        this.engine.logger.info({ code: r.code, client: this.clientIp, reason: r.reason }, 'bad request');
        this.buf = null;
        this.respondLocal(r.status, null, errorBody(r.status, r.code), r.code);
        return;
      }
      this.bufStart += r.consumed;
      if (this.bufStart === buf.length) this.buf = null;
      this.startRequest(r);
    }
  }

  startRequest(req: RequestHead): void {
    const engine = this.engine;
    this.req = req;
    this.keepAlive = this.keepAlive && req.keepAlive && !engine.draining;
    if (req.chunked) {
      this.reqBody = B_CHUNKED;
      this.reqBodyDone = false;
    } else if (req.contentLength > 0) {
      this.reqBody = B_LENGTH;
      this.reqRemaining = req.contentLength;
      this.reqBodyDone = false;
    } else {
      this.reqBody = B_NONE;
      this.reqBodyDone = true;
    }
    this.state = S_WAIT_UPSTREAM;
    this.deadline = 0;
    this.requestId = requestIdOf(req.headers, engine.requestIdHeader) ?? engine.newRequestId();
    this.requestIdLine = '';
    if (req.method === 'CONNECT') {
      this.respondLocal(
        405,
        ['allow', 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS'],
        errorBody(405, 'SY_HTTP_CONNECT'),
        'SY_HTTP_CONNECT',
      );
      return;
    }
    const match = this.match;
    match.serverName = addedLinesFor(this, req.host).serverName;
    const target = req.target;
    const pathStart = Math.max(req.pathOffset, 0);
    const q = target.indexOf('?', pathStart);
    match.path = pathStart === 0 && q === -1 ? target : target.slice(pathStart, q === -1 ? target.length : q) || '/';
    match.headers = req.headers;
    const route = this.table.match(match);
    if (route === null) {
      engine.countError('SY_ROUTE_NO_MATCH');
      this.respondLocal(404, null, errorBody(404, 'SY_ROUTE_NO_MATCH'), 'SY_ROUTE_NO_MATCH');
      return;
    }
    this.route = route;
    const action = route.action;
    if (action.type === 'respond') {
      this.respondLocal(action.status, engine.respondHeaders(route), action.body, null);
    } else if (action.type === 'redirect') {
      const location = redirectLocation(action.to, match.serverName ?? '', match.port, pathAndQuery(req));
      this.respondLocal(action.status, ['location', location], '', null);
    } else if (action.type === 'llm') {
      this.startLlm(action);
    } else {
      this.forward(route, action);
    }
  }

  /** Writes a response the proxy makes itself, then finishes the exchange. */
  respondLocal(status: number, headers: string[] | null, body: string, code: string | null): void {
    // A request body we did not read leaves the stream position unknown: close after answering.
    if (!this.reqBodyDone) this.keepAlive = false;
    const list = headers ?? [];
    if (code !== null && status >= 400) list.push('x-switchyard-error', code);
    if (this.requestId !== '') list.push(this.engine.requestIdHeader, this.requestId);
    const head = this.req?.method === 'HEAD';
    flushHeld(this.socket);
    this.socket.write(serializeResponse(status, list, body, this.keepAlive, head));
    this.engine.countResponse(this.route, status);
    this.finishExchange();
  }

  /** The body limit of the current route, or -1 after answering 413 for a Content-Length past it. */
  bodyLimit(action: Extract<ActionConfig, { type: 'forward' | 'llm' }>): number {
    const maxBody = action.maxBodyBytes ?? this.table.config.http.maxBodyBytes;
    const limit = maxBody === 0 ? Number.POSITIVE_INFINITY : maxBody;
    if (this.req!.contentLength > limit) {
      this.engine.countError('SY_HTTP_BODY_TOO_LARGE');
      if (action.type === 'llm') {
        const reason = `Content-Length ${this.req!.contentLength} is over the route's limit of ${limit} bytes`;
        this.refuseLlm(new SwitchyardError('SY_HTTP_BODY_TOO_LARGE', { reason }));
      } else this.respondLocal(413, null, errorBody(413, 'SY_HTTP_BODY_TOO_LARGE'), 'SY_HTTP_BODY_TOO_LARGE');
      return -1;
    }
    return limit;
  }

  forward(route: CompiledRoute, action: ForwardActionConfig): void {
    const engine = this.engine;
    const limit = this.bodyLimit(action);
    if (limit < 0) return;
    if (this.reqBody === B_CHUNKED) this.reqScanner.reset(engine.limits, limit);
    this.action = action;
    this.attempts = 0;
    this.staleRetries = 0;
    this.firstIndex = firstTarget(action.loadBalancing, route.targets, route);
    this.tryNextTarget();
  }

  tryNextTarget(): void {
    const route = this.route!;
    const targets = route.targets;
    if (this.attempts >= targets.length) {
      this.engine.countError('SY_UPS_UNAVAILABLE');
      this.respondLocal(502, null, errorBody(502, 'SY_UPS_UNAVAILABLE'), 'SY_UPS_UNAVAILABLE');
      return;
    }
    const target = targets[(this.firstIndex + this.attempts) % targets.length];
    this.attempts++;
    this.useTarget(target);
  }

  useTarget(target: TargetState): void {
    this.target = target;
    target.active++;
    this.state = S_WAIT_UPSTREAM;
    // Settings were resolved when the table loaded; a pool is only missing for an address a
    // reload dropped while this connection, on its old table, still routes to it.
    let pool = target.pool as UpstreamPool | null;
    if (pool === null || pool.closed)
      pool = this.engine.poolFor(target, this.engine.poolOptions(this.action!, this.table));
    pool.acquire(this, this.engine.now);
  }

  // ---- LLM gateway ---------------------------------------------------------------------------

  startLlm(action: Extract<ActionConfig, { type: 'llm' }>): void {
    const gateway = this.engine.ctx.llm;
    if (gateway === null) {
      const detail = 'no LLM gateway is running';
      this.refuseLlm(new SwitchyardError('SY_LLM_PROVIDER_UNAVAILABLE', { provider: '*', detail }));
      return;
    }
    if (this.bodyLimit(action) < 0) return;
    if (this.reqBody === B_CHUNKED) {
      // LLM bodies are parsed whole; every OpenAI client sends Content-Length.
      this.refuseLlm(new SwitchyardError('SY_LLM_LENGTH_REQUIRED'));
      return;
    }
    this.state = S_LLM;
    this.llmChunks = [];
    this.deadline = this.engine.now + this.idleTimeoutMs();
    if (this.reqBodyDone) {
      this.dispatchLlm();
      return;
    }
    const buf = this.buf;
    if (buf !== null) {
      this.buf = null;
      this.collectLlmBody(buf, this.bufStart);
    }
  }

  /**
   * Refuses an LLM request before the gateway has it, in OpenAI's error shape as the gateway's
   * own errors are, so SDKs raise a typed APIError instead of failing to parse plain text.
   */
  refuseLlm(error: SwitchyardError): void {
    this.respondLocal(error.status, ['content-type', 'application/json'], openAiErrorBody(error), error.code);
  }

  collectLlmBody(chunk: Buffer, start: number): void {
    const n = Math.min(this.reqRemaining, chunk.length - start);
    this.llmChunks!.push(start === 0 && n === chunk.length ? chunk : chunk.subarray(start, start + n));
    this.reqRemaining -= n;
    this.deadline = this.engine.now + this.idleTimeoutMs();
    if (start + n < chunk.length) this.append(chunk.subarray(start + n));
    if (this.reqRemaining === 0) {
      this.reqBodyDone = true;
      this.dispatchLlm();
    }
  }

  dispatchLlm(): void {
    const req = this.req!;
    const chunks = this.llmChunks!;
    this.llmChunks = null;
    // The gateway owns the exchange's timing (its own deadlines); ours only guards the close.
    this.deadline = 0;
    const response = new GatewayResponse(this, req.method === 'HEAD');
    this.llmResponse = response;
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    const llmRequest = new EngineLlmRequest(req.method, pathAndQuery(req), req.headers, body, this.clientIp);
    this.llmRequest = llmRequest;
    this.engine.ctx.llm!.handle(llmRequest, response);
  }

  /** The gateway ended its response. */
  llmFinished(response: GatewayResponse): void {
    if (this.llmResponse !== response || this.state !== S_LLM) return;
    this.llmResponse = null;
    this.llmRequest = null;
    this.finishExchange();
  }

  // ---- upstream side (PoolUser) -------------------------------------------------------------

  onUpstreamReady(conn: UpstreamConnection): void {
    if (this.state !== S_WAIT_UPSTREAM) {
      conn.pool.release(conn, true);
      return;
    }
    const engine = this.engine;
    this.upstream = conn;
    this.state = S_FORWARD;
    this.respBuf = null;
    this.respProgress = null;
    this.resp = null;
    this.respStarted = false;
    this.respOverrun = false;
    // The response timeout runs from the end of the request body; while the body streams, the
    // idle timeout applies (an upload may legitimately take long).
    this.deadline = engine.now + (this.reqBodyDone ? this.responseTimeoutMs() : this.idleTimeoutMs());
    const head = buildRequestHead(this.req!, this, this.action!, this.route!, this.table.config.http, engine);
    const socket = conn.socket;
    if (this.reqBodyDone) {
      // Held to the end of the poll phase, with the other writes of the pass (fast-write.ts).
      writeSoon(socket, head, false, null);
      return;
    }
    flushHeld(socket);
    socket.cork();
    socket.write(head, 'latin1');
    const buf = this.buf;
    if (buf !== null) {
      const start = this.bufStart;
      this.buf = null;
      this.forwardBody(buf, start);
    }
    socket.uncork();
    if (this.reqBodyDone || this.state !== S_FORWARD) return;
    if (this.socket.readableEnded) {
      // The client's FIN came while this request waited (onClientEnd), and what it had buffered
      // did not finish the body: it never will.
      this.dropUpstream();
      this.socket.destroy();
    } else if (this.socket.isPaused() && !needsDrain(socket)) {
      this.socket.resume();
    }
  }

  onUpstreamUnavailable(code: string, detail: string): void {
    if (this.state !== S_WAIT_UPSTREAM) return;
    const target = this.target!;
    target.active--;
    this.target = null;
    const engine = this.engine;
    engine.countUpstreamError(target.key, code);
    engine.logger.warn(
      { code, route: this.route!.name, target: target.key, detail, requestId: this.requestId },
      'upstream unavailable',
    );
    if (code === 'SY_UPS_CONNECT' || code === 'SY_UPS_CONNECT_TIMEOUT') {
      this.tryNextTarget();
      return;
    }
    const status = code === 'SY_UPS_POOL_CLOSED' ? 502 : 503;
    this.respondLocal(status, null, errorBody(status, code), code);
  }

  /** Sends request body bytes from `chunk[start..]`; what follows the body is kept for the next request. */
  forwardBody(chunk: Buffer, start: number): void {
    const end = chunk.length;
    let n: number;
    if (this.reqBody === B_LENGTH) {
      n = Math.min(this.reqRemaining, end - start);
      this.reqRemaining -= n;
      if (this.reqRemaining === 0) this.reqBodyDone = true;
    } else {
      n = this.reqScanner.scan(chunk, start, end);
      if (n < 0) {
        this.requestBodyError();
        return;
      }
      if (this.reqScanner.done) this.reqBodyDone = true;
    }
    const upstream = this.upstream!.socket;
    if (n > 0 && !upstream.write(start === 0 && n === end ? chunk : chunk.subarray(start, start + n))) {
      this.socket.pause();
    }
    if (this.resp === null) {
      this.deadline = this.engine.now + (this.reqBodyDone ? this.responseTimeoutMs() : this.idleTimeoutMs());
    }
    if (start + n < end) {
      this.append(chunk.subarray(start + n));
      if (this.buffered() > READ_AHEAD_BYTES) this.socket.pause();
    }
  }

  /** A chunked request body was malformed or over the limit: answer if we still can, then close. */
  requestBodyError(): void {
    const error = this.reqScanner.error!;
    this.engine.countError(error.code);
    this.engine.logger.info({ code: error.code, client: this.clientIp, reason: error.reason }, 'bad request body');
    this.dropUpstream();
    this.keepAlive = false;
    if (this.respStarted) {
      this.socket.destroy();
      return;
    }
    this.respondLocal(error.status, null, errorBody(error.status, error.code), error.code);
  }

  /**
   * A read from the upstream still in fast-read's shared buffer: taken in place when it holds a
   * whole response head and a Content-Length body small enough to go out in one copy (the head is
   * rebuilt into a new buffer with the body, and nothing keeps `shared`). Anything else is declined
   * and arrives again, copied, through onUpstreamData.
   */
  onUpstreamShared(shared: Buffer, length: number): boolean {
    if (this.state !== S_FORWARD || this.resp !== null || this.respBuf !== null || this.respProgress !== null) {
      return false;
    }
    const r = parseResponseHead(shared, 0, length, this.engine.limits, this.req!.method, null);
    if (r.kind !== 'ok' || r.framing !== 'length' || r.contentLength >= WHOLE_RESPONSE_BYTES) return false;
    if (r.consumed + r.contentLength > length) return false;
    this.respBuf = shared;
    this.respStart = r.consumed;
    this.startResponse(r, length);
    return true;
  }

  onUpstreamData(chunk: Buffer): void {
    if (this.state !== S_FORWARD) return;
    if (this.resp === null) {
      if (this.respBuf === null) {
        this.respBuf = chunk;
        this.respStart = 0;
      } else {
        this.respBuf = Buffer.concat([this.respBuf.subarray(this.respStart), chunk]);
        this.respStart = 0;
      }
      this.parseResponse();
      return;
    }
    this.forwardResponseBody(chunk, 0);
  }

  parseResponse(): void {
    const engine = this.engine;
    const req = this.req!;
    for (;;) {
      const buf = this.respBuf!;
      const r = parseResponseHead(buf, this.respStart, buf.length, engine.limits, req.method, this.respProgress);
      if (r.kind === 'incomplete') {
        this.respProgress = r;
        return;
      }
      this.respProgress = null;
      if (r.kind === 'error') {
        engine.countUpstreamError(this.target!.key, r.code);
        engine.logger.warn(
          { code: r.code, target: this.target!.key, reason: r.reason, requestId: this.requestId },
          'bad upstream response',
        );
        this.dropUpstream();
        this.upstreamFailed(502, r.code);
        return;
      }
      const start = this.respStart;
      this.respStart = start + r.consumed;
      if (r.status === 101) {
        if (!req.upgrade) {
          const key = this.target!.key;
          engine.countUpstreamError(key, 'SY_UPS_UNEXPECTED_UPGRADE');
          engine.logger.warn(
            { code: 'SY_UPS_UNEXPECTED_UPGRADE', target: key, requestId: this.requestId },
            'upstream switched protocols unasked',
          );
          this.dropUpstream();
          this.upstreamFailed(502, 'SY_UPS_UNEXPECTED_UPGRADE');
          return;
        }
        this.startTunnel(r);
        return;
      }
      if (r.interim) {
        // 100 Continue, 103 Early Hints: relayed with the same field filtering as final heads, and
        // never to an HTTP/1.0 client (RFC 9110 §15.2); then the final response follows.
        if (req.versionMinor === 1) {
          flushHeld(this.socket);
          this.socket.write(buildInterimHead(r, this.route!, this.action!));
        }
        if (this.respStart === buf.length) {
          this.respBuf = null;
          return;
        }
        continue;
      }
      this.startResponse(r, buf.length);
      return;
    }
  }

  /** Starts relaying the response `resp`, parsed from `this.respBuf`, whose bytes end at `end`. */
  startResponse(resp: ResponseHead, end: number): void {
    const engine = this.engine;
    this.resp = resp;
    switch (resp.framing) {
      case 'length':
        this.respBody = resp.contentLength > 0 ? B_LENGTH : B_NONE;
        this.respRemaining = resp.contentLength;
        break;
      case 'chunked':
        this.respBody = B_CHUNKED;
        this.respScanner.reset(engine.limits, Number.POSITIVE_INFINITY, true);
        if (this.req!.versionMinor === 0) {
          // An upstream that chunks for an HTTP/1.0 request anyway: the client gets the data
          // close-delimited, since it cannot read chunked framing (RFC 9112 §6.1).
          this.keepAlive = false;
          if (this.dechunker === null) this.dechunker = new ChunkedDecoder();
          else this.dechunker.reset();
        }
        break;
      case 'close':
        this.respBody = B_CLOSE;
        this.keepAlive = false;
        break;
      default:
        this.respBody = B_NONE;
    }
    if (!this.reqBodyDone) this.keepAlive = false;
    this.deadline = engine.now + this.idleTimeoutMs();
    const buf = this.respBuf!;
    const rest = this.respStart;
    this.respBuf = null;
    // Chunk bytes that came with the head are checked before the head goes out: a malformed
    // first chunk is then still a clean 502 rather than a cut connection.
    let scanned = -1;
    if (this.respBody === B_CHUNKED && rest < end) {
      scanned = this.respScanner.scan(buf, rest, end);
      if (scanned < 0) {
        this.badResponseBody();
        return;
      }
    }
    this.respStarted = true;
    engine.countResponse(this.route, resp.status);
    const length = this.respRemaining;
    if (this.respBody === B_LENGTH && length <= end - rest && length < WHOLE_RESPONSE_BYTES && resp.source === buf) {
      // The whole (small) body came with the head: one buffer, one copy, held with the pass's
      // other writes (fast-write.ts).
      writeSoon(
        this.socket,
        buildResponseHead(resp, this, this.route!, this.action!, engine, rest, rest + length),
        false,
        this,
      );
      recycle(buf);
      this.respRemaining = 0;
      if (rest + length < end) this.respOverrun = true;
      this.responseComplete();
      return;
    }
    const head = buildResponseHead(resp, this, this.route!, this.action!, engine);
    if (this.respBody === B_NONE) {
      writeSoon(this.socket, head, false, this);
      if (rest < end) this.respOverrun = true;
      this.responseComplete();
      return;
    }
    if (rest === end) {
      writeSoon(this.socket, head, false, this);
      return;
    }
    // The head goes out with the first body bytes in one writev (sendBody), or alone if the body
    // path writes nothing now.
    this.pendingHead = head;
    this.forwardResponseBody(buf, rest, scanned);
    if (this.pendingHead !== null) {
      this.pendingHead = null;
      writeSoon(this.socket, head, false, this);
    }
  }

  /**
   * Writes response body bytes, with the head if it is still pending, and pauses the upstream on
   * backpressure. `recycled`: `data` is (a view of) an upstream read that nothing else references,
   * so fast-write may hand its memory back once written. Small writes are held to the end of the
   * poll phase (fast-write.ts `writeSoon`); if one then stays pending, heldWriteStalled pauses.
   */
  sendBody(data: Buffer, recycled: boolean): void {
    const head = this.pendingHead;
    let ok: boolean;
    if (head !== null) {
      this.pendingHead = null;
      ok = writeHeadAndBodySoon(this.socket, head, data, recycled, this);
    } else {
      ok = writeSoon(this.socket, data, recycled, this);
    }
    if (!ok) this.upstream?.socket.pause();
  }

  /**
   * A held response write stayed pending: pause the upstream feeding it, if this exchange still
   * has one (the response may have completed since; a pooled socket is no longer ours to pause).
   * onClientDrain resumes it.
   */
  heldWriteStalled(socket: Socket): void {
    if (socket === this.socket && this.state === S_FORWARD) this.upstream?.socket.pause();
  }

  /** A malformed chunked response body: a 502 if nothing was sent yet, else a cut connection. */
  badResponseBody(): void {
    const error = this.respScanner.error!;
    this.engine.countUpstreamError(this.target!.key, error.code);
    this.engine.logger.warn({ code: error.code, target: this.target!.key, reason: error.reason }, 'bad upstream body');
    this.dropUpstream();
    this.keepAlive = false;
    this.upstreamFailed(502, error.code);
  }

  /**
   * Relays response body bytes from `chunk[start..]`. `scanned` is how many of them a chunked
   * scan already accepted (startResponse checks the first bytes), or -1.
   */
  forwardResponseBody(chunk: Buffer, start: number, scanned = -1): void {
    const end = chunk.length;
    let n: number;
    let done = false;
    switch (this.respBody) {
      case B_LENGTH:
        n = Math.min(this.respRemaining, end - start);
        this.respRemaining -= n;
        done = this.respRemaining === 0;
        break;
      case B_CHUNKED:
        n = scanned >= 0 ? scanned : this.respScanner.scan(chunk, start, end);
        if (n < 0) {
          // Headers are gone already: upstreamFailed cuts the connection, the only honest signal.
          this.badResponseBody();
          return;
        }
        done = this.respScanner.done;
        break;
      default:
        n = end - start;
    }
    this.deadline = this.engine.now + this.idleTimeoutMs();
    if (this.respBody === B_CHUNKED && this.req!.versionMinor === 0) {
      this.dechunker!.decode(chunk, start, start + n, this.writeDechunked);
    } else if (n > 0) {
      // Bytes past the response (start + n < end) are discarded with the connection: the chunk
      // is referenced nowhere else and can be recycled once written.
      this.sendBody(start === 0 && n === end ? chunk : chunk.subarray(start, start + n), true);
    }
    if (done) {
      if (start + n < end) this.respOverrun = true;
      this.responseComplete();
    }
  }

  /** Writes data of a re-framed chunked response (bound once per connection). */
  readonly writeDechunked = (data: Buffer): void => {
    // Several writes come from one upstream chunk: none may recycle it.
    this.sendBody(data, false);
  };

  onUpstreamEnd(): void {
    if (this.state === S_FORWARD && this.resp !== null && this.respBody === B_CLOSE) {
      this.respOverrun = true;
      this.responseComplete();
    }
  }

  onUpstreamClose(): void {
    if (this.state !== S_FORWARD || this.upstream === null) return;
    const conn = this.upstream;
    this.upstream = null;
    this.releaseTarget();
    if (this.resp !== null) {
      // Closed in the middle of the body: the client must not take a cut body for a whole one,
      // so it gets a reset, not a FIN (which would end a close-delimited body cleanly).
      this.socket.resetAndDestroy();
      return;
    }
    const req = this.req!;
    const canRetry =
      conn.served > 0 &&
      this.respBuf === null &&
      this.reqBody === B_NONE &&
      IDEMPOTENT.has(req.method) &&
      this.staleRetries < STALE_RETRIES;
    if (canRetry) {
      // A kept-alive socket the upstream had closed: nothing was processed, so send it again.
      this.staleRetries++;
      this.target = conn.pool.target;
      this.target.active++;
      this.state = S_WAIT_UPSTREAM;
      // A fresh socket: the other idle ones may be just as stale.
      conn.pool.acquire(this, this.engine.now, true);
      return;
    }
    this.engine.countUpstreamError(conn.pool.target.key, 'SY_UPS_RESET');
    this.engine.logger.warn(
      { code: 'SY_UPS_RESET', target: conn.pool.target.key, requestId: this.requestId },
      'upstream closed before responding',
    );
    this.upstreamFailed(502, 'SY_UPS_RESET');
  }

  onUpstreamDrain(): void {
    if (this.state === S_FORWARD && !this.reqBodyDone && this.socket.isPaused()) this.socket.resume();
  }

  onClientDrain(): void {
    const upstream = this.upstream;
    if (upstream?.socket.isPaused()) upstream.socket.resume();
  }

  /** The upstream failed before the response started: answer with `status`, or cut if too late. */
  upstreamFailed(status: number, code: string): void {
    if (this.respStarted) {
      this.socket.resetAndDestroy();
      return;
    }
    this.respondLocal(status, null, errorBody(status, code), code);
  }

  /** The response is complete: return the upstream socket and move on to the next request. */
  responseComplete(): void {
    const conn = this.upstream;
    this.upstream = null;
    if (conn !== null) {
      const reusable = this.resp!.keepAlive && this.reqBodyDone && !this.respOverrun && this.respBody !== B_CLOSE;
      if (conn.socket.isPaused()) conn.socket.resume();
      conn.pool.release(conn, reusable);
    }
    this.releaseTarget();
    if (!this.reqBodyDone) this.keepAlive = false;
    this.finishExchange();
  }

  releaseTarget(): void {
    if (this.target !== null) {
      this.target.active--;
      this.target = null;
    }
  }

  /** Closes the upstream socket of a failed exchange (it is never reused). */
  dropUpstream(): void {
    const conn = this.upstream;
    if (conn !== null) {
      this.upstream = null;
      conn.pool.release(conn, false);
    }
    if (this.state === S_WAIT_UPSTREAM && this.target !== null) (this.target.pool as UpstreamPool).cancel(this);
    this.releaseTarget();
  }

  /** Resets per-exchange state and either waits for the next request or ends the connection. */
  finishExchange(): void {
    const req = this.req;
    this.req = null;
    this.route = null;
    this.action = null;
    this.resp = null;
    this.respBuf = null;
    this.requestId = '';
    this.requestIdLine = '';
    this.match.headers = null;
    if (!this.keepAlive) {
      this.state = S_CLOSING;
      this.deadline = this.engine.now + 5000;
      // A client that asked for close and whose request was read in full sends nothing more: no
      // need to wait for its FIN (closeAfterHeld). TLS ends with close_notify, through end().
      if (req !== null && !req.keepAlive && this.reqBodyDone && this.buf === null && !this.match.tls) {
        closeAfterHeld(this.socket);
      } else {
        this.buf = null;
        endAfterHeld(this.socket);
      }
      return;
    }
    this.state = S_IDLE;
    this.deadline = this.engine.now + this.table.config.http.keepAliveTimeoutMs;
    if (this.socket.isPaused()) this.socket.resume();
    if (this.buf !== null) this.next();
  }

  responseTimeoutMs(): number {
    return this.action?.responseTimeoutMs ?? this.engine.defaultResponseTimeoutMs;
  }

  idleTimeoutMs(): number {
    return this.action?.idleTimeoutMs ?? this.table.config.timeouts.idleMs;
  }

  /** Called by the engine's sweep once `deadline` has passed. */
  onDeadline(): void {
    this.deadline = 0;
    switch (this.state) {
      case S_IDLE:
      case S_CLOSING:
        this.socket.destroy();
        return;
      case S_HEAD:
        this.keepAlive = false;
        this.buf = null;
        this.progress = null;
        this.engine.countError('SY_HTTP_HEAD_TIMEOUT');
        this.engine.logger.info({ code: 'SY_HTTP_HEAD_TIMEOUT', client: this.clientIp }, 'request head timed out');
        this.respondLocal(408, null, errorBody(408, 'SY_HTTP_HEAD_TIMEOUT'), 'SY_HTTP_HEAD_TIMEOUT');
        return;
      case S_LLM:
        if (!this.reqBodyDone) {
          this.engine.countError('SY_HTTP_BODY_TIMEOUT');
          this.keepAlive = false;
          this.llmChunks = null;
          this.refuseLlm(new SwitchyardError('SY_HTTP_BODY_TIMEOUT'));
        }
        return;
      case S_FORWARD: {
        const key = this.target?.key ?? '';
        if (this.resp === null && !this.reqBodyDone) {
          // The client stopped sending its body: its fault, not the upstream's.
          this.engine.countError('SY_HTTP_BODY_TIMEOUT');
          this.engine.logger.info(
            { code: 'SY_HTTP_BODY_TIMEOUT', client: this.clientIp, requestId: this.requestId },
            'request body stalled',
          );
          this.dropUpstream();
          this.keepAlive = false;
          this.respondLocal(408, null, errorBody(408, 'SY_HTTP_BODY_TIMEOUT'), 'SY_HTTP_BODY_TIMEOUT');
          return;
        }
        if (this.resp === null) {
          this.engine.countUpstreamError(key, 'SY_UPS_RESPONSE_TIMEOUT');
          this.engine.logger.warn(
            { code: 'SY_UPS_RESPONSE_TIMEOUT', target: key, requestId: this.requestId },
            'upstream response timed out',
          );
          this.dropUpstream();
          this.keepAlive = false;
          this.upstreamFailed(504, 'SY_UPS_RESPONSE_TIMEOUT');
        } else {
          this.engine.countUpstreamError(key, 'SY_UPS_IDLE_TIMEOUT');
          this.dropUpstream();
          this.socket.resetAndDestroy();
        }
        return;
      }
      default:
    }
  }

  /** The proxy is shutting down: idle connections close now, busy ones after their exchange. */
  drain(): void {
    this.keepAlive = false;
    if (this.state === S_IDLE) {
      // A response held in this pass (fast-write.ts) still goes out: the kernel sends what it
      // has before the FIN.
      flushHeld(this.socket);
      this.socket.destroy();
    }
  }

  onClientEnd(): void {
    // The client sent FIN. Between requests that ends the connection; mid-request the request is
    // cut short (its body can never complete); after a complete request the response still goes out.
    this.keepAlive = false;
    if (this.state === S_IDLE || this.state === S_HEAD || this.state === S_CLOSING) {
      // Ending twice makes Node build an ERR_STREAM_ALREADY_FINISHED (stack trace and all): it was
      // 5% of CPU with one connection per request (bench: http-close).
      if (!this.socket.writableEnded) endAfterHeld(this.socket);
      this.state = S_CLOSING;
      return;
    }
    if (!this.reqBodyDone) {
      // While a connection opens for it, the request's body waits in `buf` and may be all there
      // (a client that writes its request and FIN at once): then it is complete and is answered;
      // onUpstreamReady cuts it if the buffered bytes fall short. A Content-Length body already
      // short of bytes is cut now.
      const waiting = this.state === S_WAIT_UPSTREAM;
      if (!waiting || (this.reqBody === B_LENGTH && this.buffered() < this.reqRemaining)) {
        this.dropUpstream();
        // The connection still opening must not carry the request ('close' comes a tick later).
        if (waiting) this.state = S_CLOSED;
        this.socket.destroy();
        return;
      }
    }
    if (this.state === S_LLM) {
      // An LLM exchange queued, waiting or streaming: a FIN is a client that gave up (an SDK's
      // abort, `curl -m`), and the provider bills tokens nobody will read. As nginx does with
      // proxy_ignore_client_abort off: the close aborts the upstream call (logged 499).
      this.socket.destroy();
      return;
    }
    // Still queued for a pool slot: a FIN here is nearly always a client that gave up (a close
    // looks the same as a half-close on the wire), and under overload its slot matters more.
    if (this.state === S_WAIT_UPSTREAM && this.target !== null && (this.target.pool as UpstreamPool).cancel(this)) {
      this.releaseTarget();
      this.socket.destroy();
    }
  }

  onClientClose(): void {
    // Give up the upstream (or the pool queue place) before the state says closed: dropUpstream
    // looks at the state to know whether a queue slot is held.
    this.dropUpstream();
    this.state = S_CLOSED;
    const llmRequest = this.llmRequest;
    if (llmRequest !== null) {
      this.llmRequest = null;
      clientGone(llmRequest);
    }
    this.deadline = 0;
    this.buf = null;
    this.engine.connections.delete(this);
  }

  /** After a 101: hand both sockets to an L4 tunnel with its own idle timeout and byte counters. */
  startTunnel(resp: ResponseHead): void {
    const conn = this.upstream!;
    const upstreamSocket = conn.pool.detach(conn);
    this.upstream = null;
    const client = this.socket;
    const toClient = this.respBuf!.subarray(this.respStart);
    const toUpstream = this.buf === null ? null : this.buf.subarray(this.bufStart);
    flushHeld(client);
    client.write(buildUpgradeResponseHead(resp, this, this.route!, this.action!, this.engine));
    this.engine.countResponse(this.route, 101);
    client[kOnData] = ignoreData;
    client[kOnShared] = undefined;
    client.removeListener('end', onClientEnd);
    client.removeListener('error', onClientError);
    client.removeListener('close', onClientClose);
    client.removeListener('drain', onClientDrain);
    client[kClient] = undefined;
    this.state = S_CLOSED;
    this.deadline = 0;
    this.engine.connections.delete(this);
    const target = this.target!;
    this.target = null;
    Tunnel.adopt(
      this.engine.ctx,
      client,
      upstreamSocket,
      this.route!,
      this.clientIp,
      target,
      {
        connectTimeoutMs: 0,
        idleTimeoutMs: this.idleTimeoutMs(),
      },
      toUpstream !== null && toUpstream.length > 0 ? toUpstream : null,
      toClient.length > 0 ? toClient : null,
    );
  }
}

/**
 * The target sent upstream: path and query of an origin-form or absolute-form target, or `*` for
 * `OPTIONS *` (RFC 9112 §3.2.4: about the server as a whole, which `OPTIONS /` is not).
 */
export function pathAndQuery(req: RequestHead): string {
  if (req.pathOffset === 0) return req.target;
  if (req.pathOffset < 0) return req.targetForm === 'asterisk' ? '*' : '/';
  const rest = req.target.slice(req.pathOffset);
  return rest === '' || rest.startsWith('?') ? `/${rest}` : rest;
}

/**
 * The request handed to the LLM gateway. Its header record is built on first read: only a provider
 * that forwards client headers reads it, and building it for every request was 3-5 µs of the
 * path that llm-latency measures at concurrency 1 (timing probes on the bench VM).
 */
class EngineLlmRequest implements LlmRequest {
  readonly method: string;
  readonly url: string;
  readonly body: Buffer;
  readonly clientAddress: string;
  gone: boolean;
  goneListener: ClientGoneListener | null;
  readonly #fields: ReadonlyArray<string>;
  #headers: Record<string, string> | null;

  constructor(method: string, url: string, fields: ReadonlyArray<string>, body: Buffer, clientAddress: string) {
    this.method = method;
    this.url = url;
    this.body = body;
    this.clientAddress = clientAddress;
    this.gone = false;
    this.goneListener = null;
    this.#fields = fields;
    this.#headers = null;
  }

  get headers(): Readonly<Record<string, string>> {
    if (this.#headers === null) this.#headers = headerRecord(this.#fields);
    return this.#headers;
  }
}

/** Request fields as a record for the gateway: names lower-cased, repeats joined with ", ". */
function headerRecord(headers: ReadonlyArray<string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i].toLowerCase();
    const prev = out[name];
    out[name] = prev === undefined ? headers[i + 1] : `${prev}, ${headers[i + 1]}`;
  }
  return out;
}

function requestIdOf(headers: ReadonlyArray<string>, name: string): string | null {
  for (let i = 0; i < headers.length; i += 2) {
    const field = headers[i];
    if (field.length === name.length && field.toLowerCase() === name) {
      const value = headers[i + 1];
      // Only IDs that are safe to echo in a header and a log line are passed through.
      if (value.length > 0 && value.length <= 200 && /^[\w.:@/+=-]+$/.test(value)) return value;
      return null;
    }
  }
  return null;
}

function ignoreData(): void {}

function onClientData(this: ClientSocket, chunk: Buffer): void {
  this[kClient]!.onData(chunk);
}

function onClientShared(this: ClientSocket, shared: Buffer, length: number): boolean {
  return this[kClient]!.onShared(shared, length);
}

function onClientEnd(this: ClientSocket): void {
  this[kClient]!.onClientEnd();
}

function onClientError(this: ClientSocket): void {
  // A reset: 'close' follows and cleans up.
}

function onClientClose(this: ClientSocket): void {
  this[kClient]!.onClientClose();
}

function onClientDrain(this: ClientSocket): void {
  this[kClient]!.onClientDrain();
}
