/**
 * TLS ClientHello peek: reads the server name (SNI) and ALPN list from the first bytes of a
 * connection without terminating TLS, so the listener can route TLS passthrough by SNI.
 *
 * The parser is pure and restartable: the caller passes every byte received so far and calls
 * again after the next segment arrives. Only record headers are walked until the whole
 * ClientHello is present, so repeated calls on a trickling client stay cheap. It never throws;
 * every malformed input is an `error` result and the caller closes the connection.
 *
 * References: RFC 8446 §5.1 (record layer), §4.1.2 (ClientHello), §4.2 (extensions);
 * RFC 5246 §7.4.1.2; RFC 6066 §3 (server_name); RFC 7301 §3.1 (ALPN).
 */

/** What the listener learns from a ClientHello. */
export interface ClientHelloInfo {
  /** The SNI host_name, lowercased and without a trailing dot, or null when the client sent no SNI. */
  serverName: string | null;
  /** ALPN protocol names in the client's order (bytes read as latin1), empty when ALPN was not offered. */
  alpn: string[];
}

/** Outcome of {@link parseClientHello}. */
export type ClientHelloResult =
  | { kind: 'need-more' }
  | { kind: 'hello'; info: ClientHelloInfo }
  | { kind: 'error'; reason: string };

type ClientHelloError = { kind: 'error'; reason: string };

/** Largest ClientHello body accepted, in bytes; a bound on what one connection may make us buffer. */
export const MAX_CLIENT_HELLO_BYTES = 65536;

/** Most TLS records one ClientHello may be split across; real clients use one. */
export const MAX_CLIENT_HELLO_RECORDS = 16;

const CONTENT_TYPE_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const RECORD_HEADER_BYTES = 5;
const HANDSHAKE_HEADER_BYTES = 4;
// RFC 8446 §5.1: TLSPlaintext.length MUST NOT exceed 2^14.
const MAX_RECORD_FRAGMENT_BYTES = 16384;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
// RFC 1035 §2.3.4 limits, with the trailing dot already removed.
const MAX_HOST_NAME_BYTES = 253;
const MAX_LABEL_BYTES = 63;

const NEED_MORE: ClientHelloResult = Object.freeze({ kind: 'need-more' });

function fail(reason: string): ClientHelloError {
  return { kind: 'error', reason };
}

/**
 * True when the first byte of a connection could start a TLS handshake record (content type 22).
 * SSLv2-style hellos (high bit set) and plaintext protocols answer false.
 */
export function looksLikeTls(firstByte: number): boolean {
  return firstByte === CONTENT_TYPE_HANDSHAKE;
}

/**
 * Parses the ClientHello from all bytes received so far on a connection, starting at its first
 * TLS record. The handshake message may be split across up to {@link MAX_CLIENT_HELLO_RECORDS}
 * records and any number of TCP segments; bytes after the records that carry it (early data,
 * a ChangeCipherSpec) are ignored. Returns `need-more` until the ClientHello is complete, and
 * `error` as soon as the bytes cannot be a valid one. Never throws.
 */
