/**
 * Boundary scanner for chunked message bodies (RFC 9112 §7.1), for pass-through forwarding.
 *
 * @module
 */

import { CR, HEX, HTAB, LF, SP, TCHAR, VALUE } from './chars.ts';
import { HttpParseError } from './http-parse-error.ts';
import { DEFAULT_HTTP_LIMITS, type HttpLimits } from './limits.ts';

// States. Numbers: one switch per byte of size lines and trailers; chunk data is skipped in O(1).
const S_SIZE_START = 0;
const S_SIZE = 1;
const S_EXT_NAME_START = 2;
const S_EXT_NAME = 3;
const S_EXT_VALUE_START = 4;
const S_EXT_TOKEN_VALUE = 5;
const S_EXT_QUOTED = 6;
const S_EXT_QUOTED_ESCAPE = 7;
const S_EXT_QUOTED_END = 8;
const S_SIZE_LF = 9;
const S_DATA = 10;
const S_DATA_CR = 11;
const S_DATA_LF = 12;
const S_TRAILER_START = 13;
const S_TRAILER_NAME = 14;
const S_TRAILER_VALUE = 15;
const S_TRAILER_LF = 16;
const S_END_LF = 17;
const S_DONE = 18;
const S_ERROR = 19;

/**
 * Fields refused in a trailer section: those that frame the message, route it, or manage the connection
 * (RFC 9110 §6.5.1 forbids them there). A recipient that merged them into the header section would frame or
 * route the message differently from us; llhttp, for one, rejects a trailer Content-Length.
 */
export const FORBIDDEN_TRAILERS: readonly string[] = [
  'content-length',
  'transfer-encoding',
  'trailer',
  'host',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'upgrade',
  'expect',
];

const FORBIDDEN_MAX_LEN = Math.max(...FORBIDDEN_TRAILERS.map((n) => n.length));

/**
 * `FORBIDDEN_MATCH[i * 256 + b]`: bit k set when forbidden name k has byte `b` (either case) at index i. A
 * name is matched incrementally, one AND per byte, because it may arrive split across reads.
 */
const FORBIDDEN_MATCH: Uint16Array = (() => {
  const t = new Uint16Array(FORBIDDEN_MAX_LEN * 256);
  FORBIDDEN_TRAILERS.forEach((name, k) => {
    for (let i = 0; i < name.length; i++) {
      const c = name.charCodeAt(i);
      t[i * 256 + c] |= 1 << k;
      t[i * 256 + c - (c >= 0x61 && c <= 0x7a ? 0x20 : 0)] |= 1 << k;
    }
  });
  return t;
})();

/** `FORBIDDEN_BY_LENGTH[n]`: bits of the forbidden names n bytes long. */
const FORBIDDEN_BY_LENGTH: Uint16Array = (() => {
  const t = new Uint16Array(FORBIDDEN_MAX_LEN + 1);
  FORBIDDEN_TRAILERS.forEach((name, k) => {
    t[name.length] |= 1 << k;
  });
  return t;
})();

/** Most hex digits in a chunk size, leading zeros included: bounds the line; 2^53 needs 14 digits. */
export const MAX_CHUNK_SIZE_DIGITS = 16;

// Failures, as indexes into the request and response tables.
const E_SIZE = 0;
const E_SIZE_OVERFLOW = 1;
const E_EXT = 2;
const E_EXT_TOO_LONG = 3;
const E_LINE_END = 4;
const E_DATA_END = 5;
const E_TRAILER = 6;
const E_TRAILER_FOLD = 7;
const E_TRAILERS_TOO_LARGE = 8;
const E_TOO_MANY_TRAILERS = 9;
const E_BODY_TOO_LARGE = 10;
const E_FORBIDDEN_TRAILER = 11;

