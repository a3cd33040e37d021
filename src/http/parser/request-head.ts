/**
 * Strict, incremental parsing of HTTP/1.1 request heads (RFC 9110, RFC 9112).
 *
 * @module
 */

import { latin1, SCHEME } from './chars.ts';
import {
  beginConnectionOptions,
  CONN_CLOSE,
  CONN_INVALID,
  CONN_KEEP_ALIVE,
  CONN_UPGRADE,
  type ConnectionOptions,
  classifyTransferEncoding,
  connectionOptions,
  equalsIgnoringCase,
  F_CONNECTION,
  F_CONTENT_LENGTH,
  F_EXPECT,
  F_HOST,
  F_TRANSFER_ENCODING,
  F_UPGRADE,
  fieldKind,
  framingOwsHasTab,
  isChunkedOnly,
  isExpectContinue,
  isValidAuthority,
  parseConnection,
  parseContentLength,
  TE_CHUNKED_TWICE,
  TE_NOT_CHUNKED_FINAL,
  TE_OTHER_CODINGS,
} from './framing.ts';
import {
  FIELD_SLOTS,
  type HeadProgress,
  type HeadScanState,
  PH_LEADING,
  SCAN,
  SCAN_DONE,
  SCAN_INCOMPLETE,
  scanHead,
} from './head-scanner.ts';
import { HttpParseError } from './http-parse-error.ts';
import { DEFAULT_HTTP_LIMITS, type HttpLimits } from './limits.ts';

/** Forms of request-target (RFC 9112 §3.2). */
export type TargetForm = 'origin' | 'absolute' | 'authority' | 'asterisk';

/** Shared, frozen empty list for heads without a Connection field: no allocation per request. */
const NO_TOKENS: readonly string[] = Object.freeze([]);

/**
 * A parsed, validated request head; the `ok` result of {@link parseRequestHead}. Every field is set in the
 * constructor so all heads share one hidden class (the engine's property reads stay monomorphic).
 */
export class RequestHead {
  /** Discriminant of the parse results. */
  readonly kind: 'ok';
  /**
   * Bytes from `start` through the CRLF CRLF that ends the head, ignored leading empty lines included. The
   * body, or the next pipelined request, begins at `start + consumed`.
   */
  consumed: number;
  /** The method, case preserved (methods are case-sensitive). Common methods are constant strings. */
  method: string;
  /** The request-target exactly as sent. */
  target: string;
  /** Which form the target has; `authority` only with CONNECT, `asterisk` only with OPTIONS. */
  targetForm: TargetForm;
  /**
   * Index in `target` where path and query begin: 0 for origin-form, after the authority for absolute-form
   * (equal to `target.length`, or at a `?`, when the path is empty: forward `/` then), -1 for the
   * authority and asterisk forms.
   */
  pathOffset: number;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1 (other versions are rejected with 505). */
  versionMinor: number;
  /** Field lines in order as `[name0, value0, name1, value1, ...]`: names as sent, values without OWS. */
  headers: string[];
  /**
   * The head as sent, from the request line through the CRLF of the last field line (without the
   * empty line that ends the head): the engine forwards runs of kept field lines as slices of it.
   */
  text: string;
  /** Per field line: where it starts in `text`, and its kind (the F_* constants of framing.ts). */
  fieldLines: number[];
  /** The Content-Length, or -1 when there is none (then the body is chunked, or empty). */
  contentLength: number;
  /** Whether the body is chunked (Transfer-Encoding is exactly `chunked`; feed a ChunkedScanner). */
  chunked: boolean;
  /**
   * Whether the client lets the connection stay open after this exchange: HTTP/1.1 without `close`, or
   * HTTP/1.0 with `keep-alive` and without `close` (RFC 9112 §9.3).
   */
  keepAlive: boolean;
  /** Whether the client asks for a protocol upgrade: `upgrade` in Connection and an Upgrade field. */
  upgrade: boolean;
  /** Whether the request carries `Expect: 100-continue` (HTTP/1.1 only; ignored in 1.0, RFC 9110 §10.1.1). */
  expectContinue: boolean;
  /** The Host field value, or null when absent (allowed in HTTP/1.0 only). */
  host: string | null;
  /**
   * The Connection options, lowercased, in order (`close`, `keep-alive`, `upgrade` are constant strings).
   * The engine removes these fields and the hop-by-hop ones before forwarding. Shared and frozen when empty
   * or one of those three alone.
   */
  connectionTokens: readonly string[];