export function parseClientHello(data: Buffer): ClientHelloResult {
  const total = data.length;
  let off = 0;
  let records = 0;
  let seen = 0;
  let bodyLength = -1;
  let lengthAcc = 0;

  while (bodyLength === -1 || seen < HANDSHAKE_HEADER_BYTES + bodyLength) {
    if (records === MAX_CLIENT_HELLO_RECORDS) return fail('ClientHello spans more than 16 records');
    const avail = total - off;
    if (avail === 0) return NEED_MORE;
    // RFC 8446 §5.1: handshake messages MUST NOT be interleaved with other record types.
    if (data[off] !== CONTENT_TYPE_HANDSHAKE) {
      return fail(records === 0 ? 'not a TLS handshake record' : 'non-handshake record inside ClientHello');
    }
    if (avail >= 2 && data[off + 1] !== 3) return fail('unsupported record version');
    if (avail >= 3 && (data[off + 2] < 1 || data[off + 2] > 4)) return fail('unsupported record version');
    if (avail < RECORD_HEADER_BYTES) return NEED_MORE;
    const fragmentLength = data.readUInt16BE(off + 3);
    // RFC 8446 §5.1: zero-length handshake fragments MUST NOT be sent.
    if (fragmentLength === 0) return fail('empty handshake record');
    if (fragmentLength > MAX_RECORD_FRAGMENT_BYTES) return fail('record longer than 16384 bytes');
    const fragmentStart = off + RECORD_HEADER_BYTES;
    const fragmentAvail = Math.min(fragmentLength, total - fragmentStart);
    // The 4-byte handshake header may itself straddle records; read it as soon as each byte is
    // here so a wrong type or an oversized length is refused before a whole record is buffered.
    for (let i = 0; i < fragmentAvail && seen + i < HANDSHAKE_HEADER_BYTES; i++) {
      const b = data[fragmentStart + i];
      const pos = seen + i;
      if (pos === 0) {
        if (b !== HANDSHAKE_CLIENT_HELLO) return fail('first handshake message is not a ClientHello');
      } else {
        lengthAcc = lengthAcc * 256 + b;
        if (pos === 3) {
          if (lengthAcc > MAX_CLIENT_HELLO_BYTES) return fail('ClientHello longer than 64 KiB');
          bodyLength = lengthAcc;
        }
      }
    }
    if (fragmentAvail < fragmentLength) return NEED_MORE;
    records++;
    seen += fragmentLength;
    off = fragmentStart + fragmentLength;
    // Nothing may follow the ClientHello in its flight (RFC 8446 §4.1.2); extra handshake bytes
    // in the same record are either a framing error or a smuggling attempt.
    if (bodyLength !== -1 && seen > HANDSHAKE_HEADER_BYTES + bodyLength) {
      return fail('data after the ClientHello in its record');
    }
  }

  if (records === 1) {
    const start = RECORD_HEADER_BYTES + HANDSHAKE_HEADER_BYTES;
    return parseBody(data, start, start + bodyLength);
  }
  // Multi-record hellos are rare, so only they pay for reassembly into one buffer.
  const message = Buffer.allocUnsafe(HANDSHAKE_HEADER_BYTES + bodyLength);
  let written = 0;
  let read = 0;
  for (let r = 0; r < records; r++) {
    const length = data.readUInt16BE(read + 3);
    data.copy(message, written, read + RECORD_HEADER_BYTES, read + RECORD_HEADER_BYTES + length);
    written += length;
    read += RECORD_HEADER_BYTES + length;
  }
  return parseBody(message, HANDSHAKE_HEADER_BYTES, message.length);
}

/** Parses a ClientHello body occupying b[p, end) (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2). */
function parseBody(b: Buffer, p: number, end: number): ClientHelloResult {
  // legacy_version (2) + random (32) + legacy_session_id length (1)
  if (end - p < 35) return fail('ClientHello too short');
  if (b[p] !== 3) return fail('unsupported ClientHello version');
  p += 34;
  const sessionIdLength = b[p++];
  if (sessionIdLength > 32) return fail('session id longer than 32 bytes');
  p += sessionIdLength;
  if (p + 2 > end) return fail('truncated cipher suites');
  const cipherSuitesLength = b.readUInt16BE(p);
  p += 2;
  if (cipherSuitesLength < 2 || (cipherSuitesLength & 1) !== 0) return fail('bad cipher suites length');
  p += cipherSuitesLength;
  if (p + 1 > end) return fail('truncated cipher suites');
  const compressionLength = b[p++];
  if (compressionLength < 1) return fail('no compression methods');
  p += compressionLength;
  if (p > end) return fail('truncated compression methods');

  let serverName: string | null = null;
  let alpn: string[] = [];
  // RFC 5246 §7.4.1.2: a ClientHello before TLS 1.3 may end without an extensions block.
  if (p === end) return { kind: 'hello', info: { serverName, alpn } };
  if (p + 2 > end) return fail('truncated extensions length');
  const extensionsLength = b.readUInt16BE(p);
  p += 2;
  if (extensionsLength !== end - p) return fail('extensions length does not match ClientHello length');

  let sawServerName = false;
  let sawAlpn = false;
  while (p < end) {
    if (end - p < 4) return fail('truncated extension header');
    const type = b.readUInt16BE(p);
    const length = b.readUInt16BE(p + 2);
    p += 4;
    if (length > end - p) return fail('extension longer than the extensions block');
    // RFC 8446 §4.2 forbids repeated extensions; only the two we route on are checked, since a
    // second SNI or ALPN could make us route differently from the server that terminates TLS.
    if (type === EXT_SERVER_NAME) {
      if (sawServerName) return fail('duplicate server_name extension');
      sawServerName = true;
      const name = parseServerName(b, p, p + length);
      if (typeof name !== 'string') return name;
      serverName = name;
    } else if (type === EXT_ALPN) {
      if (sawAlpn) return fail('duplicate ALPN extension');
      sawAlpn = true;
      const protocols = parseAlpn(b, p, p + length);
      if (!Array.isArray(protocols)) return protocols;
      alpn = protocols;
    }
    p += length;
  }
  return { kind: 'hello', info: { serverName, alpn } };
}

