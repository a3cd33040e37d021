/**
 * The one registry of Switchyard error codes (CONVENTIONS.md, "Errors").
 *
 * Every error the proxy raises or reports carries a stable `SY_<AREA>_<CONDITION>` code from
 * this table. Codes are never reused; `docs/errors.md` is generated from this table and a test
 * checks that the two agree.
 */

import { HTTP_PARSE_ERRORS } from './http/parser/http-parse-error.ts';

/** One entry of the registry. */
export interface ErrorSpec {
  /** HTTP status sent to a client when the error ends an HTTP exchange, or 0 when none applies. */
  readonly status: number;
  /** Whether trying the same operation again may succeed. */
  readonly retryable: boolean;
  /** Message template; `{name}` placeholders are filled from the error's params. */
  readonly message: string;
}

/** All error codes, with their status, retry flag and message template. */
export const ERRORS = {
  SY_CFG_INVALID: { status: 0, retryable: false, message: 'invalid config {source}: {detail}' },
  SY_CFG_READ: { status: 0, retryable: false, message: 'cannot read config file {file}: {detail}' },
  SY_CFG_PARSE: { status: 0, retryable: false, message: 'cannot parse YAML in {file}: {detail}' },
  SY_LSN_BIND: { status: 0, retryable: true, message: 'cannot listen on {address}: {detail}' },
  SY_LSN_CLASSIFY_TIMEOUT: {
    status: 408,
    retryable: false,
    message: 'no complete protocol preface within {timeoutMs} ms',
  },
  SY_LSN_EARLY_CLOSE: {
    status: 0,
    retryable: false,
    message: 'client closed before its PROXY header or TLS ClientHello was complete',
  },
  SY_LSN_BAD_TLS: { status: 0, retryable: false, message: 'malformed TLS ClientHello: {detail}' },
  SY_LSN_BAD_PROXY_HEADER: { status: 0, retryable: false, message: 'malformed PROXY protocol header: {detail}' },
  SY_LSN_UNTRUSTED_PROXY_HEADER: {
    status: 0,
    retryable: false,
    message: 'PROXY protocol header from untrusted peer {peer}',
  },
  SY_ROUTE_NO_MATCH: { status: 404, retryable: false, message: 'no route matches port {port} host {host}' },
  SY_L4_CONNECT: { status: 502, retryable: true, message: 'cannot connect to {target}: {detail}' },
  SY_L4_CONNECT_TIMEOUT: {
    status: 504,
    retryable: true,
    message: 'connect to {target} timed out after {timeoutMs} ms',
  },
  SY_L4_NO_TARGET: { status: 502, retryable: true, message: 'every target of route {route} failed' },
  SY_L4_IDLE_TIMEOUT: { status: 0, retryable: false, message: 'connection idle for {timeoutMs} ms' },
  SY_HTTP_CONNECT: {
    status: 405,
    retryable: false,
    message: 'CONNECT is not supported: Switchyard is a reverse proxy',
  },
  SY_HTTP_BODY_TIMEOUT: {
    status: 408,
    retryable: false,
    message: 'the request body stalled for longer than the idle timeout',
  },
  SY_HTTP_HEAD_TIMEOUT: {
    status: 408,
    retryable: false,
    message: 'request head not complete within http.headTimeoutMs',
  },
  SY_UPS_CONNECT_TIMEOUT: { status: 502, retryable: true, message: 'connect to the upstream timed out' },
  SY_UPS_UNAVAILABLE: { status: 502, retryable: true, message: 'no target of the route could be reached' },
  SY_UPS_POOL_FULL: {
    status: 503,
    retryable: true,
    message: 'every upstream connection is busy and the queue is full',
  },
  SY_UPS_POOL_TIMEOUT: { status: 503, retryable: true, message: 'no upstream connection became free in time' },
  SY_UPS_POOL_CLOSED: { status: 502, retryable: true, message: 'the upstream pool was closed (reload or shutdown)' },
  SY_UPS_RESET: { status: 502, retryable: true, message: 'the upstream closed the connection before responding' },
  SY_UPS_RESPONSE_TIMEOUT: {
    status: 504,
    retryable: true,
    message: 'no response head from the upstream within the response timeout',
  },
  SY_UPS_UNEXPECTED_UPGRADE: {
    status: 502,
    retryable: false,
    message: 'the upstream switched protocols without being asked',
  },
  SY_LLM_LENGTH_REQUIRED: { status: 411, retryable: false, message: 'LLM requests need a Content-Length body' },
  SY_ADMIN_SHUTDOWN: { status: 503, retryable: true, message: 'proxy is shutting down' },
  SY_LLM_BAD_REQUEST: { status: 400, retryable: false, message: 'invalid request: {detail}' },
  SY_LLM_UNKNOWN_MODEL: {
    status: 400,
    retryable: false,
    message: 'unknown model {model}: not an alias and not a configured provider:model',
  },
  SY_LLM_NOT_FOUND: { status: 404, retryable: false, message: 'no LLM endpoint at {path}' },
  SY_LLM_METHOD_NOT_ALLOWED: { status: 405, retryable: false, message: '{method} is not allowed on {path}' },
  SY_LLM_QUEUE_FULL: {
    status: 429,
    retryable: true,
    message: 'provider {provider} is at its concurrency limit and its queue is full',
  },
  SY_LLM_QUEUE_TIMEOUT: {
    status: 429,
    retryable: true,
    message: 'no free slot at provider {provider} within {timeoutMs} ms',
  },
  SY_LLM_DEADLINE: { status: 504, retryable: true, message: 'request did not finish within {timeoutMs} ms' },
  SY_LLM_PROVIDER_UNAVAILABLE: {
    status: 503,
    retryable: true,
    message: 'provider {provider} is unavailable: {detail}',
  },
  SY_LLM_API_KEY: { status: 0, retryable: false, message: 'provider {provider} has no API key: {detail}' },
  SY_LLM_CLIENT_CLOSED: { status: 499, retryable: false, message: 'client closed the connection' },
  SY_UPS_CONNECT: { status: 502, retryable: true, message: 'cannot reach provider {provider}: {detail}' },
  SY_UPS_FIRST_BYTE_TIMEOUT: {
    status: 504,
    retryable: true,
    message: 'provider {provider} sent no response within {timeoutMs} ms',
  },
  SY_UPS_IDLE_TIMEOUT: { status: 504, retryable: true, message: 'provider {provider} sent nothing for {timeoutMs} ms' },
  SY_UPS_STREAM_BROKEN: {
    status: 502,
    retryable: true,
    message: 'the response from provider {provider} broke: {detail}',
  },
  SY_UPS_BAD_STATUS: {
    status: 502,
    retryable: false,
    message: 'provider {provider} answered {upstreamStatus}: {detail}',
  },
  SY_UPS_RESPONSE_TOO_LARGE: {
    status: 502,
    retryable: false,
    message: 'provider {provider} sent a response larger than {limitBytes} bytes',
  },
  ...HTTP_PARSE_ERRORS,
} as const satisfies Record<string, ErrorSpec>;

/** A registered error code. */
export type ErrorCode = keyof typeof ERRORS;

/** Fills `{name}` placeholders of a template from params; unknown names stay as written. */
function format(template: string, params: Record<string, unknown>): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => (name in params ? String(params[name]) : whole));
}

/** Base class of every error Switchyard raises: a registered code, its status and params. */
export class SwitchyardError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly params: Record<string, unknown>;

  constructor(code: ErrorCode, params: Record<string, unknown> = {}, options?: ErrorOptions) {
    const spec: ErrorSpec = ERRORS[code];
    super(format(spec.message, params), options);
    this.name = 'SwitchyardError';
    this.code = code;
    this.status = spec.status;
    this.retryable = spec.retryable;
    this.params = params;
  }
}
