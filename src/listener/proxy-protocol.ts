/**
 * PROXY protocol v1 (text) and v2 (binary) headers, as specified by HAProxy
 * (https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt; sections cited as "spec §n").
 *
 * The parser is pure and restartable: the caller passes every byte received so far and calls
 * again when more arrive. It decides `none` from the first byte that cannot belong to either
 * signature, so plaintext clients are never held back waiting for a header. It never throws.
 */

import { isIPv4, isIPv6 } from 'node:net';

/** A parsed PROXY protocol header. */
export interface ProxyHeader {
  /** Protocol version found on the wire. */
  version: 1 | 2;
  /** `local` (v1 UNKNOWN, v2 LOCAL): use the real peer address, the header carries none. */
  command: 'proxy' | 'local';
  /** Address family; `unknown` for UNSPEC, UNIX, UDP and every LOCAL header. */
  family: 'tcp4' | 'tcp6' | 'unknown';
  /** Original client address: dotted IPv4, or IPv6 in Node's compressed form (IPv4-mapped ones as plain IPv4). */
  sourceAddress: string | null;
  /** Original client port. */
  sourcePort: number | null;
  /** Address the client connected to, in the same form as `sourceAddress`. */
  destAddress: string | null;
  /** Port the client connected to. */
  destPort: number | null;
  /** Bytes the header occupies, TLVs included; the client's payload starts after it. */
  length: number;
}

/** Outcome of {@link parseProxyHeader}. */
export type ProxyParseResult =
  | { kind: 'none' }
  | { kind: 'need-more' }
  | { kind: 'header'; header: ProxyHeader }
  | { kind: 'error'; reason: string };

/** Fields of a v1 header to send; addresses and ports are required unless `family` is `unknown`. */
export interface ProxyV1Fields {
  family: 'tcp4' | 'tcp6' | 'unknown';
  sourceAddress?: string;
  sourcePort?: number;
  destAddress?: string;
  destPort?: number;
}

/** Fields of a v2 header to send; `tlvs` is appended verbatim after the address block. */
export interface ProxyV2Fields extends ProxyV1Fields {
  command: 'proxy' | 'local';
  tlvs?: Buffer;
}

/** Longest v1 line including CRLF (spec §2.1, the "worst case" UNKNOWN line). */
export const PROXY_V1_MAX_LENGTH = 107;

// spec §2.2: 12-byte signature; its NUL at offset 4 and "QUIT" make it invalid in common protocols.
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_SIGNATURE = Buffer.from('PROXY ', 'latin1');
const V2_FIXED_LENGTH = 16;
const CR = 0x0d;
const LF = 0x0a;

const NONE: ProxyParseResult = Object.freeze({ kind: 'none' });
const NEED_MORE: ProxyParseResult = Object.freeze({ kind: 'need-more' });

function fail(reason: string): ProxyParseResult {
  return { kind: 'error', reason };
}

/**
 * Parses a PROXY protocol v1 or v2 header at the start of `data` (all bytes received so far).
 * Returns `none` as soon as the bytes cannot start either signature, `need-more` for a prefix of
 * a signature or an incomplete header, and `error` for a header that breaks the spec (the caller
 * closes the connection, spec §2.1: "abort the connection as soon as possible").
 */
export function parseProxyHeader(data: Buffer): ProxyParseResult {
  if (data.length === 0) return NEED_MORE;
  const first = data[0];
  if (first === V1_SIGNATURE[0]) return parseV1(data);
  if (first === V2_SIGNATURE[0]) return parseV2(data);
  return NONE;
}

function matchesSignature(data: Buffer, signature: Buffer): boolean {
  const n = Math.min(data.length, signature.length);
  for (let i = 1; i < n; i++) if (data[i] !== signature[i]) return false;
  return true;
}

