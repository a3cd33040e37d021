/**
 * The validating byte scanner shared by {@link parseRequestHead} and {@link parseResponseHead}.
 *
 * It checks every byte of a head against RFC 9112 syntax and the limits, and records where the start line
 * and each field line's name and value lie; it creates no strings. Each check depends only on the bytes up
 * to the one being checked, so a head split anywhere yields the same verdict as the whole head, and a scan
 * can stop at the end of the buffered bytes and resume from a small {@link HeadProgress}.
 *
 * Internal to src/http/parser: the engine uses the parse functions.
 *
 * @module
 */

import { COLON, CR, HTAB, LF, SP, TARGET, TCHAR, V_OWS, VALUE } from './chars.ts';
import { HttpParseError } from './http-parse-error.ts';
import type { HttpLimits } from './limits.ts';

/** Longest method accepted; longer ones get 501 (RFC 9112 §3: longer than any method we implement). */
export const MAX_METHOD_BYTES = 32;

// Scan phases. Numbers, not strings: the scan loop switches on them once per element, not per byte.
/** Before the request line: empty lines (CRLF) are skipped, RFC 9112 §2.2. */
export const PH_LEADING = 0;
const PH_LEADING_LF = 1;
const PH_METHOD = 2;
const PH_TARGET = 3;
const PH_VERSION = 4;
const PH_LINE_LF = 5;
/** Start of a status line. */
export const PH_STATUS_VERSION = 6;
const PH_STATUS_CODE = 7;
const PH_REASON = 8;
const PH_FIELD_START = 9;
const PH_NAME = 10;
const PH_VALUE_OWS = 11;
const PH_VALUE = 12;
const PH_FIELD_LF = 13;
const PH_END_LF = 14;

/** {@link scanHead} result: more bytes are needed. */
export const SCAN_INCOMPLETE = 0;
/** {@link scanHead} result: the head ends at {@link HeadScanState.headEnd}. */
export const SCAN_DONE = 1;
/** {@link scanHead} result: rejected, see {@link HeadScanState.error}. */
export const SCAN_ERROR = 2;

/** Slots per field line in {@link HeadScanState.fields}: name start, name end (the colon), value start, value end. */
export const FIELD_SLOTS = 4;

/**
 * An unfinished head: what the parse functions return while the CRLF CRLF has not arrived and nothing is
 * wrong yet. Pass it back as `resume` with the same bytes plus more (same `start`, same `limits`) and the
 * scan continues where it stopped instead of starting over, so a head that trickles in byte by byte costs
 * O(n), not O(n²): the 457-byte head of bench/micro/http-parser.ts delivered one byte per read costs about
 * 30 us resumed against 480 us rescanned. Passing it is optional: parsing from scratch gives the same result.
 */
export class HeadProgress {
  /** Discriminant of the parse results. */
  readonly kind: 'incomplete';
  /** Whether this is the progress of a response head (it cannot resume a request head, and vice versa). */
  readonly response: boolean;
  /** Bytes after `start` already scanned. */
  readonly offset: number;
  /** Scanner phase at `offset`. */
  readonly phase: number;
  /** Start of the element being scanned (method, target, version, status code), relative to `start`. */
  readonly tokenOffset: number;
  /** Field lines begun so far. */
  readonly fieldCount: number;

  constructor(response: boolean, offset: number, phase: number, tokenOffset: number, fieldCount: number) {
    this.kind = 'incomplete';
    this.response = response;
    this.offset = offset;
    this.phase = phase;
    this.tokenOffset = tokenOffset;
    this.fieldCount = fieldCount;
  }
}

/**
 * Scanner state and output. One instance is shared by all parses (module scope): parsing is synchronous and
 * never re-entered, and reusing it keeps the hot path free of allocations except the strings it must return.
 */
export class HeadScanState {
  phase: number;
  pos: number;
  tokenStart: number;
  fieldCount: number;
  /** Whether this scan started at `start` (so `fields` describes every field line). */
  fresh: boolean;
  /** First byte of the start line (after ignored empty lines). */
  lineStart: number;
  methodEnd: number;
  targetStart: number;
  targetEnd: number;
  versionMinor: number;
  statusStart: number;
  reasonStart: number;
  reasonEnd: number;
  /** One past the LF of the final CRLF CRLF. */
  headEnd: number;
  error: HttpParseError | null;
  /** {@link FIELD_SLOTS} offsets per field line, absolute in the buffer. */
  fields: Int32Array;