/** Parses the server_name extension data in b[p, end) (RFC 6066 §3). */
function parseServerName(b: Buffer, p: number, end: number): string | ClientHelloError {
  if (end - p < 2) return fail('truncated server_name list');
  const listLength = b.readUInt16BE(p);
  p += 2;
  if (listLength !== end - p) return fail('server_name list length mismatch');
  if (listLength < 3) return fail('empty server_name list');
  // host_name is the only NameType and RFC 6066 allows one name per type, so the list holds
  // exactly one host_name entry; OpenSSL enforces the same.
  if (b[p] !== 0) return fail('server_name entry is not a host_name');
  const nameLength = b.readUInt16BE(p + 1);
  p += 3;
  if (nameLength > end - p) return fail('host_name longer than its list');
  if (nameLength < end - p) return fail('more than one server_name entry');
  return readHostName(b, p, end);
}

/**
 * Validates and decodes a host_name. Letters, digits, '-', '_' and '.' are accepted (underscores
 * appear in real internal names); one trailing dot is dropped because "a.example." and
 * "a.example" name the same host, and routing must not tell them apart.
 */
function readHostName(b: Buffer, p: number, end: number): string | ClientHelloError {
  if (end > p && b[end - 1] === 0x2e) end--;
  const length = end - p;
  if (length === 0) return fail('empty host_name');
  if (length > MAX_HOST_NAME_BYTES) return fail('host_name longer than 253 bytes');
  let labelLength = 0;
  let upper = false;
  for (let i = p; i < end; i++) {
    const c = b[i];
    if (c === 0x2e) {
      if (labelLength === 0) return fail('empty label in host_name');
      labelLength = 0;
      continue;
    }
    if (++labelLength > MAX_LABEL_BYTES) return fail('host_name label longer than 63 bytes');
    if ((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f) continue;
    if (c >= 0x41 && c <= 0x5a) {
      upper = true;
      continue;
    }
    return fail('invalid byte in host_name');
  }
  if (labelLength === 0) return fail('empty label in host_name');
  const name = b.toString('latin1', p, end);
  return upper ? name.toLowerCase() : name;
}

/** Parses the ALPN extension data in b[p, end) (RFC 7301 §3.1). */
function parseAlpn(b: Buffer, p: number, end: number): string[] | ClientHelloError {
  if (end - p < 2) return fail('truncated ALPN list');
  const listLength = b.readUInt16BE(p);
  p += 2;
  if (listLength !== end - p) return fail('ALPN list length mismatch');
  if (listLength < 2) return fail('empty ALPN list');
  const protocols: string[] = [];
  while (p < end) {
    const length = b[p++];
    // RFC 7301 §3.1: empty strings MUST NOT be included.
    if (length === 0) return fail('empty ALPN protocol name');
    if (length > end - p) return fail('ALPN protocol name overruns its list');
    protocols.push(b.toString('latin1', p, p + length));
    p += length;
  }
  return protocols;
}