  /**
   * @param fieldCount number of field lines: `headers` and `fieldLines` are made at their final
   * size and filled in place, not grown by pushes (which start at 16 slots each)
   */
  constructor(fieldCount: number) {
    this.kind = 'ok';
    this.consumed = 0;
    this.method = '';
    this.target = '';
    this.targetForm = 'origin';
    this.pathOffset = 0;
    this.versionMinor = 1;
    this.headers = new Array(2 * fieldCount);
    this.text = '';
    this.fieldLines = new Array(2 * fieldCount);
    this.contentLength = -1;
    this.chunked = false;
    this.keepAlive = true;
    this.upgrade = false;
    this.expectContinue = false;
    this.host = null;
    this.connectionTokens = NO_TOKENS;
  }
}

/** What {@link parseRequestHead} returns; switch on `kind`. */
export type RequestHeadResult = RequestHead | HeadProgress | HttpParseError;

const ERR_CL_AND_TE = new HttpParseError('SY_HTTP_BAD_FRAMING', 'both Content-Length and Transfer-Encoding');
const ERR_CL_REPEATED = new HttpParseError('SY_HTTP_BAD_FRAMING', 'more than one Content-Length field');
const ERR_FRAMING_TAB = new HttpParseError(
  'SY_HTTP_BAD_FRAMING',
  'HTAB around a Content-Length or Transfer-Encoding value',
);
const ERR_CL_INVALID = new HttpParseError('SY_HTTP_BAD_FRAMING', 'Content-Length is not 1 to 15 digits');
const ERR_TE_HTTP10 = new HttpParseError('SY_HTTP_BAD_FRAMING', 'Transfer-Encoding in an HTTP/1.0 request');
const ERR_TE_NOT_FINAL = new HttpParseError('SY_HTTP_BAD_FRAMING', 'final transfer coding is not chunked');
const ERR_TE_TWICE = new HttpParseError('SY_HTTP_BAD_FRAMING', 'chunked applied more than once');
const ERR_TE_MALFORMED = new HttpParseError('SY_HTTP_BAD_FRAMING', 'malformed Transfer-Encoding');
const ERR_TE_CODING = new HttpParseError(
  'SY_HTTP_UNSUPPORTED_TRANSFER_CODING',
  'only Transfer-Encoding: chunked is supported',
);
const ERR_CONNECTION = new HttpParseError('SY_HTTP_BAD_HEADER', 'Connection is not a list of tokens');
const ERR_HOST_MISSING = new HttpParseError('SY_HTTP_BAD_HOST', 'HTTP/1.1 request without Host');
const ERR_HOST_REPEATED = new HttpParseError('SY_HTTP_BAD_HOST', 'more than one Host field');
const ERR_HOST_INVALID = new HttpParseError('SY_HTTP_BAD_HOST', 'Host is not host[:port]');
const ERR_HOST_MISMATCH = new HttpParseError('SY_HTTP_BAD_HOST', 'Host differs from the request-target authority');
const ERR_ASTERISK = new HttpParseError('SY_HTTP_BAD_TARGET', 'asterisk-form is only allowed with OPTIONS');
const ERR_CONNECT_TARGET = new HttpParseError('SY_HTTP_BAD_TARGET', 'CONNECT needs an authority-form host:port');
const ERR_ABSOLUTE = new HttpParseError('SY_HTTP_BAD_TARGET', 'not origin-form or an http(s) absolute-form');
const ERR_AUTHORITY = new HttpParseError('SY_HTTP_BAD_TARGET', 'invalid authority in request target');