function parseV1(data: Buffer): ProxyParseResult {
  if (!matchesSignature(data, V1_SIGNATURE)) return NONE;
  const length = data.length;
  // spec §2.1: the CRLF must be within the first 107 bytes, so the CR sits at index 105 at most.
  const crLimit = Math.min(length, PROXY_V1_MAX_LENGTH - 1);
  let cr = -1;
  for (let i = V1_SIGNATURE.length; i < crLimit; i++) {
    const c = data[i];
    if (c === CR) {
      cr = i;
      break;
    }
    // spec §2.1: a lone LF must not end the line; the line is US-ASCII text.
    if (c === LF) return fail('v1 line ends without CR');
    if (c < 0x20 || c > 0x7e) return fail('v1 line has a non-printable byte');
  }
  if (cr === -1) return length >= PROXY_V1_MAX_LENGTH - 1 ? fail('v1 line has no CRLF within 107 bytes') : NEED_MORE;
  if (cr + 1 === length) return NEED_MORE;
  if (data[cr + 1] !== LF) return fail('v1 line ends without CRLF');

  const headerLength = cr + 2;
  const fields = data.toString('latin1', V1_SIGNATURE.length, cr).split(' ');
  const protocol = fields[0];
  // spec §2.1: for UNKNOWN the receiver must ignore anything before the CRLF.
  if (protocol === 'UNKNOWN') return header(1, 'local', 'unknown', null, null, null, null, headerLength);
  let family: 'tcp4' | 'tcp6';
  if (protocol === 'TCP4') family = 'tcp4';
  else if (protocol === 'TCP6') family = 'tcp6';
  else return fail('v1 protocol is not TCP4, TCP6 or UNKNOWN');
  if (fields.length !== 5) return fail('v1 line needs exactly 4 fields after the protocol, single-spaced');
  const source = v1Address(fields[1], family);
  const dest = v1Address(fields[2], family);
  if (source === null || dest === null) return fail(`v1 address is not a valid ${protocol} address`);
  const sourcePort = v1Port(fields[3]);
  const destPort = v1Port(fields[4]);
  if (sourcePort === -1 || destPort === -1) return fail('v1 port is not a decimal in 0-65535 without leading zeros');
  return header(1, 'proxy', family, source, sourcePort, dest, destPort, headerLength);
}

const scratch = Buffer.alloc(16);

/** Validates a v1 address for its family; IPv6 comes back in canonical form. */
function v1Address(text: string, family: 'tcp4' | 'tcp6'): string | null {
  // node:net's isIPv4 already refuses leading zeros, as spec §2.1 requires.
  if (family === 'tcp4') return isIPv4(text) ? text : null;
  if (!parseIPv6(text, scratch, 0)) return null;
  return formatIPv6(scratch, 0, true);
}

