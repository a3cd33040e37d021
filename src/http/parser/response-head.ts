/**
 * Strict, incremental parsing of HTTP/1.1 response heads from upstreams (RFC 9112 §4, §6.3).
 *
 * @module
 */

import { latin1, nameIs, V_OWS, VALUE } from './chars.ts';
import {
  beginConnectionOptions,
  CONN_CLOSE,
  CONN_INVALID,
  CONN_KEEP_ALIVE,
  type ConnectionOptions,
  connectionOptions,
  F_CONNECTION,
  F_CONTENT_LENGTH,
  F_TRANSFER_ENCODING,
  F_UPGRADE,
  fieldKind,
  framingOwsHasTab,
  isChunkedOnly,
  parseConnection,
  parseContentLength,
} from './framing.ts';
import {
  FIELD_SLOTS,
  type HeadProgress,
  type HeadScanState,
  PH_STATUS_VERSION,
  SCAN,
  SCAN_DONE,
  SCAN_INCOMPLETE,
  scanHead,
} from './head-scanner.ts';
import { HttpParseError } from './http-parse-error.ts';
import { DEFAULT_HTTP_LIMITS, type HttpLimits } from './limits.ts';

/**
 * How a response body is delimited (RFC 9112 §6.3):
 * - `none`: no body (HEAD request, 1xx, 204, 304); the next response starts at `consumed`.
 * - `length`: `contentLength` bytes follow.
 * - `chunked`: feed a ChunkedScanner.
 * - `close`: the body runs until the upstream closes the connection (then `keepAlive` is false).
 * - `tunnel`: after a 101, or a 2xx to CONNECT, the connection carries another protocol from `consumed` on.
 */
export type ResponseFraming = 'none' | 'length' | 'chunked' | 'close' | 'tunnel';

const NO_TOKENS: readonly string[] = Object.freeze([]);
const NO_OFFSETS: readonly number[] = Object.freeze([]);
/**
 * Numbers per field line in {@link ResponseHead.fieldOffsets}: where the line starts, and where its
 * name ends (the colon) times {@link KIND_SPAN} plus its kind. The value's offsets are not kept: the
 * engine forwards lines as bytes, and the rare reader of `headers` finds them again from the colon.
 * Five numbers per line (the scanner's four offsets and the kind) made this list the largest
 * object the engine allocated per response (sampling heap profile, docs/benchmarks.md).
 */
const FIELD_LINE_SLOTS = 2;
/** Kinds (framing.ts, `F_*`) are below this; name ends are stored multiplied by it. */
const KIND_SPAN = 16;

/** A parsed, validated response head; the `ok` result of {@link parseResponseHead}. Stable shape. */
export class ResponseHead {
  /** Discriminant of the parse results. */
  readonly kind: 'ok';
  /** Bytes from `start` through the CRLF CRLF that ends the head; the body begins at `start + consumed`. */
  consumed: number;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  versionMinor: number;
  /** Status code, 100-599. */
  status: number;
  /**
   * The buffer the head was parsed from, and where in it the head lies: the engine copies field lines
   * from here rather than re-serialising them. The engine reads it synchronously after the parse,
   * before that buffer can be reused; so must anything else that uses it (or {@link reason} and
   * {@link headers}, which are decoded from it on first use).
   */
  source: Buffer;
  /** Offset of the status line in `source`. */
  start: number;
  /** Offset of the first field line in `source` (just past the status line's CRLF). */
  fieldsStart: number;
  /** Offsets of the reason phrase in `source` (equal when there is none). */
  reasonStart: number;
  reasonEnd: number;
  /** Number of field lines. */
  fieldCount: number;
  /**
   * {@link FIELD_LINE_SLOTS} numbers per field line: its start (the name's first byte) as an offset
   * into `source`, then the name's end (the colon) times {@link KIND_SPAN} plus the name's kind
   * (framing.ts, `fieldKind`). Read it through the methods below.
   */
  fieldOffsets: readonly number[];
  /** How the body is delimited. */
  framing: ResponseFraming;
  /** The Content-Length, or -1 when there is none. Present on HEAD and 304 responses without a body. */
  contentLength: number;
  /** Whether Transfer-Encoding is `chunked` (the body is chunked when `framing` is `chunked`). */
  chunked: boolean;
  /**
   * Whether the upstream connection may be reused after this response: HTTP/1.1 without `close`, or 1.0
   * with `keep-alive`; never for `close` or `tunnel` framing.
   */
  keepAlive: boolean;
  /** A 101 Switching Protocols: the connection becomes a tunnel after the head. */
  upgrade: boolean;
  /** A 1xx other than 101 (100 Continue, 103 Early Hints...): forward it and parse the next head. */
  interim: boolean;
  /** The Connection options, lowercased; shared and frozen when there are none or one of close, keep-alive, upgrade. */
  connectionTokens: readonly string[];
  /** {@link headers}, once decoded. */
  decodedHeaders: string[] | null;

