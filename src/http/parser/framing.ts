/**
 * Interpretation of the header fields that decide framing and connection handling: Content-Length,
 * Transfer-Encoding, Connection, Host. Shared by the request and response head parsers.
 *
 * Internal to src/http/parser.
 *
 * @module
 */

import { bytes, CR, equalsLower, HTAB, IP_LITERAL, latin1, REG_NAME, SP, TCHAR } from './chars.ts';

/** A field neither the framing layer nor forwarding treats specially. */
export const F_OTHER = 0;
/** `Host` */
export const F_HOST = 1;
/** `Content-Length` */
export const F_CONTENT_LENGTH = 2;
/** `Transfer-Encoding` */
export const F_TRANSFER_ENCODING = 3;
/** `Connection` */
export const F_CONNECTION = 4;
/** `Upgrade` */
export const F_UPGRADE = 5;
/** `Expect` */
export const F_EXPECT = 6;
/** `Keep-Alive`, `Proxy-Connection`, `TE`, `Proxy-Authenticate`, `Proxy-Authorization`: hop-by-hop, nothing else. */
export const F_HOP = 7;
/** `X-Forwarded-For` */
export const F_X_FORWARDED_FOR = 8;
/** `X-Forwarded-Proto` */
export const F_X_FORWARDED_PROTO = 9;
/** `X-Forwarded-Host` */
export const F_X_FORWARDED_HOST = 10;
/** `Forwarded` */
export const F_FORWARDED = 11;

const L_TE = bytes('te');
const L_HOST = bytes('host');
const L_EXPECT = bytes('expect');
const L_UPGRADE = bytes('upgrade');
const L_FORWARDED = bytes('forwarded');
const L_CONNECTION = bytes('connection');
const L_KEEP_ALIVE = bytes('keep-alive');
const L_CONTENT_LENGTH = bytes('content-length');
const L_X_FORWARDED_FOR = bytes('x-forwarded-for');
const L_X_FORWARDED_HOST = bytes('x-forwarded-host');
const L_PROXY_CONNECTION = bytes('proxy-connection');
const L_TRANSFER_ENCODING = bytes('transfer-encoding');
const L_X_FORWARDED_PROTO = bytes('x-forwarded-proto');
const L_PROXY_AUTHENTICATE = bytes('proxy-authenticate');
const L_PROXY_AUTHORIZATION = bytes('proxy-authorization');
const L_CHUNKED = bytes('chunked');
const L_CLOSE = bytes('close');
const L_100_CONTINUE = bytes('100-continue');

/**
 * Which of the fields that framing or forwarding cares about the name `buf[start, end)` is (the F_*
 * constants). The length switch and first-letter test reject almost every other name after two
 * comparisons, so typical heads (a dozen fields) pay no per-byte comparison for names nobody handles;
 * the engine then forwards fields by kind without lower-casing any name (message-head.ts).
 */
export function fieldKind(buf: Uint8Array, start: number, end: number): number {
  const first = buf[start] | 0x20;
  switch (end - start) {
    case 2:
      return first === 0x74 && equalsLower(buf, start, end, L_TE) ? F_HOP : F_OTHER;
    case 4:
      return first === 0x68 && equalsLower(buf, start, end, L_HOST) ? F_HOST : F_OTHER;
    case 6:
      return first === 0x65 && equalsLower(buf, start, end, L_EXPECT) ? F_EXPECT : F_OTHER;
    case 7:
      return first === 0x75 && equalsLower(buf, start, end, L_UPGRADE) ? F_UPGRADE : F_OTHER;
    case 9:
      return first === 0x66 && equalsLower(buf, start, end, L_FORWARDED) ? F_FORWARDED : F_OTHER;
    case 10:
      if (first === 0x63) return equalsLower(buf, start, end, L_CONNECTION) ? F_CONNECTION : F_OTHER;
      return first === 0x6b && equalsLower(buf, start, end, L_KEEP_ALIVE) ? F_HOP : F_OTHER;
    case 14:
      return first === 0x63 && equalsLower(buf, start, end, L_CONTENT_LENGTH) ? F_CONTENT_LENGTH : F_OTHER;
    case 15:
      return first === 0x78 && equalsLower(buf, start, end, L_X_FORWARDED_FOR) ? F_X_FORWARDED_FOR : F_OTHER;
    case 16:
      if (first === 0x78) return equalsLower(buf, start, end, L_X_FORWARDED_HOST) ? F_X_FORWARDED_HOST : F_OTHER;
      return first === 0x70 && equalsLower(buf, start, end, L_PROXY_CONNECTION) ? F_HOP : F_OTHER;
    case 17:
      if (first === 0x74) return equalsLower(buf, start, end, L_TRANSFER_ENCODING) ? F_TRANSFER_ENCODING : F_OTHER;
      return first === 0x78 && equalsLower(buf, start, end, L_X_FORWARDED_PROTO) ? F_X_FORWARDED_PROTO : F_OTHER;
    case 18:
      return first === 0x70 && equalsLower(buf, start, end, L_PROXY_AUTHENTICATE) ? F_HOP : F_OTHER;
    case 19:
      return first === 0x70 && equalsLower(buf, start, end, L_PROXY_AUTHORIZATION) ? F_HOP : F_OTHER;
    default:
      return F_OTHER;
  }
}