/**
 * Parses the request head at the start of `buf[start, end)`.
 *
 * Call it with everything buffered so far, from the first byte of the request; bytes after the head (body,
 * pipelined requests) are never looked at. Every byte is checked in order, and a verdict depends only on
 * the bytes up to the one that decides it, so a head delivered in pieces gets the same result as the whole:
 *
 * - `kind: 'incomplete'` ({@link HeadProgress}): no CRLF CRLF yet and nothing wrong so far. Call again
 *   when more bytes arrive; pass this result as `resume` to skip rescanning (optional).
 * - `kind: 'ok'` ({@link RequestHead}): valid; `consumed` is the head's length.
 * - `kind: 'error'` ({@link HttpParseError}): answer `status`, then close. Limits are enforced as soon as
 *   they are exceeded, without waiting for the rest of the head: 431 once `maxHeaderBytes` bytes hold no
 *   complete head or field line `maxHeaders + 1` begins, 414 once the target passes `maxUriBytes`.
 *
 * Choices (strict: reject rather than guess, RFC 9112 §11.2):
 * - Empty lines (CRLF) before the request line are skipped (RFC 9112 §2.2) and counted in `consumed`
 *   and in `maxHeaderBytes`. Every line must end in CRLF: a bare LF or a CR without LF is a 400, also in
 *   the request line and the leading empty lines.
 * - The request line is exactly `method SP target SP HTTP/1.x CRLF`, single spaces. The method is any
 *   token (RFC 9110 §9.1) up to 32 bytes, longer is 501. `HTTP/D.D` other than 1.0 and 1.1 is 505; any
 *   other version text is 400.
 * - Target bytes are visible ASCII except `#`; raw bytes >= 0x80 are rejected. Origin-form (`/...`),
 *   absolute-form with scheme http or https (for proxies; no userinfo, non-empty host, Host must equal the
 *   authority ignoring case), authority-form `host:port` only with CONNECT (Host must equal it), `*` only
 *   with OPTIONS.
 * - Field names are tokens followed directly by `:`; values are VCHAR, obs-text, SP and HTAB only (NUL, CR,
 *   LF, other controls and DEL are rejected); line folding is rejected.
 * - HTTP/1.1 requires exactly one Host; HTTP/1.0 allows none or one. Host must be a non-empty
 *   `host[:port]` (port 1 to 5 digits, at most 65535).
 * - Framing: Content-Length must be 1 to 15 digits and appear once (identical repeats are rejected too,
 *   though RFC 9110 §8.6 allows accepting them). Transfer-Encoding must be exactly `chunked` (one field,
 *   any case): with Content-Length, in HTTP/1.0, with a final coding other than chunked, with chunked
 *   twice, or malformed it is 400; a well-formed list of other codings ending in chunked (`gzip, chunked`)
 *   is 501 (RFC 9112 §6.1), since upstreams may not implement them.
 * - Connection must be a list of tokens.
 *
 * @param buf bytes received from the client
 * @param start offset of the first byte of this request in `buf`
 * @param end offset after the last buffered byte
 * @param limits build once with `httpLimits()`; pass the same object on every call for one head
 * @param resume the previous `incomplete` result for this head, or null to scan from `start`
 */
export function parseRequestHead(
  buf: Buffer,
  start: number,
  end: number,
  limits: HttpLimits = DEFAULT_HTTP_LIMITS,
  resume: HeadProgress | null = null,
): RequestHeadResult {
  const st = SCAN;
  st.begin(start, end, PH_LEADING, resume, limits.maxHeaders);
  let r = scanHead(buf, start, end, limits, st, false);
  if (r === SCAN_INCOMPLETE) return st.progress(start, false);
  if (r !== SCAN_DONE) return st.error!;
  if (!st.fresh) {
    // A resumed scan has validated the tail but not recorded the earlier fields' offsets: scan the
    // (now complete, known valid) head once more from the start, which records them all.
    st.begin(start, end, PH_LEADING, null, limits.maxHeaders);
    r = scanHead(buf, start, end, limits, st, false);
  }
  return buildRequest(buf, start, st);
}