  constructor(source: Buffer) {
    this.kind = 'ok';
    this.consumed = 0;
    this.versionMinor = 1;
    this.status = 0;
    this.source = source;
    this.start = 0;
    this.fieldsStart = 0;
    this.reasonStart = 0;
    this.reasonEnd = 0;
    this.fieldCount = 0;
    this.fieldOffsets = NO_OFFSETS;
    this.decodedHeaders = null;
    this.framing = 'close';
    this.contentLength = -1;
    this.chunked = false;
    this.keepAlive = true;
    this.upgrade = false;
    this.interim = false;
    this.connectionTokens = NO_TOKENS;
  }

  /** Offset in `source` of field line `i` (its name's first byte). */
  lineStart(i: number): number {
    return this.fieldOffsets[i * FIELD_LINE_SLOTS];
  }

  /** Offset in `source` just past field line `i`'s CRLF. */
  lineEnd(i: number): number {
    return i + 1 < this.fieldCount ? this.fieldOffsets[(i + 1) * FIELD_LINE_SLOTS] : this.start + this.consumed - 2;
  }

  /** Offset in `source` of field line `i`'s colon. */
  nameEnd(i: number): number {
    return Math.floor(this.fieldOffsets[i * FIELD_LINE_SLOTS + 1] / KIND_SPAN);
  }

  /** Whether field line `i`'s name is `lower` (a lowercased token), in any case. */
  nameIs(i: number, lower: string): boolean {
    return nameIs(this.source, this.lineStart(i), this.nameEnd(i), lower);
  }

  /** Field line `i`'s kind from its name (`F_*` in framing.ts). */
  fieldKind(i: number): number {
    return this.fieldOffsets[i * FIELD_LINE_SLOTS + 1] % KIND_SPAN;
  }

  /** Reason phrase as sent (may be empty); decoded from `source`, see there. */
  get reason(): string {
    return latin1(this.source, this.reasonStart, this.reasonEnd);
  }

  /**
   * Field lines in order as `[name0, value0, name1, value1, ...]`: names as sent, values without OWS.
   * Decoded from `source` on first use (see there): forwarding copies field lines as bytes and never
   * needs these strings (bench: http-small).
   */
  get headers(): string[] {
    if (this.decodedHeaders !== null) return this.decodedHeaders;
    const headers: string[] = [];
    const source = this.source;
    for (let i = 0; i < this.fieldCount; i++) {
      const nameEnd = this.nameEnd(i);
      // The head was validated: the value is what lies between the colon and the CRLF, less OWS.
      let vs = nameEnd + 1;
      let ve = this.lineEnd(i) - 2;
      while (vs < ve && VALUE[source[vs]] === V_OWS) vs++;
      while (ve > vs && VALUE[source[ve - 1]] === V_OWS) ve--;
      headers.push(latin1(source, this.lineStart(i), nameEnd), latin1(source, vs, ve));
    }
    this.decodedHeaders = headers;
    return headers;
  }
}

/** What {@link parseResponseHead} returns; switch on `kind`. */
export type ResponseHeadResult = ResponseHead | HeadProgress | HttpParseError;