const REQUEST_ERRORS: readonly HttpParseError[] = [
  new HttpParseError('SY_HTTP_BAD_CHUNK', 'chunk size is not hex digits (no sign, prefix or whitespace)'),
  new HttpParseError('SY_HTTP_BAD_CHUNK', 'chunk size too large'),
  new HttpParseError('SY_HTTP_BAD_CHUNK', 'malformed chunk extension'),
  new HttpParseError('SY_HTTP_BAD_CHUNK', 'chunk extensions longer than maxChunkExtBytes'),
  new HttpParseError('SY_HTTP_BAD_CHUNK', 'chunk size line not ended by CRLF'),
  new HttpParseError('SY_HTTP_BAD_CHUNK', 'chunk data not followed by CRLF'),
  new HttpParseError('SY_HTTP_BAD_TRAILER', 'malformed trailer field'),
  new HttpParseError('SY_HTTP_BAD_TRAILER', 'line folding or whitespace before a trailer field name'),
  new HttpParseError('SY_HTTP_TRAILERS_TOO_LARGE', 'trailer section longer than maxTrailerBytes'),
  new HttpParseError('SY_HTTP_TRAILERS_TOO_LARGE', 'more than maxHeaders trailer fields'),
  new HttpParseError('SY_HTTP_BODY_TOO_LARGE', 'chunk sizes sum past the body limit'),
  new HttpParseError('SY_HTTP_BAD_TRAILER', 'framing, routing or connection field in trailers'),
];

const RESPONSE_ERRORS: readonly HttpParseError[] = REQUEST_ERRORS.map(
  (e) => new HttpParseError('SY_UPS_BAD_CHUNK', e.code === 'SY_HTTP_BODY_TOO_LARGE' ? 'body too large' : e.reason),
);

/**
 * Finds where a chunked body ends without copying or decoding it: the engine forwards the raw bytes and
 * learns from {@link scan} how many of them belong to the message. One per message; pool and
 * {@link reset} them (every field is set in the constructor and by `reset`, so pooled scanners keep one
 * hidden class).
 *
 * Strict syntax (reject, never guess):
 * - chunk-size: 1 to 16 hex digits, any case, leading zeros allowed; no sign, `0x`, or whitespace; the sum
 *   must stay below 2^53.
 * - chunk-ext: `;name` or `;name=token` or `;name="quoted string"` with names and tokens per RFC 9110 tchar,
 *   quoted-pair escapes allowed, and no whitespace anywhere on the line (RFC 9112 §7.1.1 permits BWS
 *   around `;` and `=`, which no sender should generate; llhttp and nginx have disagreed on it, so we
 *   refuse it). Extension bytes per body are capped by `maxChunkExtBytes`.
 * - every line ends in CRLF; chunk data must be followed by CRLF.
 * - trailer fields are checked like header fields (token name, colon, field value without controls, no
 *   folding), at most `maxHeaders` of them in at most `maxTrailerBytes` bytes, none of them one of the
 *   {@link FORBIDDEN_TRAILERS}.
 */
export class ChunkedScanner {
  /** Whether the whole body, last chunk, trailers and final CRLF included, has been seen. */
  done: boolean;
  /** Why the body was rejected, once {@link scan} has returned -1. */
  error: HttpParseError | null;
  /**
   * Sum of the chunk sizes announced so far (counted when a size line ends, before its data arrives): the
   * decoded body length once `done`. Compare it with a body limit, or pass the limit to {@link reset}.
   */
  bodyBytes: number;
  private state: number;
  private size: number;
  private digits: number;
  private remaining: number;
  private extBytes: number;
  private trailerBytes: number;
  private trailerCount: number;
  private nameLength: number;
  private nameMatch: number;
  private maxBodyBytes: number;
  private maxChunkExtBytes: number;
  private maxTrailerBytes: number;
  private maxTrailers: number;
  private errors: readonly HttpParseError[];

  constructor(limits: HttpLimits = DEFAULT_HTTP_LIMITS, maxBodyBytes = Number.POSITIVE_INFINITY, response = false) {
    this.done = false;
    this.error = null;
    this.bodyBytes = 0;
    this.state = S_SIZE_START;
    this.size = 0;
    this.digits = 0;
    this.remaining = 0;
    this.extBytes = 0;
    this.trailerBytes = 0;
    this.trailerCount = 0;
    this.nameLength = 0;
    this.nameMatch = 0;
    this.maxBodyBytes = maxBodyBytes;
    this.maxChunkExtBytes = limits.maxChunkExtBytes;
    this.maxTrailerBytes = limits.maxTrailerBytes;
    this.maxTrailers = limits.maxHeaders;
    this.errors = response ? RESPONSE_ERRORS : REQUEST_ERRORS;
  }