/** Interned method strings: no allocation for the methods nearly every request uses. */
function methodString(buf: Buffer, start: number, end: number, text: string): string {
  const c0 = buf[start];
  switch (end - start) {
    case 3:
      if (c0 === 0x47 && buf[start + 1] === 0x45 && buf[start + 2] === 0x54) return 'GET';
      if (c0 === 0x50 && buf[start + 1] === 0x55 && buf[start + 2] === 0x54) return 'PUT';
      break;
    case 4:
      if (c0 === 0x50 && buf[start + 1] === 0x4f && buf[start + 2] === 0x53 && buf[start + 3] === 0x54) return 'POST';
      if (c0 === 0x48 && buf[start + 1] === 0x45 && buf[start + 2] === 0x41 && buf[start + 3] === 0x44) return 'HEAD';
      break;
  }
  const m = text.slice(0, end - start);
  switch (m) {
    case 'DELETE':
      return 'DELETE';
    case 'OPTIONS':
      return 'OPTIONS';
    case 'PATCH':
      return 'PATCH';
    case 'CONNECT':
      return 'CONNECT';
    case 'TRACE':
      return 'TRACE';
    default:
      return m;
  }
}

function buildRequest(buf: Buffer, start: number, st: HeadScanState): RequestHead | HttpParseError {
  const head = new RequestHead(st.fieldCount);
  const base = st.lineStart;
  const headEnd = st.headEnd;
  // One latin1 decode of the whole head, then substrings: measured 4x faster than one latin1Slice per
  // name and value on a 9-field browser head (0.7 us vs 3.4 us; the "decode:" lines of
  // bench/micro/http-parser.ts).
  const text = latin1(buf, base, headEnd - 2);
  head.text = text;
  head.consumed = headEnd - start;
  head.method = methodString(buf, base, st.methodEnd, text);
  head.target = text.slice(st.targetStart - base, st.targetEnd - base);
  head.versionMinor = st.versionMinor;

  const fields = st.fields;
  const n = st.fieldCount;
  const headers = head.headers;
  const lines = head.fieldLines;
  let hostStart = -1;
  let hostEnd = -1;
  let hostCount = 0;
  let clCount = 0;
  let clValue = -1;
  let teStart = -1;
  let teEnd = -1;
  let teCount = 0;
  let connFlags = 0;
  let hasUpgrade = false;
  let expectContinue = false;
  let tokens: ConnectionOptions | null = null;

  for (let i = 0; i < n; i++) {
    const f = i * FIELD_SLOTS;
    const ns = fields[f];
    const ne = fields[f + 1];
    const vs = fields[f + 2];
    const ve = fields[f + 3];
    headers[2 * i] = text.slice(ns - base, ne - base);
    headers[2 * i + 1] = text.slice(vs - base, ve - base);
    const kind = fieldKind(buf, ns, ne);
    lines[2 * i] = ns - base;
    lines[2 * i + 1] = kind;
    switch (kind) {
      case F_HOST:
        hostCount++;
        hostStart = vs;
        hostEnd = ve;
        break;
      case F_CONTENT_LENGTH:
        clCount++;
        clValue = parseContentLength(buf, vs, ve);
        if (clValue < 0) return ERR_CL_INVALID;
        if (framingOwsHasTab(buf, ne, vs, ve)) return ERR_FRAMING_TAB;
        break;
      case F_TRANSFER_ENCODING:
        teCount++;
        if (framingOwsHasTab(buf, ne, vs, ve)) return ERR_FRAMING_TAB;
        teStart = vs;
        teEnd = ve;
        break;
      case F_CONNECTION: {
        if (tokens === null) tokens = beginConnectionOptions();
        const flags = parseConnection(buf, vs, ve, text, base, tokens);
        if (flags === CONN_INVALID) return ERR_CONNECTION;
        connFlags |= flags;
        break;
      }
      case F_UPGRADE:
        hasUpgrade = true;
        break;
      case F_EXPECT:
        if (isExpectContinue(buf, vs, ve)) expectContinue = true;
        break;
    }
  }

  // Framing (RFC 9112 §6): reject every combination a downstream or upstream could read differently.
  if (clCount > 1) return ERR_CL_REPEATED;
  if (teCount > 0) {
    if (clCount > 0) return ERR_CL_AND_TE;
    if (head.versionMinor === 0) return ERR_TE_HTTP10;
    if (teCount > 1 || !isChunkedOnly(buf, teStart, teEnd)) return transferEncodingError(headers);
    head.chunked = true;
  }
  head.contentLength = clValue;

  // Host (RFC 9112 §3.2, RFC 9110 §7.2).
  if (hostCount > 1) return ERR_HOST_REPEATED;
  if (hostCount === 1) {
    if (!isValidAuthority(buf, hostStart, hostEnd, false)) return ERR_HOST_INVALID;
    head.host = text.slice(hostStart - base, hostEnd - base);
  } else if (head.versionMinor === 1) {
    return ERR_HOST_MISSING;
  }

  const targetError = classifyTarget(buf, st.targetStart, st.targetEnd, head, hostStart, hostEnd);
  if (targetError !== null) return targetError;

  if (tokens !== null) head.connectionTokens = connectionOptions(tokens);
  head.keepAlive = (connFlags & CONN_CLOSE) === 0 && (head.versionMinor === 1 || (connFlags & CONN_KEEP_ALIVE) !== 0);
  head.upgrade = hasUpgrade && (connFlags & CONN_UPGRADE) !== 0;
  head.expectContinue = expectContinue && head.versionMinor === 1;
  return head;
}

