/**
 * The one registry of Switchyard error codes (CONVENTIONS.md, "Errors").
 *
 * Every error the proxy raises or reports carries a stable `SY_<AREA>_<CONDITION>` code from
 * this table. Codes are never reused; `docs/errors.md` is generated from this table and a test
 * checks that the two agree.
 */

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
  SY_ADMIN_SHUTDOWN: { status: 503, retryable: true, message: 'proxy is shutting down' },
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