const ERR_CL_AND_TE = new HttpParseError('SY_UPS_BAD_FRAMING', 'both Content-Length and Transfer-Encoding');
const ERR_CL_REPEATED = new HttpParseError('SY_UPS_BAD_FRAMING', 'more than one Content-Length field');
const ERR_FRAMING_TAB = new HttpParseError(
  'SY_UPS_BAD_FRAMING',
  'HTAB around a Content-Length or Transfer-Encoding value',
);
const ERR_CL_INVALID = new HttpParseError('SY_UPS_BAD_FRAMING', 'Content-Length is not 1 to 15 digits');
const ERR_TE = new HttpParseError('SY_UPS_BAD_FRAMING', 'Transfer-Encoding is not exactly chunked');
const ERR_TE_HTTP10 = new HttpParseError('SY_UPS_BAD_FRAMING', 'Transfer-Encoding in an HTTP/1.0 response');
const ERR_NO_BODY_FRAMING = new HttpParseError(
  'SY_UPS_BAD_FRAMING',
  'Transfer-Encoding, or a non-zero Content-Length, on a 1xx or 204 response (or Transfer-Encoding on a 304)',
);
const ERR_101_NO_UPGRADE = new HttpParseError('SY_UPS_BAD_RESPONSE_HEAD', '101 response without Upgrade');
const ERR_CONNECTION = new HttpParseError('SY_UPS_BAD_RESPONSE_HEAD', 'Connection is not a list of tokens');

/**
 * Parses the response head at the start of `buf[start, end)`; incremental like `parseRequestHead`
 * (same `incomplete` / `ok` / `error` results, same `resume`, limits enforced as soon as exceeded).
 * Every error has status 502: the engine answers the client with it and never forwards the response.
 *
 * Choices (strict: an ambiguous response is an error, never forwarded):
 * - Status line `HTTP/1.x SP 3DIGIT SP reason CRLF` (first digit 1-5); `HTTP/1.x SP 3DIGIT CRLF` without the
 *   reason's SP is tolerated. No leading empty lines (RFC 9112 §2.2 only allows them before requests).
 * - Field syntax and limits as for requests; Connection must be a list of tokens.
 * - Both Content-Length and Transfer-Encoding, repeated or invalid Content-Length, Transfer-Encoding other
 *   than exactly `chunked` (RFC 9112 §6.3 would read `gzip` alone as close-delimited; we refuse it), or
 *   Transfer-Encoding in HTTP/1.0 are errors, also on responses that have no body.
 * - 1xx and 204 must not carry Transfer-Encoding or a non-zero Content-Length (RFC 9110 §8.6,
 *   `Content-Length: 0` is tolerated); 304 must not carry Transfer-Encoding. A 101 must carry Upgrade.
 *
 * @param requestMethod method of the request this answers: HEAD responses have no body, and a 2xx to
 *   CONNECT opens a tunnel
 */
export function parseResponseHead(
  buf: Buffer,
  start: number,
  end: number,
  limits: HttpLimits = DEFAULT_HTTP_LIMITS,
  requestMethod = 'GET',
  resume: HeadProgress | null = null,
): ResponseHeadResult {
  const st = SCAN;
  st.begin(start, end, PH_STATUS_VERSION, resume, limits.maxHeaders);
  let r = scanHead(buf, start, end, limits, st, true);
  if (r === SCAN_INCOMPLETE) return st.progress(start, true);
  if (r !== SCAN_DONE) return st.error!;
  if (!st.fresh) {
    st.begin(start, end, PH_STATUS_VERSION, null, limits.maxHeaders);
    r = scanHead(buf, start, end, limits, st, true);
  }
  return buildResponse(buf, start, st, requestMethod);
}