/** The error for Transfer-Encoding values that are not one plain `chunked` (rare path). */
function transferEncodingError(headers: string[]): HttpParseError {
  const values: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i].toLowerCase() === 'transfer-encoding') values.push(headers[i + 1]);
  }
  switch (classifyTransferEncoding(values)) {
    case TE_NOT_CHUNKED_FINAL:
      return ERR_TE_NOT_FINAL;
    case TE_CHUNKED_TWICE:
      return ERR_TE_TWICE;
    case TE_OTHER_CODINGS:
      return ERR_TE_CODING;
    default:
      return ERR_TE_MALFORMED;
  }
}

/**
 * Sets `targetForm` and `pathOffset`, checking the form against the method and, for absolute and authority
 * forms, the authority against Host. Returns null when the target is acceptable.
 */
function classifyTarget(
  buf: Buffer,
  ts: number,
  te: number,
  head: RequestHead,
  hostStart: number,
  hostEnd: number,
): HttpParseError | null {
  const c0 = buf[ts];
  if (head.method === 'CONNECT') {
    // RFC 9112 §3.2.3: CONNECT takes authority-form, and only CONNECT does.
    if (!isValidAuthority(buf, ts, te, true)) return ERR_CONNECT_TARGET;
    if (hostStart >= 0 && !equalsIgnoringCase(buf, ts, te, hostStart, hostEnd)) return ERR_HOST_MISMATCH;
    head.targetForm = 'authority';
    head.pathOffset = -1;
    return null;
  }
  if (c0 === 0x2f) {
    head.targetForm = 'origin';
    head.pathOffset = 0;
    return null;
  }
  if (c0 === 0x2a) {
    if (te - ts !== 1 || head.method !== 'OPTIONS') return ERR_ASTERISK;
    head.targetForm = 'asterisk';
    head.pathOffset = -1;
    return null;
  }
  // absolute-form (RFC 9112 §3.2.2): scheme "://" authority path-abempty [ "?" query ]; only http(s), the
  // schemes a proxy can forward.
  let p = ts;
  while (p < te && SCHEME[buf[p]] === 1) p++;
  const schemeLen = p - ts;
  const lower0 = c0 | 0x20;
  const isHttp =
    (schemeLen === 4 || (schemeLen === 5 && (buf[ts + 4] | 0x20) === 0x73)) &&
    lower0 === 0x68 &&
    (buf[ts + 1] | 0x20) === 0x74 &&
    (buf[ts + 2] | 0x20) === 0x74 &&
    (buf[ts + 3] | 0x20) === 0x70;
  if (!isHttp || te - p < 3 || buf[p] !== 0x3a || buf[p + 1] !== 0x2f || buf[p + 2] !== 0x2f) return ERR_ABSOLUTE;
  const as = p + 3;
  let ae = as;
  while (ae < te && buf[ae] !== 0x2f && buf[ae] !== 0x3f) ae++;
  if (!isValidAuthority(buf, as, ae, false)) return ERR_AUTHORITY;
  // RFC 9112 §3.2.2 says to ignore Host here; a mismatch means two parties may route differently, so
  // we refuse it instead.
  if (hostStart >= 0 && !equalsIgnoringCase(buf, as, ae, hostStart, hostEnd)) return ERR_HOST_MISMATCH;
  head.targetForm = 'absolute';
  head.pathOffset = ae - ts;
  return null;
}
