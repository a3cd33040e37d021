/**
 * Size and count limits applied while framing HTTP/1.1 messages.
 *
 * @module
 */

/**
 * Limits for one side of the engine. Build them once (at config load) with {@link httpLimits}; every
 * parser call takes the same object, so it never allocates or defaults a field on the hot path.
 */
export interface HttpLimits {
  /**
   * Largest head, in bytes, from the first byte handed to the parser (ignored leading empty lines
   * included) through the CRLF CRLF that ends it. Past it: 431 for requests, an error (502) for responses.
   */
  readonly maxHeaderBytes: number;
  /** Most header field lines in one head, and most trailer field lines in one chunked body (431). */
  readonly maxHeaders: number;
  /** Longest request-target, in bytes (414). */
  readonly maxUriBytes: number;
  /** Largest trailer section of a chunked body, in bytes, from after the last chunk's CRLF to the end (431). */
  readonly maxTrailerBytes: number;
  /**
   * Most chunk-extension bytes (from each `;` to the CR of its line) in one chunked body, summed over its
   * chunks. Extensions are forwarded but count toward no body limit, so they need a bound of their own
   * (Node answers the same attack, CVE-2024-22019, with a 16 KiB cap).
   */
  readonly maxChunkExtBytes: number;
}

/** The defaults: 16 KiB heads, 100 fields, 8 KiB targets, 16 KiB trailers, 16 KiB chunk extensions. */
export const DEFAULT_HTTP_LIMITS: HttpLimits = Object.freeze({
  maxHeaderBytes: 16 * 1024,
  maxHeaders: 100,
  maxUriBytes: 8 * 1024,
  maxTrailerBytes: 16 * 1024,
  maxChunkExtBytes: 16 * 1024,
});

/**
 * Builds a complete, frozen limits object from the defaults and `overrides`.
 *
 * @throws RangeError when a value is not a positive safe integer.
 */
export function httpLimits(overrides: Partial<HttpLimits> = {}): HttpLimits {
  const limits: HttpLimits = {
    maxHeaderBytes: overrides.maxHeaderBytes ?? DEFAULT_HTTP_LIMITS.maxHeaderBytes,
    maxHeaders: overrides.maxHeaders ?? DEFAULT_HTTP_LIMITS.maxHeaders,
    maxUriBytes: overrides.maxUriBytes ?? DEFAULT_HTTP_LIMITS.maxUriBytes,
    maxTrailerBytes: overrides.maxTrailerBytes ?? DEFAULT_HTTP_LIMITS.maxTrailerBytes,
    maxChunkExtBytes: overrides.maxChunkExtBytes ?? DEFAULT_HTTP_LIMITS.maxChunkExtBytes,
  };
  for (const [key, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new RangeError(`HTTP limit ${key} must be a positive integer, got ${String(value)}`);
    }
  }
  return Object.freeze(limits);
}