  constructor() {
    this.phase = PH_LEADING;
    this.pos = 0;
    this.tokenStart = 0;
    this.fieldCount = 0;
    this.fresh = true;
    this.lineStart = 0;
    this.methodEnd = 0;
    this.targetStart = 0;
    this.targetEnd = 0;
    this.versionMinor = 1;
    this.statusStart = 0;
    this.reasonStart = 0;
    this.reasonEnd = 0;
    this.headEnd = 0;
    this.error = null;
    this.fields = new Int32Array(FIELD_SLOTS * 128);
  }

  /** Prepares a scan from `start` in `phase`, or from `resume` when it is a progress of the same kind. */
  begin(start: number, end: number, phase: number, resume: HeadProgress | null, maxHeaders: number): void {
    if (this.fields.length < maxHeaders * FIELD_SLOTS) this.fields = new Int32Array(maxHeaders * FIELD_SLOTS);
    this.error = null;
    if (resume !== null && resume.response === (phase === PH_STATUS_VERSION) && resume.offset <= end - start) {
      this.fresh = false;
      this.phase = resume.phase;
      this.pos = start + resume.offset;
      this.tokenStart = start + resume.tokenOffset;
      this.fieldCount = resume.fieldCount;
      return;
    }
    this.fresh = true;
    this.phase = phase;
    this.pos = start;
    this.tokenStart = start;
    this.fieldCount = 0;
    this.lineStart = start;
  }

  /** The progress to hand back to the caller after {@link SCAN_INCOMPLETE}. */
  progress(start: number, response: boolean): HeadProgress {
    return new HeadProgress(response, this.pos - start, this.phase, this.tokenStart - start, this.fieldCount);
  }
}

/** The scanner state shared by all request and response parses. */
export const SCAN = new HeadScanState();

// Syntax failures, as indexes into the request and response tables below.
const E_BARE_LF = 0;
const E_BARE_CR = 1;
const E_REQUEST_LINE = 2;
const E_METHOD_CHAR = 3;
const E_METHOD_LONG = 4;
const E_TARGET_CHAR = 5;
const E_URI_LONG = 6;
const E_VERSION = 7;
const E_VERSION_UNSUPPORTED = 8;
const E_STATUS = 9;
const E_REASON_CHAR = 10;
const E_OBS_FOLD = 11;
const E_EMPTY_NAME = 12;
const E_NAME_CHAR = 13;
const E_SPACE_BEFORE_COLON = 14;
const E_NO_COLON = 15;
const E_VALUE_CHAR = 16;
const E_TOO_MANY = 17;
const E_TOO_LARGE = 18;

const REQUEST_ERRORS: readonly HttpParseError[] = [
  new HttpParseError('SY_HTTP_BAD_LINE_ENDING', 'LF without CR (bare LF)'),
  new HttpParseError('SY_HTTP_BAD_LINE_ENDING', 'CR not followed by LF (bare CR)'),
  new HttpParseError('SY_HTTP_BAD_REQUEST_LINE', 'expected method SP request-target SP HTTP-version CRLF'),
  new HttpParseError('SY_HTTP_BAD_REQUEST_LINE', 'invalid character in method'),
  new HttpParseError('SY_HTTP_METHOD_NOT_IMPLEMENTED', `method longer than ${MAX_METHOD_BYTES} bytes`),
  new HttpParseError('SY_HTTP_BAD_TARGET', 'invalid character in request target'),
  new HttpParseError('SY_HTTP_URI_TOO_LONG', 'request target longer than maxUriBytes'),
  new HttpParseError('SY_HTTP_BAD_REQUEST_LINE', 'malformed HTTP version'),
  new HttpParseError('SY_HTTP_VERSION_NOT_SUPPORTED', 'only HTTP/1.0 and HTTP/1.1 are supported'),
  new HttpParseError('SY_HTTP_BAD_REQUEST_LINE', 'malformed status code'),
  new HttpParseError('SY_HTTP_BAD_REQUEST_LINE', 'invalid character in reason phrase'),
  new HttpParseError('SY_HTTP_BAD_HEADER', 'line folding (obs-fold) or whitespace before a field name'),
  new HttpParseError('SY_HTTP_BAD_HEADER', 'empty field name'),
  new HttpParseError('SY_HTTP_BAD_HEADER', 'invalid character in field name'),
  new HttpParseError('SY_HTTP_BAD_HEADER', 'whitespace between field name and colon'),
  new HttpParseError('SY_HTTP_BAD_HEADER', 'field line without a colon'),
  new HttpParseError('SY_HTTP_BAD_HEADER', 'NUL, CR, LF or control character in field value'),
  new HttpParseError('SY_HTTP_TOO_MANY_HEADERS', 'more than maxHeaders field lines'),
  new HttpParseError('SY_HTTP_HEADERS_TOO_LARGE', 'head longer than maxHeaderBytes'),
];

