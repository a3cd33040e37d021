/**
 * HTTP/1.1 message framing for the proxy engine: strict, incremental, allocation-light parsers for request
 * and response heads and a boundary scanner for chunked bodies (RFC 9110, RFC 9112).
 *
 * Typical use on a client connection:
 *
 * ```ts
 * const r = parseRequestHead(buf, 0, len, limits, progress);
 * if (r.kind === 'incomplete') progress = r;        // wait for more bytes
 * else if (r.kind === 'error') reply(r.status);      // then close: framing is in doubt
 * else { body starts at r.consumed: r.chunked ? scanner.reset(limits, routeMax).scan(...) : r.contentLength }
 * ```
 *
 * @module
 */

export { ChunkedScanner, FORBIDDEN_TRAILERS, MAX_CHUNK_SIZE_DIGITS } from './chunked-scanner.ts';
export {
  F_CONTENT_LENGTH,
  F_FORWARDED,
  F_HOST,
  F_X_FORWARDED_FOR,
  F_X_FORWARDED_HOST,
  F_X_FORWARDED_PROTO,
  isHopByHopKind,
  MAX_CONTENT_LENGTH_DIGITS,
} from './framing.ts';
export { HeadProgress, MAX_METHOD_BYTES } from './head-scanner.ts';
export { HTTP_PARSE_ERRORS, HttpParseError, type HttpParseErrorCode } from './http-parse-error.ts';
export { DEFAULT_HTTP_LIMITS, type HttpLimits, httpLimits } from './limits.ts';
export { parseRequestHead, RequestHead, type RequestHeadResult, type TargetForm } from './request-head.ts';
export { parseResponseHead, type ResponseFraming, ResponseHead, type ResponseHeadResult } from './response-head.ts';