/**
 * Whether fields of this kind are never forwarded, in either direction (RFC 9110 §7.6.1): the
 * hop-by-hop ones, and Transfer-Encoding, whose framing the engine sets itself.
 */
export function isHopByHopKind(kind: number): boolean {
  return kind === F_HOP || kind === F_CONNECTION || kind === F_UPGRADE || kind === F_TRANSFER_ENCODING;
}

/** Most Content-Length digits accepted: 15 digits stay below 2^53, so the sum is exact. */
export const MAX_CONTENT_LENGTH_DIGITS = 15;

/**
 * The value of a Content-Length field (already trimmed of OWS), or -1 when it is not 1 to 15 ASCII digits.
 * Signs, spaces, lists (`5, 5`), hex and exponents are all invalid (RFC 9110 §8.6: `1*DIGIT`).
 */
export function parseContentLength(buf: Uint8Array, start: number, end: number): number {
  const len = end - start;
  if (len === 0 || len > MAX_CONTENT_LENGTH_DIGITS) return -1;
  let n = 0;
  for (let p = start; p < end; p++) {
    const d = buf[p] - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** Whether a Transfer-Encoding value is exactly `chunked` (any case): the one form we accept. */
export function isChunkedOnly(buf: Uint8Array, start: number, end: number): boolean {
  return equalsLower(buf, start, end, L_CHUNKED);
}

/** Transfer-Encoding verdict: the value list is well-formed, ends in `chunked`, but has other codings first. */
export const TE_OTHER_CODINGS = 1;
/** Transfer-Encoding verdict: the final coding is not `chunked` (the body length would be unknowable). */
export const TE_NOT_CHUNKED_FINAL = 2;
/** Transfer-Encoding verdict: `chunked` appears more than once (RFC 9112 §6.1: MUST NOT be applied twice). */
export const TE_CHUNKED_TWICE = 3;
/** Transfer-Encoding verdict: an empty list element, a parameter on `chunked`, or a non-token coding. */
export const TE_MALFORMED = 4;

function isOws(code: number): boolean {
  return code === SP || code === HTAB;
}

function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isOws(s.charCodeAt(a))) a++;
  while (b > a && isOws(s.charCodeAt(b - 1))) b--;
  return s.slice(a, b);
}

function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || TCHAR[c] !== 1) return false;
  }
  return true;
}

/**
 * Classifies the Transfer-Encoding field values of a head that are not simply one `chunked` (the slow,
 * rare path: strings are fine here). Empty list elements, which RFC 9110 §5.6.1 asks recipients to skip,
 * are rejected: a value like `,chunked` is a smuggling probe, not a client we need to serve.
 */
export function classifyTransferEncoding(values: readonly string[]): number {
  const codings: string[] = [];
  for (const value of values) {
    for (const element of value.split(',')) {
      const coding = trimOws(element);
      const semi = coding.indexOf(';');
      const name = trimOws(semi === -1 ? coding : coding.slice(0, semi)).toLowerCase();
      if (!isToken(name)) return TE_MALFORMED;
      if (semi !== -1 && name === 'chunked') return TE_MALFORMED;
      codings.push(name);
    }
  }
  if (codings[codings.length - 1] !== 'chunked') return TE_NOT_CHUNKED_FINAL;
  if (codings.indexOf('chunked') !== codings.length - 1) return TE_CHUNKED_TWICE;
  return TE_OTHER_CODINGS;
}

/** {@link parseConnection} flag: the `close` option. */
export const CONN_CLOSE = 1;
/** {@link parseConnection} flag: the `keep-alive` option. */
export const CONN_KEEP_ALIVE = 2;
/** {@link parseConnection} flag: the `upgrade` option. */
export const CONN_UPGRADE = 4;
/** {@link parseConnection} result for a value that is not a comma-separated list of tokens. */
export const CONN_INVALID = -1;

/**
 * Parses a Connection value (`#connection-option`, RFC 9110 §7.6.1) at `buf[start, end)`, appending each
 * option, lowercased, to `tokens`. `text` is the decoded head and `textBase` the buffer offset of its first
 * character, so unknown options are cut from it rather than decoded again; with `text` null (a head that
 * is not decoded) they are decoded from `buf`.
 *
 * @returns an OR of the CONN_* flags, or {@link CONN_INVALID}.
 */
export function parseConnection(
  buf: Uint8Array,
  start: number,
  end: number,
  text: string | null,
  textBase: number,
  tokens: ConnectionOptions,
): number {
  let flags = 0;
  let p = start;
  while (p < end) {
    const c = buf[p];
    if (c === 0x2c || isOws(c)) {
      p++;
      continue;
    }
    const t = p;
    while (p < end && TCHAR[buf[p]] === 1) p++;
    if (p === t) return CONN_INVALID;
    // Well-known options become constant strings: no allocation, and the engine compares them by identity.
    if (equalsLower(buf, t, p, L_CLOSE)) {
      flags |= CONN_CLOSE;
      tokens.add('close');
    } else if (equalsLower(buf, t, p, L_KEEP_ALIVE)) {
      flags |= CONN_KEEP_ALIVE;
      tokens.add('keep-alive');
    } else if (equalsLower(buf, t, p, L_UPGRADE)) {
      flags |= CONN_UPGRADE;
      tokens.add('upgrade');
    } else {
      const option = text === null ? latin1(buf as Buffer, t, p) : text.slice(t - textBase, p - textBase);
      tokens.add(option.toLowerCase());
    }
    while (p < end && isOws(buf[p])) p++;
    if (p < end && buf[p] !== 0x2c) return CONN_INVALID;
  }
  return flags;
}