const RESPONSE_ERRORS: readonly HttpParseError[] = REQUEST_ERRORS.map((e, i) => {
  if (i === E_TOO_MANY || i === E_TOO_LARGE) return new HttpParseError('SY_UPS_RESPONSE_HEAD_TOO_LARGE', e.reason);
  if (i === E_VERSION_UNSUPPORTED)
    return new HttpParseError('SY_UPS_BAD_RESPONSE_HEAD', 'HTTP version is not 1.0 or 1.1');
  if (i === E_VERSION) return new HttpParseError('SY_UPS_BAD_RESPONSE_HEAD', 'malformed status line version');
  return new HttpParseError('SY_UPS_BAD_RESPONSE_HEAD', e.reason);
});

/** `HTTP/` as bytes, for the per-byte version check. */
const HTTP_SLASH = [0x48, 0x54, 0x54, 0x50, 0x2f];

/**
 * Whether byte `c` may stand at index `i` (0-7) of an `HTTP/D.D` version. Checked byte by byte, not when
 * the version is complete, so a split never changes which byte fails.
 */
function versionByteOk(c: number, i: number): boolean {
  if (i < 5) return c === HTTP_SLASH[i];
  if (i === 6) return c === 0x2e;
  return c >= 0x30 && c <= 0x39;
}

/**
 * Scans `buf` from `st.pos` (set by {@link HeadScanState.begin}) up to `end`, or up to the head size limit.
 *
 * @returns {@link SCAN_DONE}, {@link SCAN_INCOMPLETE} or {@link SCAN_ERROR}; details are in `st`.
 */
