/**
 * One LLM request from the moment it is routed until its last byte: queueing for a provider
 * slot, attempts, retries and fallbacks (all before the first byte reaches the client), then a
 * buffered reply or an event-aligned stream with backpressure, then accounting and one log line.
 *
 * The exchange is its own callback object everywhere it waits (limiter waiter, deadline entry,
 * abort listener, attempt owner), so a request allocates a handful of objects, not a closure
 * per step; chunks are forwarded without promises.
 */
import type { Logger } from 'pino';
import { SwitchyardError } from '../errors.ts';
import type { ConnectionList } from '../runtime/connection-list.ts';
import type { LimiterWaiter, SlotOutcome } from './concurrency-limiter.ts';
import type { DeadlineEntry, DeadlineWheel } from './deadline-wheel.ts';
import type { Endpoint } from './endpoint.ts';
import type { FieldChanges } from './field-policy.ts';
import type { ModelRoute, Target } from './model-router.ts';
import { openAiErrorType, writeOpenAiError } from './openai-error.ts';
import type { ProviderRuntime } from './provider-runtime.ts';
import { parseRetryAfterMs } from './retry-policy.ts';
import { sseErrorEvent } from './sse/error-event.ts';
import { SseFramer } from './sse/sse-framer.ts';
import { findUsage, type TokenUsage } from './sse/usage-scanner.ts';
import type { LlmRequest, LlmResponse } from './types.ts';
import { type AttemptOwner, UpstreamAttempt, type UpstreamHeaders } from './upstream-attempt.ts';
import { classifyUpstreamError } from './upstream-error.ts';
import { UsageStats } from './usage-stats.ts';

/** Largest non-streamed upstream response buffered (embeddings of big batches stay well under). */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** Upstream response headers never passed to the client: hop-by-hop (RFC 9110 §7.6.1) or ours to set. */
const STRIPPED_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'content-length',
  'set-cookie',
  'alt-svc',
  'date',
  // A header of that name must not become the prototype of the header object we build.
  '__proto__',
]);

/** What the gateway shares with its exchanges. */
export interface ExchangeContext {
  readonly logger: Logger;
  /** Whether info lines (one per request) are written: when not, none is built. */
  readonly logRequests: boolean;
  /** Whether debug lines are written. */
  readonly logDebug: boolean;
  readonly wheel: DeadlineWheel;
  /** Exchanges in progress, so `close()` can end them (a list, not a Set: see ConnectionList). */
  readonly live: ConnectionList<Exchange>;
  /** Exchanges started since {@link armArrivals} last ran; it arms them. */
  readonly arrivals: Exchange[];
  /** The immediate that runs {@link armArrivals}, while one is queued. */
  arming: NodeJS.Immediate | null;
}

/**
 * Arms the exchanges started since the last run: their total deadline. Run from an immediate
 * queued by the first of them, so after undici's immediate that writes their upstream requests
 * (undici checks a reused keep-alive socket for a close in the check phase before writing to
 * it): the registration then overlaps the provider's work instead of delaying the request. At
 * concurrency 1 on the 2-core bench VM the wheel entry and the abort listener registered here
 * then (an AbortSignal's, since replaced by a field) took 10-13 µs of the request path (timing
 * probes; bench: llm-latency).
 */
export function armArrivals(ctx: ExchangeContext): void {
  ctx.arming = null;
  const arrivals = ctx.arrivals;
  for (let i = 0; i < arrivals.length; i++) arrivals[i].arm();
  arrivals.length = 0;
}

/** Why the current target failed. */
type Failure =
  | {
      kind: 'status';
      status: number;
      headers: UpstreamHeaders;
      body: Buffer;
      retryable: boolean;
    }
  | {
      kind: 'error';
      error: SwitchyardError;
      retryable: boolean;
      /** Retrying the same provider is pointless (its queue is full, it is unavailable): fall back only. */
      fallbackOnly: boolean;
      /** Retry-After for the client if this error is answered, 0 for none. */
      retryAfterS: number;
    };