/** Parses a v1 port: 1-5 decimal digits, no sign, no leading zero (spec §2.1); -1 when invalid. */
function v1Port(text: string): number {
  const n = text.length;
  if (n === 0 || n > 5 || (n > 1 && text.charCodeAt(0) === 0x30)) return -1;
  let value = 0;
  for (let i = 0; i < n; i++) {
    const d = text.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value > 65535 ? -1 : value;
}

function parseV2(data: Buffer): ProxyParseResult {
  if (!matchesSignature(data, V2_SIGNATURE)) return NONE;
  const length = data.length;
  if (length < 13) return NEED_MORE;
  const versionCommand = data[12];
  // spec §2.2: the version nibble must be 2; commands other than LOCAL/PROXY must be dropped.
  if (versionCommand >> 4 !== 2) return fail('v2 version is not 2');
  const command = versionCommand & 0x0f;
  if (command > 1) return fail('v2 command is neither LOCAL nor PROXY');
  if (length < 14) return NEED_MORE;
  const familyProtocol = data[13];
  const addressFamily = familyProtocol >> 4;
  const transport = familyProtocol & 0x0f;
  // spec §2.2: LOCAL ignores the family byte entirely; for PROXY unassigned values are invalid.
  if (command === 1 && (addressFamily > 3 || transport > 2)) return fail('v2 family or transport is unassigned');
  if (length < V2_FIXED_LENGTH) return NEED_MORE;
  const blockLength = data.readUInt16BE(14);
  const total = V2_FIXED_LENGTH + blockLength;
  if (command === 0) {
    // spec §2.2: receivers must skip `len` bytes for LOCAL too, never assume zero.
    return length < total ? NEED_MORE : header(2, 'local', 'unknown', null, null, null, null, total);
  }
  // spec §2.2: INET 2*4+2*2, INET6 2*16+2*2, UNIX 2*108 bytes; any remainder is TLVs (spec §2.2.x).
  const needed =
    transport === 0 ? 0 : addressFamily === 1 ? 12 : addressFamily === 2 ? 36 : addressFamily === 3 ? 216 : 0;
  if (blockLength < needed) return fail('v2 length is too short for its address family');
  if (length < total) return NEED_MORE;
  if (familyProtocol === 0x11) {
    return header(
      2,
      'proxy',
      'tcp4',
      formatIPv4(data, 16),
      data.readUInt16BE(24),
      formatIPv4(data, 20),
      data.readUInt16BE(26),
      total,
    );
  }
  if (familyProtocol === 0x21) {
    return header(
      2,
      'proxy',
      'tcp6',
      formatIPv6(data, 16, true),
      data.readUInt16BE(48),
      formatIPv6(data, 32, true),
      data.readUInt16BE(50),
      total,
    );
  }
  // spec §2.2: UNSPEC, UNIX and DGRAM may be accepted using the real endpoints.
  return header(2, 'proxy', 'unknown', null, null, null, null, total);
}

function header(
  version: 1 | 2,
  command: 'proxy' | 'local',
  family: 'tcp4' | 'tcp6' | 'unknown',
  sourceAddress: string | null,
  sourcePort: number | null,
  destAddress: string | null,
  destPort: number | null,
  length: number,
): ProxyParseResult {
  return {
    kind: 'header',
    header: { version, command, family, sourceAddress, sourcePort, destAddress, destPort, length },
  };
}

function formatIPv4(b: Buffer, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/**
 * Formats 16 bytes at b[off] as IPv6 the way Node's inet_ntop does (lowercase, first longest run
 * of two or more zero groups as "::", ::a.b.c.d and ::ffff:a.b.c.d in dotted form), so addresses
 * compare equal to `socket.remoteAddress`. With `unmap`, IPv4-mapped addresses come back as
 * plain IPv4, because a dual-stack proxy in front of us reports IPv4 clients that way.
 */
function formatIPv6(b: Buffer, off: number, unmap: boolean): string {
  let bestStart = -1;
  let bestLength = 0;
  let runStart = -1;
  for (let i = 0; i < 8; i++) {
    if (b[off + 2 * i] === 0 && b[off + 2 * i + 1] === 0) {
      if (runStart === -1) runStart = i;
      if (i - runStart + 1 > bestLength) {
        bestStart = runStart;
        bestLength = i - runStart + 1;
      }
    } else {
      runStart = -1;
    }
  }
  if (bestLength < 2) bestStart = -1;
  if (bestStart === 0 && (bestLength === 6 || (bestLength === 5 && b[off + 10] === 0xff && b[off + 11] === 0xff))) {
    const v4 = formatIPv4(b, off + 12);
    if (bestLength === 6) return `::${v4}`;
    return unmap ? v4 : `::ffff:${v4}`;
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      out += i === 0 ? '::' : ':';
      i += bestLength - 1;
      continue;
    }
    out += b.readUInt16BE(off + 2 * i).toString(16);
    if (i < 7) out += ':';
  }
  return out;
}

/** Writes the 16 bytes of a textual IPv6 address at out[off]; false when the text is not one (zone ids included). */
function parseIPv6(text: string, out: Buffer, off: number): boolean {
  if (!isIPv6(text) || text.includes('%')) return false;
  const gap = text.indexOf('::');
  const head = groups(gap === -1 ? text : text.slice(0, gap));
  const tail = gap === -1 ? [] : groups(text.slice(gap + 2));
  if (head === null || tail === null) return false;
  if (gap === -1 ? head.length !== 8 : head.length + tail.length > 7) return false;
  out.fill(0, off, off + 16);
  for (let i = 0; i < head.length; i++) out.writeUInt16BE(head[i], off + 2 * i);
  for (let i = 0; i < tail.length; i++) out.writeUInt16BE(tail[i], off + 16 - 2 * (tail.length - i));
  return true;
}

/** Splits colon-separated IPv6 groups into 16-bit words; a trailing dotted IPv4 gives two words. */
function groups(text: string): number[] | null {
  if (text === '') return [];
  const parts = text.split(':');
  const words: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (i === parts.length - 1 && part.includes('.')) {
      if (!isIPv4(part)) return null;
      const [a, b, c, d] = part.split('.').map(Number);
      words.push((a << 8) | b, (c << 8) | d);
    } else {
      if (part.length === 0 || part.length > 4) return null;
      const word = Number.parseInt(part, 16);
      if (Number.isNaN(word)) return null;
      words.push(word);
    }
  }
  return words;
}

function checkPort(port: number | undefined, name: string): number {
  if (port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`${name} must be an integer in 0-65535, got ${port}`);
  }
  return port;
}