export function scanHead(
  buf: Uint8Array,
  start: number,
  end: number,
  limits: HttpLimits,
  st: HeadScanState,
  response: boolean,
): number {
  const maxEnd = start + limits.maxHeaderBytes;
  // Bytes past the size limit are never looked at: a head that is not complete within it is rejected
  // whatever follows, which keeps the verdict independent of how much was read.
  const stop = Math.min(end, maxEnd);
  const fields = st.fields;
  const maxHeaders = limits.maxHeaders;
  let p = st.pos;
  let phase = st.phase;
  let tok = st.tokenStart;
  let count = st.fieldCount;
  let err = -1;
  let c = 0;

  scan: for (;;) {
    switch (phase) {
      case PH_LEADING:
        if (p >= stop) break scan;
        c = buf[p];
        if (c === CR) {
          p++;
          phase = PH_LEADING_LF;
          continue;
        }
        if (c === LF) {
          err = E_BARE_LF;
          break scan;
        }
        st.lineStart = p;
        tok = p;
        phase = PH_METHOD;
        continue;

      case PH_LEADING_LF:
        if (p >= stop) break scan;
        if (buf[p] !== LF) {
          err = E_BARE_CR;
          break scan;
        }
        p++;
        phase = PH_LEADING;
        continue;

      case PH_METHOD: {
        const limit = tok + MAX_METHOD_BYTES + 1;
        const e = Math.min(stop, limit);
        while (p < e && TCHAR[buf[p]] === 1) p++;
        if (p - tok > MAX_METHOD_BYTES) {
          err = E_METHOD_LONG;
          break scan;
        }
        if (p >= stop) break scan;
        c = buf[p];
        if (c !== SP) {
          err = c === CR || c === LF || c === HTAB || p === tok ? E_REQUEST_LINE : E_METHOD_CHAR;
          break scan;
        }
        st.methodEnd = p;
        p++;
        tok = p;
        phase = PH_TARGET;
        continue;
      }

      case PH_TARGET: {
        const limit = tok + limits.maxUriBytes + 1;
        const e = Math.min(stop, limit);
        while (p < e && TARGET[buf[p]] === 1) p++;
        if (p - tok > limits.maxUriBytes) {
          err = E_URI_LONG;
          break scan;
        }
        if (p >= stop) break scan;
        c = buf[p];
        if (c !== SP || p === tok) {
          err = c === CR || c === LF || c === SP || c === HTAB ? E_REQUEST_LINE : E_TARGET_CHAR;
          break scan;
        }
        st.targetStart = tok;
        st.targetEnd = p;
        p++;
        tok = p;
        phase = PH_VERSION;
        continue;
      }

      case PH_VERSION:
        while (p < stop) {
          c = buf[p];
          const i = p - tok;
          if (i < 8) {
            if (!versionByteOk(c, i)) {
              err = E_VERSION;
              break scan;
            }
            p++;
            continue;
          }
          if (c !== CR) {
            err = c === LF ? E_BARE_LF : E_VERSION;
            break scan;
          }
          if (buf[tok + 5] !== 0x31 || buf[tok + 7] > 0x31) {
            err = E_VERSION_UNSUPPORTED;
            break scan;
          }
          st.versionMinor = buf[tok + 7] - 0x30;
          p++;
          phase = PH_LINE_LF;
          continue scan;
        }
        break scan;

      case PH_STATUS_VERSION:
        while (p < stop) {
          c = buf[p];
          const i = p - tok;
          if (i < 8) {
            if (!versionByteOk(c, i)) {
              err = E_VERSION;
              break scan;
            }
            p++;
            continue;
          }
          if (c !== SP) {
            err = E_VERSION;
            break scan;
          }
          if (buf[tok + 5] !== 0x31 || buf[tok + 7] > 0x31) {
            err = E_VERSION_UNSUPPORTED;
            break scan;
          }
          st.versionMinor = buf[tok + 7] - 0x30;
          p++;
          tok = p;
          st.statusStart = p;
          phase = PH_STATUS_CODE;
          continue scan;
        }
        break scan;

      case PH_STATUS_CODE:
        // status-code = 3DIGIT, first digit 1-5; then SP and a reason, or CR at once (a missing reason's SP
        // is tolerated: the line is still unambiguous and common in the wild).
        while (p < stop) {
          c = buf[p];
          const i = p - tok;
          if (i < 3) {
            if (c < 0x30 || c > 0x39 || (i === 0 && (c < 0x31 || c > 0x35))) {
              err = E_STATUS;
              break scan;
            }
            p++;
            continue;
          }
          if (c === SP) {
            p++;
            st.reasonStart = p;
            phase = PH_REASON;
          } else if (c === CR) {
            st.reasonStart = p;
            st.reasonEnd = p;
            p++;
            phase = PH_LINE_LF;
          } else {
            err = c === LF ? E_BARE_LF : E_STATUS;
            break scan;
          }
          continue scan;
        }
        break scan;

      case PH_REASON:
        while (p < stop && VALUE[buf[p]] !== 0) p++;
        if (p >= stop) break scan;
        c = buf[p];
        if (c !== CR) {
          err = c === LF ? E_BARE_LF : E_REASON_CHAR;
          break scan;
        }
        st.reasonEnd = p;
        p++;
        phase = PH_LINE_LF;
        continue;

      case PH_LINE_LF:
      case PH_FIELD_LF:
        if (p >= stop) break scan;
        if (buf[p] !== LF) {
          err = E_BARE_CR;
          break scan;
        }
        p++;
        phase = PH_FIELD_START;
        continue;

      case PH_FIELD_START:
        // Whole field lines are scanned here in one go: the checks of PH_NAME through PH_FIELD_LF
        // without a phase dispatch per element. At the end of the bytes, or at any byte those phases
        // would reject, it hands over to the phase it is in, which decides as always. Measured with
        // bench/micro/http-parser.ts: about a third off scanning a six-field response head.
        for (;;) {
          if (p >= stop) break scan;
          c = buf[p];
          if (TCHAR[c] !== 1) break;
          if (count === maxHeaders) {
            err = E_TOO_MANY;
            break scan;
          }
          const f = count * FIELD_SLOTS;
          fields[f] = p;
          count++;
          p++;
          while (p < stop && TCHAR[buf[p]] === 1) p++;
          if (p >= stop || buf[p] !== COLON) {
            phase = PH_NAME;
            continue scan;
          }
          fields[f + 1] = p;
          p++;
          while (p < stop && VALUE[buf[p]] === V_OWS) p++;
          if (p >= stop) {
            phase = PH_VALUE_OWS;
            continue scan;
          }
          const valueStart = p;
          fields[f + 2] = p;
          while (p < stop && VALUE[buf[p]] !== 0) p++;
          if (p >= stop || buf[p] !== CR) {
            phase = PH_VALUE;
            continue scan;
          }
          let valueEnd = p;
          while (valueEnd > valueStart && VALUE[buf[valueEnd - 1]] === V_OWS) valueEnd--;
          fields[f + 3] = valueEnd;
          p++;
          if (p >= stop || buf[p] !== LF) {
            phase = PH_FIELD_LF;
            continue scan;
          }
          p++;
        }
        if (c === CR) {
          p++;
          phase = PH_END_LF;
          continue;
        }
        // RFC 9112 §5.2: obs-fold is rejected (a server MAY instead reject with 400; we always do).
        err = c === SP || c === HTAB ? E_OBS_FOLD : c === LF ? E_BARE_LF : c === COLON ? E_EMPTY_NAME : E_NAME_CHAR;
        break scan;

      case PH_NAME:
        while (p < stop && TCHAR[buf[p]] === 1) p++;
        if (p >= stop) break scan;
        c = buf[p];
        if (c !== COLON) {
          // RFC 9112 §5.1: whitespace between name and colon MUST be rejected with 400.
          err = c === SP || c === HTAB ? E_SPACE_BEFORE_COLON : c === CR || c === LF ? E_NO_COLON : E_NAME_CHAR;
          break scan;
        }
        fields[(count - 1) * FIELD_SLOTS + 1] = p;
        p++;
        phase = PH_VALUE_OWS;
        continue;

      case PH_VALUE_OWS: {
        while (p < stop && VALUE[buf[p]] === V_OWS) p++;
        if (p >= stop) break scan;
        const f = (count - 1) * FIELD_SLOTS;
        fields[f + 2] = p;
        phase = PH_VALUE;
        continue;
      }

      case PH_VALUE: {
        // One table test per byte; trailing OWS is trimmed once, backwards from the CR. Tracking the last
        // visible byte inside the loop costs a store per byte: scanning the 457-byte browser head of
        // bench/micro/http-parser.ts took 11-17% longer that way (interleaved A/B runs, loaded 2-core VM).
        while (p < stop && VALUE[buf[p]] !== 0) p++;
        if (p >= stop) break scan;
        c = buf[p];
        if (c !== CR) {
          err = c === LF ? E_BARE_LF : E_VALUE_CHAR;
          break scan;
        }
        const f = (count - 1) * FIELD_SLOTS;
        let valueEnd = p;
        while (valueEnd > fields[f + 2] && VALUE[buf[valueEnd - 1]] === V_OWS) valueEnd--;
        fields[f + 3] = valueEnd;
        p++;
        phase = PH_FIELD_LF;
        continue;
      }

      case PH_END_LF:
        if (p >= stop) break scan;
        if (buf[p] !== LF) {
          err = E_BARE_CR;
          break scan;
        }
        st.pos = p + 1;
        st.headEnd = p + 1;
        st.phase = phase;
        st.fieldCount = count;
        return SCAN_DONE;

      default:
        throw new Error(`head scanner: unknown phase ${phase}`);
    }
  }

  st.pos = p;
  st.phase = phase;
  st.tokenStart = tok;
  st.fieldCount = count;
  if (err === -1) {
    if (p < maxEnd) return SCAN_INCOMPLETE;
    err = E_TOO_LARGE;
  }
  st.error = response ? RESPONSE_ERRORS[err] : REQUEST_ERRORS[err];
  return SCAN_ERROR;
}
