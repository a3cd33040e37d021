/**
 * Byte classification tables for HTTP/1.1 framing (RFC 9110 §5.6.2, §5.5; RFC 9112 §3.2).
 *
 * The scanners' hot loops do one Uint8Array lookup per byte. Measured against range comparisons on the
 * 457-byte browser head of bench/micro/http-parser.ts (interleaved A/B runs of the whole head scan, loaded
 * 2-core VM): no gain from comparisons (3877 vs 4068 ns, 5461 vs 6311 ns), although a bare field-value
 * loop alone ran faster with them. The tables stay: they also state each character set once.
 *
 * @module
 */

/** Carriage return. */
export const CR = 0x0d;
/** Line feed. */
export const LF = 0x0a;
/** Space. */
export const SP = 0x20;
/** Horizontal tab. */
export const HTAB = 0x09;
/** `:` */
export const COLON = 0x3a;

function table(accept: (c: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) t[c] = accept(c) ? 1 : 0;
  return t;
}

const isAlpha = (c: number): boolean => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

/** 1 for `tchar` (RFC 9110 §5.6.2): the characters of methods, field names and other tokens. */
export const TCHAR: Uint8Array = table(
  (c) => isAlpha(c) || isDigit(c) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c)),
);

/** {@link VALUE} class of a visible character or obs-text: part of a field value, never trimmed. */
export const V_VISIBLE = 1;
/** {@link VALUE} class of SP and HTAB: allowed inside a field value, trimmed at its ends (OWS). */
export const V_OWS = 2;

/**
 * Field-value byte classes (RFC 9110 §5.5): {@link V_VISIBLE} for VCHAR and obs-text (0x80-0xFF),
 * {@link V_OWS} for SP and HTAB, 0 for everything else: NUL, CR, LF, the other controls and DEL. RFC 9110
 * lets a recipient keep controls other than CR, LF and NUL "for robustness"; we reject them all.
 */
export const VALUE: Uint8Array = (() => {
  const t = new Uint8Array(256);
  for (let c = 0x21; c <= 0x7e; c++) t[c] = V_VISIBLE;
  for (let c = 0x80; c <= 0xff; c++) t[c] = V_VISIBLE;
  t[SP] = V_OWS;
  t[HTAB] = V_OWS;
  return t;
})();

/**
 * 1 for bytes allowed in a request-target: visible ASCII except `#` (RFC 9112 §3.2 has no fragment).
 * Characters RFC 3986 excludes but browsers send raw in queries (`{ } | ^ \` and the like) are accepted:
 * they cannot change framing. Raw bytes >= 0x80 are rejected: they must be percent-encoded.
 */
export const TARGET: Uint8Array = table((c) => c >= 0x21 && c <= 0x7e && c !== 0x23);

/** Hex digit value, or 255 for a byte that is not a hex digit. */
export const HEX: Uint8Array = (() => {
  const t = new Uint8Array(256).fill(255);
  for (let i = 0; i < 10; i++) t[0x30 + i] = i;
  for (let i = 0; i < 6; i++) {
    t[0x41 + i] = 10 + i;
    t[0x61 + i] = 10 + i;
  }
  return t;
})();

/**
 * 1 for the characters we accept in a host name: letters, digits, `-`, `.` and `_`. RFC 3986 §3.2.2's
 * reg-name also allows `~`, percent-encoding and the sub-delims (`!$&'()*+,;=`), which no routable name
 * contains and which invite disagreement (`Host: a,b` reads as a list to some parsers), so we reject them.
 */
export const REG_NAME: Uint8Array = table((c) => isAlpha(c) || isDigit(c) || c === 0x2d || c === 0x2e || c === 0x5f);

/** 1 for the characters allowed inside an IP-literal's brackets (IPv6 in hex, with `:` and `.`). */
export const IP_LITERAL: Uint8Array = table(
  (c) => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66) || c === 0x3a || c === 0x2e,
);

/** 1 for URI scheme characters after the first letter (RFC 3986 §3.1). */
export const SCHEME: Uint8Array = table((c) => isAlpha(c) || isDigit(c) || c === 0x2b || c === 0x2d || c === 0x2e);

/**
 * Whether `buf[start, end)` equals `lower` ignoring ASCII case. `lower` must hold only lowercase letters,
 * digits and `-`. `c | 0x20` folds case without a branch; for the bytes this is called on (tokens and field
 * values, already validated: no CR, no controls) it maps only `A-Z` onto the letters of `lower`, because the
 * other byte it would fold onto a digit or `-` is a control character (0x10-0x19, 0x0d).
 */
export function equalsLower(buf: Uint8Array, start: number, end: number, lower: Uint8Array): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    if ((buf[start + i] | 0x20) !== lower[i]) return false;
  }
  return true;
}

/**
 * Whether the field name `buf[start, end)` is `lower` ignoring ASCII case, for names known only at run
 * time (config, Connection options): `lower` is any lowercased token, so only `A-Z` are folded.
 */
export function nameIs(buf: Uint8Array, start: number, end: number, lower: string): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    const c = buf[start + i];
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** Latin-1 bytes of an ASCII literal, for {@link equalsLower}. */
export function bytes(ascii: string): Uint8Array {
  return Uint8Array.from(ascii, (ch) => ch.charCodeAt(0));
}

/** `Buffer` with Node's latin1Slice, which @types/node does not declare (it is what `toString('latin1')` calls). */
type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

/**
 * Decodes `buf[start, end)` as latin1, like `buf.toString('latin1', start, end)` (which measured the same
 * per call); the parsers call it once per head and cut every string they return from the result.
 */
export function latin1(buf: Buffer, start: number, end: number): string {
  return (buf as Latin1Buffer).latin1Slice(start, end);
}