/**
 * Serialises a v1 header line. `unknown` gives the short form "PROXY UNKNOWN\r\n". For `tcp6`, an
 * IPv4 address is sent as its IPv4-mapped IPv6 form. Throws TypeError/RangeError on an address
 * or port that does not fit the family: bad arguments are a programming error, not wire input.
 */
export function encodeProxyV1(h: ProxyV1Fields): Buffer {
  if (h.family === 'unknown') return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const sourcePort = checkPort(h.sourcePort, 'sourcePort');
  const destPort = checkPort(h.destPort, 'destPort');
  const source = v1EncodeAddress(h.sourceAddress, h.family);
  const dest = v1EncodeAddress(h.destAddress, h.family);
  const protocol = h.family === 'tcp4' ? 'TCP4' : 'TCP6';
  return Buffer.from(`PROXY ${protocol} ${source} ${dest} ${sourcePort} ${destPort}\r\n`, 'latin1');
}

function v1EncodeAddress(address: string | undefined, family: 'tcp4' | 'tcp6'): string {
  if (address !== undefined) {
    if (family === 'tcp4' && isIPv4(address)) return address;
    if (family === 'tcp6') {
      if (isIPv4(address)) return `::ffff:${address}`;
      if (parseIPv6(address, scratch, 0)) return formatIPv6(scratch, 0, false);
    }
  }
  throw new TypeError(`${String(address)} is not a valid ${family} address`);
}

/**
 * Serialises a v2 header: signature, version 2 with the command, the family byte (TCP over
 * IPv4 0x11, TCP over IPv6 0x21, UNSPEC 0x00), the address block and then `tlvs` verbatim.
 * For `tcp6`, an IPv4 address is sent IPv4-mapped. Throws TypeError/RangeError on an address
 * or port that does not fit the family, or when the block would exceed 65535 bytes.
 */
export function encodeProxyV2(h: ProxyV2Fields): Buffer {
  const addressLength = h.family === 'tcp4' ? 12 : h.family === 'tcp6' ? 36 : 0;
  const tlvLength = h.tlvs === undefined ? 0 : h.tlvs.length;
  const blockLength = addressLength + tlvLength;
  if (blockLength > 65535) throw new RangeError(`PROXY v2 block of ${blockLength} bytes exceeds 65535`);
  const out = Buffer.allocUnsafe(V2_FIXED_LENGTH + blockLength);
  V2_SIGNATURE.copy(out, 0);
  out[12] = h.command === 'proxy' ? 0x21 : 0x20;
  out[13] = h.family === 'tcp4' ? 0x11 : h.family === 'tcp6' ? 0x21 : 0x00;
  out.writeUInt16BE(blockLength, 14);
  if (h.family === 'tcp4') {
    v2EncodeIPv4(h.sourceAddress, out, 16);
    v2EncodeIPv4(h.destAddress, out, 20);
    out.writeUInt16BE(checkPort(h.sourcePort, 'sourcePort'), 24);
    out.writeUInt16BE(checkPort(h.destPort, 'destPort'), 26);
  } else if (h.family === 'tcp6') {
    v2EncodeIPv6(h.sourceAddress, out, 16);
    v2EncodeIPv6(h.destAddress, out, 32);
    out.writeUInt16BE(checkPort(h.sourcePort, 'sourcePort'), 48);
    out.writeUInt16BE(checkPort(h.destPort, 'destPort'), 50);
  }
  if (h.tlvs !== undefined) h.tlvs.copy(out, V2_FIXED_LENGTH + addressLength);
  return out;
}

function v2EncodeIPv4(address: string | undefined, out: Buffer, off: number): void {
  if (address === undefined || !isIPv4(address)) throw new TypeError(`${String(address)} is not a valid tcp4 address`);
  const parts = address.split('.');
  for (let i = 0; i < 4; i++) out[off + i] = Number(parts[i]);
}

function v2EncodeIPv6(address: string | undefined, out: Buffer, off: number): void {
  if (address !== undefined && isIPv4(address)) {
    out.fill(0, off, off + 10);
    out[off + 10] = 0xff;
    out[off + 11] = 0xff;
    v2EncodeIPv4(address, out, off + 12);
    return;
  }
  if (address === undefined || !parseIPv6(address, out, off)) {
    throw new TypeError(`${String(address)} is not a valid tcp6 address`);
  }
}
