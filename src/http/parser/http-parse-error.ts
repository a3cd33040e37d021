/**
 * Failure results of the HTTP/1.1 framing layer, and their error codes.
 *
 * @module
 */

import type { ErrorSpec } from '../../errors.ts';

/**
 * The codes the framing layer reports, in the shape of the project's error registry (`src/errors.ts`),
 * which should include them. `SY_HTTP_*` codes describe a client's request and carry the status to answer
 * it with; `SY_UPS_*` codes describe an upstream's response, which the engine answers with a 502 and never
 * forwards. `{reason}` is the failure's {@link HttpParseError.reason}.
 */
export const HTTP_PARSE_ERRORS = {
  SY_HTTP_BAD_REQUEST_LINE: { status: 400, retryable: false, message: 'malformed request line: {reason}' },
  SY_HTTP_METHOD_NOT_IMPLEMENTED: {
    status: 501,
    retryable: false,
    message: 'request method not implemented: {reason}',
  },
  SY_HTTP_BAD_TARGET: { status: 400, retryable: false, message: 'invalid request target: {reason}' },
  SY_HTTP_URI_TOO_LONG: { status: 414, retryable: false, message: 'request target too long: {reason}' },
  SY_HTTP_VERSION_NOT_SUPPORTED: { status: 505, retryable: false, message: 'HTTP version not supported: {reason}' },
  SY_HTTP_BAD_LINE_ENDING: { status: 400, retryable: false, message: 'invalid line ending: {reason}' },
  SY_HTTP_BAD_HEADER: { status: 400, retryable: false, message: 'malformed header field: {reason}' },
  SY_HTTP_HEADERS_TOO_LARGE: { status: 431, retryable: false, message: 'request header section too large: {reason}' },
  SY_HTTP_TOO_MANY_HEADERS: { status: 431, retryable: false, message: 'too many request header fields: {reason}' },
  SY_HTTP_BAD_FRAMING: { status: 400, retryable: false, message: 'ambiguous or invalid message framing: {reason}' },
  SY_HTTP_UNSUPPORTED_TRANSFER_CODING: {
    status: 501,
    retryable: false,
    message: 'transfer coding not supported: {reason}',
  },
  SY_HTTP_BAD_HOST: { status: 400, retryable: false, message: 'missing or invalid Host: {reason}' },
  SY_HTTP_BAD_CHUNK: { status: 400, retryable: false, message: 'malformed chunked body: {reason}' },
  SY_HTTP_BAD_TRAILER: { status: 400, retryable: false, message: 'malformed trailer field: {reason}' },
  SY_HTTP_TRAILERS_TOO_LARGE: { status: 431, retryable: false, message: 'trailer section too large: {reason}' },
  SY_HTTP_BODY_TOO_LARGE: { status: 413, retryable: false, message: 'request body too large: {reason}' },
  SY_UPS_BAD_RESPONSE_HEAD: {
    status: 502,
    retryable: false,
    message: 'malformed response head from upstream: {reason}',
  },
  SY_UPS_RESPONSE_HEAD_TOO_LARGE: {
    status: 502,
    retryable: false,
    message: 'response head from upstream too large: {reason}',
  },
  SY_UPS_BAD_FRAMING: { status: 502, retryable: false, message: 'ambiguous response framing from upstream: {reason}' },
  SY_UPS_BAD_CHUNK: {
    status: 502,
    retryable: false,
    message: 'malformed chunked response body from upstream: {reason}',
  },
} as const satisfies Record<string, ErrorSpec>;

/** A code of {@link HTTP_PARSE_ERRORS}. */
export type HttpParseErrorCode = keyof typeof HTTP_PARSE_ERRORS;

/**
 * Why a head or chunked body was rejected. This is a result value, not a thrown `Error`: every instance is
 * created once at module load and shared, so rejecting hostile input allocates nothing and captures no
 * stack. Compare `kind`, read `status` and `code`; the engine may wrap it in a `SwitchyardError` to log it.
 */
export class HttpParseError {
  /** Discriminant of the parse results. */
  readonly kind: 'error';
  /** HTTP status to answer with: 400, 413, 414, 431, 501 or 505 for requests; 502 for upstream responses. */
  readonly status: number;
  /** Registry code, a key of {@link HTTP_PARSE_ERRORS}. */
  readonly code: HttpParseErrorCode;
  /** Short, fixed, human-readable reason (no bytes from the message: safe to log and to send). */
  readonly reason: string;

  constructor(code: HttpParseErrorCode, reason: string) {
    this.kind = 'error';
    this.status = HTTP_PARSE_ERRORS[code].status;
    this.code = code;
    this.reason = reason;
  }
}