/**
 * The Connection options of one head as {@link parseConnection} collects them. One instance serves
 * every parse (heads are parsed one at a time, synchronously), and it keeps its array between
 * heads: a fresh list per head, or one emptied by `length = 0` (which drops the backing store),
 * was about 5% of what the engine allocated per http-small exchange (sampling heap profile).
 */
export class ConnectionOptions {
  items: string[] = [];
  count = 0;

  add(option: string): void {
    this.items[this.count++] = option;
  }
}

const OPTIONS = new ConnectionOptions();
const ONLY_KEEP_ALIVE: readonly string[] = Object.freeze(['keep-alive']);
const ONLY_CLOSE: readonly string[] = Object.freeze(['close']);
const ONLY_UPGRADE: readonly string[] = Object.freeze(['upgrade']);

/** The (emptied) collector to pass to {@link parseConnection} for the Connection fields of one head. */
export function beginConnectionOptions(): ConnectionOptions {
  OPTIONS.count = 0;
  return OPTIONS;
}

/**
 * The options collected for a head: a shared, frozen list when it is one of the options nearly
 * every message carries alone (`Connection: keep-alive` on almost every upstream response), else a
 * copy.
 */
export function connectionOptions(options: ConnectionOptions): readonly string[] {
  if (options.count === 1) {
    const option = options.items[0];
    if (option === 'keep-alive') return ONLY_KEEP_ALIVE;
    if (option === 'close') return ONLY_CLOSE;
    if (option === 'upgrade') return ONLY_UPGRADE;
  }
  return options.items.slice(0, options.count);
}

/** Whether an Expect value is `100-continue` (any case), RFC 9110 §10.1.1. */
export function isExpectContinue(buf: Uint8Array, start: number, end: number): boolean {
  return equalsLower(buf, start, end, L_100_CONTINUE);
}

/**
 * Whether `buf[start, end)` is `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2) with a non-empty
 * host of DNS-style characters (see REG_NAME in chars.ts) and, when present, a port of 1 to 5 digits up
 * to 65535. `requirePort` is for CONNECT's
 * authority-form. IP-literals are checked for their character set only (hex digits, `:` and `.`); IPvFuture
 * and zone identifiers are rejected. `@` is not a reg-name character, so userinfo is rejected too.
 */
export function isValidAuthority(buf: Uint8Array, start: number, end: number, requirePort: boolean): boolean {
  let p = start;
  if (p < end && buf[p] === 0x5b) {
    p++;
    while (p < end && IP_LITERAL[buf[p]] === 1) p++;
    if (p >= end || buf[p] !== 0x5d || p === start + 1) return false;
    p++;
  } else {
    while (p < end && REG_NAME[buf[p]] === 1) p++;
    if (p === start) return false;
  }
  if (p === end) return !requirePort;
  if (buf[p] !== 0x3a) return false;
  p++;
  const digits = end - p;
  if (digits < 1 || digits > 5) return false;
  let port = 0;
  for (; p < end; p++) {
    const d = buf[p] - 0x30;
    if (d < 0 || d > 9) return false;
    port = port * 10 + d;
  }
  return port <= 65535;
}

/** Whether two byte ranges are equal ignoring ASCII letter case (for host names, RFC 3986 §6.2.2.1). */
export function equalsIgnoringCase(buf: Uint8Array, a: number, aEnd: number, b: number, bEnd: number): boolean {
  if (aEnd - a !== bEnd - b) return false;
  for (let i = 0; a + i < aEnd; i++) {
    let x = buf[a + i];
    let y = buf[b + i];
    if (x >= 0x41 && x <= 0x5a) x |= 0x20;
    if (y >= 0x41 && y <= 0x5a) y |= 0x20;
    if (x !== y) return false;
  }
  return true;
}

/**
 * Whether the OWS around a field value (between the colon at `colon` and the value at `[start, end)`, and
 * after it up to the CR) holds an HTAB. Used for Content-Length and Transfer-Encoding only: llhttp, for one,
 * rejects `Transfer-Encoding: chunked<HTAB>` but accepts `<HTAB>chunked`, and such tab games are a known
 * TE.TE smuggling probe, so framing fields may only be padded with SP.
 */
export function framingOwsHasTab(buf: Uint8Array, colon: number, start: number, end: number): boolean {
  for (let p = colon + 1; p < start; p++) if (buf[p] === HTAB) return true;
  for (let p = end; buf[p] !== CR; p++) if (buf[p] === HTAB) return true;
  return false;
}