  /**
   * Prepares the scanner for a new body.
   *
   * @param maxBodyBytes reject (413 for requests) as soon as announced chunk sizes sum past it
   * @param response true for an upstream's response: errors then carry `SY_UPS_BAD_CHUNK` and status 502
   */
  reset(limits: HttpLimits = DEFAULT_HTTP_LIMITS, maxBodyBytes = Number.POSITIVE_INFINITY, response = false): this {
    this.done = false;
    this.error = null;
    this.bodyBytes = 0;
    this.state = S_SIZE_START;
    this.size = 0;
    this.digits = 0;
    this.remaining = 0;
    this.extBytes = 0;
    this.trailerBytes = 0;
    this.trailerCount = 0;
    this.nameLength = 0;
    this.nameMatch = 0;
    this.maxBodyBytes = maxBodyBytes;
    this.maxChunkExtBytes = limits.maxChunkExtBytes;
    this.maxTrailerBytes = limits.maxTrailerBytes;
    this.maxTrailers = limits.maxHeaders;
    this.errors = response ? RESPONSE_ERRORS : REQUEST_ERRORS;
    return this;
  }

  /**
   * Feeds the next body bytes `buf[start, end)`.
   *
   * @returns how many of them belong to this body: `end - start` while it goes on; fewer when it ends
   *   inside them (then `done` is true and the rest is the next message); 0 once done; -1 when the body is
   *   malformed or over a limit (see `error`; the scanner stays failed until {@link reset}). The verdict
   *   does not depend on how the bytes are split across calls.
   */
  scan(buf: Uint8Array, start: number, end: number): number {
    let p = start;
    let state = this.state;
    if (state === S_ERROR) return -1;
    let err = -1;
    loop: while (p < end) {
      switch (state) {
        case S_DATA: {
          const avail = end - p;
          if (avail < this.remaining) {
            this.remaining -= avail;
            p = end;
          } else {
            p += this.remaining;
            this.remaining = 0;
            state = S_DATA_CR;
          }
          continue;
        }
        case S_DATA_CR:
          if (buf[p] !== CR) {
            err = E_DATA_END;
            break loop;
          }
          p++;
          state = S_DATA_LF;
          continue;
        case S_DATA_LF:
          if (buf[p] !== LF) {
            err = E_DATA_END;
            break loop;
          }
          p++;
          state = S_SIZE_START;
          continue;
        case S_SIZE_START: {
          const h = HEX[buf[p]];
          if (h === 255) {
            err = E_SIZE;
            break loop;
          }
          this.size = h;
          this.digits = 1;
          p++;
          state = S_SIZE;
          continue;
        }
        case S_SIZE: {
          const c = buf[p];
          const h = HEX[c];
          if (h !== 255) {
            if (++this.digits > MAX_CHUNK_SIZE_DIGITS || this.size > (Number.MAX_SAFE_INTEGER - h) / 16) {
              err = E_SIZE_OVERFLOW;
              break loop;
            }
            this.size = this.size * 16 + h;
            p++;
            continue;
          }
          if (c === CR) state = S_SIZE_LF;
          else if (c === 0x3b) {
            if (++this.extBytes > this.maxChunkExtBytes) {
              err = E_EXT_TOO_LONG;
              break loop;
            }
            state = S_EXT_NAME_START;
          } else {
            err = E_SIZE;
            break loop;
          }
          p++;
          continue;
        }
        case S_SIZE_LF: {
          if (buf[p] !== LF) {
            err = E_LINE_END;
            break loop;
          }
          p++;
          const size = this.size;
          if (size === 0) {
            state = S_TRAILER_START;
            continue;
          }
          this.bodyBytes += size;
          if (this.bodyBytes > this.maxBodyBytes || this.bodyBytes > Number.MAX_SAFE_INTEGER) {
            err = this.bodyBytes > this.maxBodyBytes ? E_BODY_TOO_LARGE : E_SIZE_OVERFLOW;
            break loop;
          }
          this.remaining = size;
          state = S_DATA;
          continue;
        }
        case S_TRAILER_START:
        case S_TRAILER_NAME:
        case S_TRAILER_VALUE:
        case S_TRAILER_LF:
        case S_END_LF:
          if (++this.trailerBytes > this.maxTrailerBytes) {
            err = E_TRAILERS_TOO_LARGE;
            break loop;
          }
          this.state = state;
          err = this.trailerByte(buf[p], state);
          if (err !== -1) break loop;
          p++;
          state = this.state;
          if (state === S_DONE) {
            this.done = true;
            return p - start;
          }
          continue;
        case S_DONE:
          return 0;
        default:
          // Chunk extension states.
          if (++this.extBytes > this.maxChunkExtBytes) {
            err = E_EXT_TOO_LONG;
            break loop;
          }
          state = this.extensionByte(buf[p], state);
          if (state === S_ERROR) {
            err = E_EXT;
            break loop;
          }
          p++;
          continue;
      }
    }
    if (err !== -1) {
      this.state = S_ERROR;
      this.error = this.errors[err];
      return -1;
    }
    this.state = state;
    return p - start;
  }