function buildResponse(
  buf: Buffer,
  start: number,
  st: HeadScanState,
  requestMethod: string,
): ResponseHead | HttpParseError {
  const head = new ResponseHead(buf);
  const headEnd = st.headEnd;
  const sc = st.statusStart;
  const status = (buf[sc] - 0x30) * 100 + (buf[sc + 1] - 0x30) * 10 + (buf[sc + 2] - 0x30);
  head.consumed = headEnd - start;
  head.versionMinor = st.versionMinor;
  head.status = status;
  head.start = start;
  head.reasonStart = st.reasonStart;
  head.reasonEnd = st.reasonEnd;

  const fields = st.fields;
  const n = st.fieldCount;
  // No strings here: the engine forwards field lines as bytes (message-head.ts), so the names and
  // values are decoded only if someone asks for `headers`. Measured with bench/micro/http-parser.ts.
  head.fieldCount = n;
  head.fieldsStart = n > 0 ? fields[0] : headEnd - 2;
  // A plain array: an Int32Array of this size would get a malloc'd backing store, which cost more
  // than the rest of the head's parse (bench/micro/http-parser.ts). Filled in the loop below.
  const offsets: number[] = new Array(n * FIELD_LINE_SLOTS);
  head.fieldOffsets = offsets;
  let clCount = 0;
  let clValue = -1;
  let teCount = 0;
  let teChunked = false;
  let connFlags = 0;
  let hasUpgrade = false;
  let tokens: ConnectionOptions | null = null;

  for (let i = 0; i < n; i++) {
    const f = i * FIELD_SLOTS;
    const ns = fields[f];
    const ne = fields[f + 1];
    const vs = fields[f + 2];
    const ve = fields[f + 3];
    const kind = fieldKind(buf, ns, ne);
    const o = i * FIELD_LINE_SLOTS;
    offsets[o] = ns;
    offsets[o + 1] = ne * KIND_SPAN + kind;
    switch (kind) {
      case F_CONTENT_LENGTH:
        clCount++;
        clValue = parseContentLength(buf, vs, ve);
        if (clValue < 0) return ERR_CL_INVALID;
        if (framingOwsHasTab(buf, ne, vs, ve)) return ERR_FRAMING_TAB;
        break;
      case F_TRANSFER_ENCODING:
        teCount++;
        if (framingOwsHasTab(buf, ne, vs, ve)) return ERR_FRAMING_TAB;
        teChunked = isChunkedOnly(buf, vs, ve);
        break;
      case F_CONNECTION: {
        if (tokens === null) tokens = beginConnectionOptions();
        const flags = parseConnection(buf, vs, ve, null, 0, tokens);
        if (flags === CONN_INVALID) return ERR_CONNECTION;
        connFlags |= flags;
        break;
      }
      case F_UPGRADE:
        hasUpgrade = true;
        break;
    }
  }

  if (clCount > 1) return ERR_CL_REPEATED;
  if (teCount > 0) {
    if (clCount > 0) return ERR_CL_AND_TE;
    if (head.versionMinor === 0) return ERR_TE_HTTP10;
    if (teCount > 1 || !teChunked) return ERR_TE;
    head.chunked = true;
  }
  head.contentLength = clValue;
  if (tokens !== null) head.connectionTokens = connectionOptions(tokens);
  let keepAlive = (connFlags & CONN_CLOSE) === 0 && (head.versionMinor === 1 || (connFlags & CONN_KEEP_ALIVE) !== 0);

  if (status < 200 || status === 204) {
    if (teCount > 0 || clValue > 0) return ERR_NO_BODY_FRAMING;
    if (status === 101) {
      if (!hasUpgrade) return ERR_101_NO_UPGRADE;
      head.upgrade = true;
      head.framing = 'tunnel';
      keepAlive = false;
    } else {
      head.interim = status < 200;
      head.framing = 'none';
    }
  } else if (status === 304) {
    if (teCount > 0) return ERR_NO_BODY_FRAMING;
    head.framing = 'none';
  } else if (requestMethod === 'HEAD') {
    head.framing = 'none';
  } else if (requestMethod === 'CONNECT' && status < 300) {
    head.framing = 'tunnel';
    keepAlive = false;
  } else if (head.chunked) {
    head.framing = 'chunked';
  } else if (clValue >= 0) {
    head.framing = 'length';
  } else {
    head.framing = 'close';
    keepAlive = false;
  }
  head.keepAlive = keepAlive;
  return head;
}