const MODE_NONE = 0;
const MODE_STREAM = 1;
const MODE_BUFFER = 2;

/** Wheel entry that wakes an exchange after a retry backoff. */
class RetryWake implements DeadlineEntry {
  deadlineAt = 0;
  readonly exchange: Exchange;

  constructor(exchange: Exchange) {
    this.exchange = exchange;
  }

  onDeadline(): void {
    this.exchange.retryNow();
  }
}

/** One request in flight; see the file comment. */
export class Exchange implements AttemptOwner, LimiterWaiter, DeadlineEntry {
  readonly ctx: ExchangeContext;
  readonly req: LlmRequest;
  readonly res: LlmResponse;
  readonly endpoint: Endpoint;
  readonly route: ModelRoute;
  /** The parsed request body, never modified: each target gets its own adapted copy. */
  readonly request: Record<string, unknown>;
  readonly startedAt: number;
  /** Total deadline (`performance.now()` time); the exchange is its own wheel entry for it. */
  deadlineAt: number;

  #targetIndex = 0;
  #target: Target;
  #retries = 0;
  #attempts = 0;
  #attempt: UpstreamAttempt | null = null;
  #slot: ProviderRuntime | null = null;
  #slotEpoch = 0;
  #queuedOn: ProviderRuntime | null = null;
  /** When the exchange joined `#queuedOn`'s queue (`performance.now()` time). */
  #queuedAt = 0;
  #wake: RetryWake | null = null;

  #bodyTarget: Target | null = null;
  #upstreamBody: Buffer | null = null;
  #upstreamHeaders: readonly string[] = [];
  #changes: FieldChanges | null = null;

  #mode = MODE_NONE;
  #status = 0;
  #headers: UpstreamHeaders | null = null;
  #chunks: Buffer[] = [];
  #bytes = 0;
  #framer: SseFramer | null = null;
  #committed = false;
  #paused = false;
  #finished = false;
  #usage: TokenUsage | null = null;
  #ttfbMs = -1;
  /** Whether the abort listener and the deadline are registered (see {@link armArrivals}). */
  #armed = false;
  /** `drain` listener, made on the first backpressure: most responses never need one. */
  #onDrain: (() => void) | null = null;

  constructor(
    ctx: ExchangeContext,
    req: LlmRequest,
    res: LlmResponse,
    endpoint: Endpoint,
    route: ModelRoute,
    request: Record<string, unknown>,
  ) {
    this.ctx = ctx;
    this.req = req;
    this.res = res;
    this.endpoint = endpoint;
    this.route = route;
    this.request = request;
    this.startedAt = performance.now();
    this.deadlineAt = this.startedAt + route.totalMs;
    this.#target = route.targets[0];
  }

  /** Starts the exchange: from here on it ends itself, one way or another. */
  start(): void {
    const ctx = this.ctx;
    ctx.live.add(this);
    this.req.goneListener = this;
    this.#begin();
    if (this.#finished) return;
    ctx.arrivals.push(this);
    ctx.arming ??= setImmediate(armArrivals, ctx);
  }

  /** Registers the total deadline; see {@link armArrivals}. */
  arm(): void {
    if (this.#finished) return;
    this.#armed = true;
    this.ctx.wheel.add(this);
  }

  /** Takes a slot at the current target's provider, or queues for one. */
  #begin(): void {
    const provider = this.#target.provider;
    if (provider.unavailable !== null) {
      this.#fail({ kind: 'error', error: provider.unavailable, retryable: true, fallbackOnly: true, retryAfterS: 0 });
      return;
    }
    const result = provider.limiter.acquire(this);
    if (result === 'granted') {
      this.#slotTaken(provider);
      this.#dispatch();
    } else if (result === 'queued') {
      this.#queuedOn = provider;
      this.#queuedAt = performance.now();
    } else {
      const error = new SwitchyardError('SY_LLM_QUEUE_FULL', { provider: provider.id });
      this.#fail({ kind: 'error', error, retryable: true, fallbackOnly: true, retryAfterS: 1 });
    }
  }

  /** Limiter callback: a slot was taken for us. */
  onSlot(): void {
    const provider = this.#queuedOn!;
    this.#queuedOn = null;
    this.#slotTaken(provider);
    this.#dispatch();
  }

  /** Limiter callback: no slot within `maxWaitMs`. */
  onQueueTimeout(): void {
    const provider = this.#queuedOn!;
    this.#queuedOn = null;
    const error = new SwitchyardError('SY_LLM_QUEUE_TIMEOUT', {
      provider: provider.id,
      timeoutMs: provider.limiter.maxWaitMs,
    });
    this.#fail({ kind: 'error', error, retryable: true, fallbackOnly: true, retryAfterS: 1 });
  }

  #slotTaken(provider: ProviderRuntime): void {
    this.#slot = provider;
    this.#slotEpoch = provider.limiter.epoch;
  }