  /** Next state after byte `c` of a chunk extension, or S_ERROR (RFC 9112 §7.1.1, without BWS). */
  private extensionByte(c: number, state: number): number {
    switch (state) {
      case S_EXT_NAME_START:
        return TCHAR[c] === 1 ? S_EXT_NAME : S_ERROR;
      case S_EXT_NAME:
        if (TCHAR[c] === 1) return S_EXT_NAME;
        return c === 0x3d ? S_EXT_VALUE_START : c === 0x3b ? S_EXT_NAME_START : c === CR ? S_SIZE_LF : S_ERROR;
      case S_EXT_VALUE_START:
        return c === 0x22 ? S_EXT_QUOTED : TCHAR[c] === 1 ? S_EXT_TOKEN_VALUE : S_ERROR;
      case S_EXT_TOKEN_VALUE:
        if (TCHAR[c] === 1) return S_EXT_TOKEN_VALUE;
        return c === 0x3b ? S_EXT_NAME_START : c === CR ? S_SIZE_LF : S_ERROR;
      case S_EXT_QUOTED:
        // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text (RFC 9110 §5.6.4)
        if (c === 0x22) return S_EXT_QUOTED_END;
        if (c === 0x5c) return S_EXT_QUOTED_ESCAPE;
        return VALUE[c] !== 0 ? S_EXT_QUOTED : S_ERROR;
      case S_EXT_QUOTED_ESCAPE:
        return VALUE[c] !== 0 ? S_EXT_QUOTED : S_ERROR;
      case S_EXT_QUOTED_END:
        return c === 0x3b ? S_EXT_NAME_START : c === CR ? S_SIZE_LF : S_ERROR;
      default:
        return S_ERROR;
    }
  }

  /** Consumes byte `c` of the trailer section, updating `this.state`; returns an error index or -1. */
  private trailerByte(c: number, state: number): number {
    switch (state) {
      case S_TRAILER_START:
        if (TCHAR[c] === 1) {
          if (++this.trailerCount > this.maxTrailers) return E_TOO_MANY_TRAILERS;
          this.nameLength = 1;
          this.nameMatch = FORBIDDEN_MATCH[c];
          this.state = S_TRAILER_NAME;
          return -1;
        }
        if (c === CR) {
          this.state = S_END_LF;
          return -1;
        }
        return c === SP || c === HTAB ? E_TRAILER_FOLD : E_TRAILER;
      case S_TRAILER_NAME:
        if (TCHAR[c] === 1) {
          const i = this.nameLength++;
          this.nameMatch = i < FORBIDDEN_MAX_LEN ? this.nameMatch & FORBIDDEN_MATCH[i * 256 + c] : 0;
          return -1;
        }
        if (c === 0x3a) {
          const n = this.nameLength;
          if (n <= FORBIDDEN_MAX_LEN && (this.nameMatch & FORBIDDEN_BY_LENGTH[n]) !== 0) return E_FORBIDDEN_TRAILER;
          this.state = S_TRAILER_VALUE;
          return -1;
        }
        return E_TRAILER;
      case S_TRAILER_VALUE:
        if (VALUE[c] !== 0) return -1;
        if (c === CR) {
          this.state = S_TRAILER_LF;
          return -1;
        }
        return E_TRAILER;
      case S_TRAILER_LF:
        if (c !== LF) return E_TRAILER;
        this.state = S_TRAILER_START;
        return -1;
      default:
        // S_END_LF
        if (c !== LF) return E_LINE_END;
        this.state = S_DONE;
        return -1;
    }
  }
}