  #releaseSlot(outcome: SlotOutcome): void {
    const slot = this.#slot;
    if (slot === null) return;
    this.#slot = null;
    slot.limiter.release(outcome, this.#slotEpoch);
  }

  /** Sends one attempt to the current target. */
  #dispatch(): void {
    const target = this.#target;
    if (this.#bodyTarget !== target) this.#prepare(target);
    const provider = target.provider;
    const adapter = provider.adapter!;
    this.#attempts++;
    this.#mode = MODE_NONE;
    this.#status = 0;
    this.#headers = null;
    if (this.#chunks.length !== 0) this.#chunks = [];
    this.#bytes = 0;
    this.#framer = null;
    const attempt = new UpstreamAttempt(this);
    this.#attempt = attempt;
    // Errors, even synchronous ones such as a destroyed pool, come back through the handler.
    provider.pool!.dispatch(
      {
        method: 'POST',
        path: adapter.path(this.endpoint),
        headers: this.#upstreamHeaders as string[],
        body: this.#upstreamBody,
        headersTimeout: provider.firstByteMs,
        bodyTimeout: provider.idleMs,
      },
      attempt,
    );
  }

  /** Adapts and serialises the request for `target`: once per target, reused by its retries. */
  #prepare(target: Target): void {
    const request = this.request;
    const params = target.params;
    let body = request;
    // A copy only when something changes: the same fields in the same order serialise the same.
    if (params !== null || target.policy !== null || request.model !== target.model) {
      body = { ...request };
      body.model = target.model;
      if (params !== null) {
        for (const key in params) if (body[key] === undefined) body[key] = params[key];
      }
    }
    this.#changes = target.policy === null ? null : target.policy.apply(body);
    this.#upstreamBody = Buffer.from(JSON.stringify(body));
    this.#bodyTarget = target;
    const adapter = target.provider.adapter!;
    let headers = adapter.headers;
    if (adapter.forwardsAnyHeader) {
      for (const name in this.req.headers) {
        if (adapter.forwardsHeader(name)) {
          if (headers === adapter.headers) headers = headers.slice();
          (headers as string[]).push(name, this.req.headers[name]);
        }
      }
    }
    this.#upstreamHeaders = headers;
    const changes = this.#changes;
    if (this.ctx.logDebug && changes !== null && (changes.dropped || changes.renamed || changes.transformed)) {
      this.ctx.logger.debug(
        {
          provider: target.provider.id,
          model: target.model,
          dropped: changes.dropped,
          renamed: changes.renamed,
          transformed: changes.transformed,
        },
        'llm request fields adapted',
      );
    }
  }

  onUpstreamStart(attempt: UpstreamAttempt, status: number, headers: UpstreamHeaders): void {
    if (attempt !== this.#attempt) return;
    this.#status = status;
    this.#headers = headers;
    const type = headers['content-type'];
    if (status >= 200 && status < 300 && typeof type === 'string' && type.includes('text/event-stream')) {
      this.#mode = MODE_STREAM;
      this.#framer = new SseFramer();
    } else {
      this.#mode = MODE_BUFFER;
    }
  }

  onUpstreamData(attempt: UpstreamAttempt, chunk: Buffer): void {
    if (attempt !== this.#attempt) return;
    if (this.#mode === MODE_STREAM) {
      const ready = this.#framer!.push(chunk);
      if (ready === null) return;
      if (!this.#committed) this.#commitStream();
      this.#forward(ready);
      return;
    }
    this.#bytes += chunk.length;
    if (this.#bytes > MAX_RESPONSE_BYTES) {
      this.#attempt = null;
      const error = new SwitchyardError('SY_UPS_RESPONSE_TOO_LARGE', {
        provider: this.#target.provider.id,
        limitBytes: MAX_RESPONSE_BYTES,
      });
      attempt.abort(error);
      this.#fail({ kind: 'error', error, retryable: false, fallbackOnly: false, retryAfterS: 0 });
      return;
    }
    this.#chunks.push(chunk);
  }

  /** Writes whole events to the client, pausing the upstream while the client is slow. */
  #forward(events: Buffer): void {
    const usage = findUsage(events);
    if (usage !== null) this.#usage = usage;
    if (this.res.destroyed) return;
    if (!this.res.write(events) && !this.#paused) {
      this.#paused = true;
      this.#attempt?.pause();
      this.res.once('drain', (this.#onDrain ??= this.#drained.bind(this)));
    }
  }

  #drained(): void {
    this.#paused = false;
    this.#attempt?.resume();
  }

  onUpstreamEnd(attempt: UpstreamAttempt): void {
    if (attempt !== this.#attempt) return;
    this.#attempt = null;
    if (this.#mode === MODE_STREAM) {
      const rest = this.#framer!.flush();
      if (!this.#committed) this.#commitStream();
      if (rest !== null) this.#forward(rest);
      if (!this.res.destroyed) this.res.end();
      this.#finish(this.#status, true, null);
      return;
    }
    const chunks = this.#chunks;
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, this.#bytes);
    this.#chunks = [];
    const status = this.#status;
    if (status < 400) {
      this.#sendUpstream(status, this.#headers!, body);
      this.#usage = findUsage(body);
      this.#finish(status, status < 300, null);
      return;
    }
    const retryable = this.#target.provider.retry.retriesStatus(status);
    this.#fail({ kind: 'status', status, headers: this.#headers!, body, retryable });
  }

  onUpstreamError(attempt: UpstreamAttempt, cause: Error): void {
    if (attempt !== this.#attempt) return;
    this.#attempt = null;
    const { error, retryable } = classifyUpstreamError(cause, this.#target.provider, this.#mode !== MODE_NONE);
    if (this.#committed) {
      this.#endStream(error);
      return;
    }
    this.#fail({ kind: 'error', error, retryable, fallbackOnly: false, retryAfterS: 0 });
  }

  /**
   * The current target failed before anything reached the client: retry it after a backoff,
   * move on to the next fallback, or answer with the failure.
   */
  #fail(failure: Failure): void {
    this.#releaseSlot(failure.kind === 'status' && failure.status === 429 ? 'rate-limited' : 'other');
    if (!failure.retryable) {
      this.#answerFailure(failure);
      return;
    }
    const provider = this.#target.provider;
    const retry = provider.retry;
    if ((failure.kind === 'status' || !failure.fallbackOnly) && this.#retries < retry.maxRetries) {
      const retryAfterMs = failure.kind === 'status' ? parseRetryAfterMs(failure.headers) : null;
      const delay = retry.delayMs(this.#retries + 1, retryAfterMs);
      if (delay >= 0 && performance.now() + delay < this.deadlineAt) {
        this.#retries++;
        const wake = (this.#wake ??= new RetryWake(this));
        wake.deadlineAt = performance.now() + delay;
        this.ctx.wheel.add(wake);
        return;
      }
    }
    if (this.#targetIndex + 1 < this.route.targets.length) {
      this.#targetIndex++;
      this.#target = this.route.targets[this.#targetIndex];
      this.#retries = 0;
      this.#begin();
      return;
    }
    this.#answerFailure(failure);
  }

  /** Wheel callback of the retry backoff. */
  retryNow(): void {
    if (!this.#finished) this.#begin();
  }

  /** Answers the client with the last failure: the provider's own status and body, or our error. */
  #answerFailure(failure: Failure): void {
    if (failure.kind === 'error') {
      const retryAfterS = failure.error.status === 429 ? Math.max(1, failure.retryAfterS) : failure.retryAfterS;
      writeOpenAiError(this.res, failure.error, null, retryAfterS, this.#ourHeaders());
      this.#finish(failure.error.status, false, failure.error.code);
      return;
    }
    const type = failure.headers['content-type'];
    if (typeof type === 'string' && type.includes('json')) {
      this.#sendUpstream(failure.status, failure.headers, failure.body);
      this.#finish(failure.status, false, null);
      return;
    }
    // Not an OpenAI-shaped body (an HTML error page of a gateway in front of the provider):
    // wrapped so clients can parse it, status kept.
    const error = new SwitchyardError('SY_UPS_BAD_STATUS', {
      provider: this.#target.provider.id,
      upstreamStatus: failure.status,
      detail: failure.body.toString('utf8', 0, Math.min(failure.body.length, 200)).trim() || 'empty body',
    });
    const retryAfter = failure.headers['retry-after'];
    const extra = this.#ourHeaders();
    extra['x-switchyard-error'] = error.code;
    if (typeof retryAfter === 'string') extra['retry-after'] = retryAfter;
    // The type follows the status the client gets (a plain-text 429 is a rate_limit_error).
    const bodyText = JSON.stringify({
      error: { message: error.message, type: openAiErrorType(failure.status), code: error.code, param: null },
    });
    if (!this.res.destroyed && !this.res.headersSent) {
      this.res.writeHead(failure.status, {
        ...extra,
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(bodyText)),
      });
      this.res.end(bodyText);
    }
    this.#finish(failure.status, false, error.code);
  }

  /** Sends a complete upstream response (success or passed-through error) in one go. */
  #sendUpstream(status: number, upstream: UpstreamHeaders, body: Buffer): void {
    this.#ttfbMs = performance.now() - this.startedAt;
    this.#committed = true;
    if (this.res.destroyed) return;
    const headers = this.#clientHeaders(upstream);
    headers['content-length'] = String(body.length);
    this.res.writeHead(status, headers);
    this.res.end(body);
  }

  #commitStream(): void {
    this.#ttfbMs = performance.now() - this.startedAt;
    this.#committed = true;
    if (this.res.destroyed) return;
    this.res.writeHead(this.#status, this.#clientHeaders(this.#headers!));
  }

  /** Upstream headers minus hop-by-hop ones, plus ours. */
  #clientHeaders(upstream: UpstreamHeaders): Record<string, string | string[]> {
    const headers = this.#ourHeaders() as Record<string, string | string[]>;
    for (const name in upstream) {
      const value = upstream[name];
      if (value !== undefined && !STRIPPED_HEADERS.has(name)) headers[name] = value;
    }
    return headers;
  }

  /** `x-switchyard-*` headers: who served the request and what was changed on the way. */
  #ourHeaders(): Record<string, string> {
    const headers: Record<string, string> = {
      'x-switchyard-provider': this.#target.provider.id,
      'x-switchyard-attempts': String(this.#attempts),
    };
    const changes = this.#bodyTarget === this.#target ? this.#changes : null;
    if (changes !== null) {
      if (changes.dropped !== null) headers['x-switchyard-dropped-fields'] = changes.dropped.join(', ');
      if (changes.renamed !== null) headers['x-switchyard-renamed-fields'] = changes.renamed.join(', ');
      if (changes.transformed !== null) headers['x-switchyard-transformed-fields'] = changes.transformed.join(', ');
    }
    return headers;
  }

  /** Ends a stream already under way with an error event (whole, thanks to the framer); no `[DONE]`. */
  #endStream(error: SwitchyardError): void {
    const framer = this.#framer;
    framer?.flush();
    if (!this.res.destroyed) this.res.end(sseErrorEvent(error, framer?.lineEnd ?? '\n'));
    this.#finish(this.#status, false, error.code);
  }

  /** Wheel callback: the total deadline passed. */
  onDeadline(): void {
    if (this.#finished) return;
    const queuedOn = this.#queuedOn;
    if (queuedOn !== null) {
      // Still waiting for a slot: the provider is busy, not slow. A 429 with Retry-After tells
      // the client to come back later, where a 504 would read as a provider that hung.
      const waitedMs = Math.round(performance.now() - this.#queuedAt);
      const error = new SwitchyardError('SY_LLM_QUEUE_TIMEOUT', { provider: queuedOn.id, timeoutMs: waitedMs });
      queuedOn.limiter.expire(this);
      this.#queuedOn = null;
      this.#stopWork(error);
      writeOpenAiError(this.res, error, null, 1, this.#ourHeaders());
      this.#finish(error.status, false, error.code);
      return;
    }
    const error = new SwitchyardError('SY_LLM_DEADLINE', { timeoutMs: this.route.totalMs });
    this.#stopWork(error);
    if (this.#committed) {
      this.#endStream(error);
      return;
    }
    this.#releaseSlot('other');
    writeOpenAiError(this.res, error, null, 0, this.#ourHeaders());
    this.#finish(error.status, false, error.code);
  }

  /** The client is gone (see clientGone in types.ts). */
  onClientGone(): void {
    if (this.#finished) return;
    const error = new SwitchyardError('SY_LLM_CLIENT_CLOSED');
    this.#stopWork(error);
    this.#finish(error.status, false, error.code);
  }

  /** Ends the exchange because the gateway closes: 503 if nothing was sent yet, else an error event. */
  shutdown(): void {
    if (this.#finished) return;
    const error = new SwitchyardError('SY_ADMIN_SHUTDOWN');
    this.#stopWork(error);
    if (this.#committed) {
      this.#endStream(error);
      return;
    }
    writeOpenAiError(this.res, error, null, 0, this.#ourHeaders());
    this.#finish(error.status, false, error.code);
  }

  /** Leaves the queue, cancels a pending retry and aborts the upstream call. */
  #stopWork(reason: Error): void {
    if (this.#queuedOn !== null) {
      this.#queuedOn.limiter.cancel(this);
      this.#queuedOn = null;
    }
    if (this.#wake !== null) this.ctx.wheel.delete(this.#wake);
    const attempt = this.#attempt;
    if (attempt !== null) {
      this.#attempt = null;
      attempt.abort(reason);
    }
  }

  /** Releases everything the exchange holds, records usage and writes the request's log line. */
  #finish(status: number, ok: boolean, code: string | null): void {
    this.#finished = true;
    this.#releaseSlot(ok ? 'success' : 'other');
    if (this.#armed) this.ctx.wheel.delete(this);
    if (this.req.goneListener === this) this.req.goneListener = null;
    if (this.#wake !== null) this.ctx.wheel.delete(this.#wake);
    this.ctx.live.delete(this);
    const target = this.#target;
    UsageStats.record(target.usage, ok, this.#usage);
    if (!this.ctx.logRequests) return;
    const usage = this.#usage;
    this.ctx.logger.info(
      {
        alias: this.route.name,
        provider: target.provider.id,
        model: target.model,
        endpoint: this.endpoint,
        stream: this.#mode === MODE_STREAM,
        status,
        code,
        attempts: this.#attempts,
        ttfbMs: this.#ttfbMs < 0 ? null : Math.round(this.#ttfbMs * 10) / 10,
        durationMs: Math.round((performance.now() - this.startedAt) * 10) / 10,
        promptTokens: usage === null ? null : usage.promptTokens,
        completionTokens: usage === null ? null : usage.completionTokens,
        client: this.req.clientAddress,
      },
      'llm request',
    );
  }
}
