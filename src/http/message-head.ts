/**
 * Serialising the heads the engine sends: the request head to the upstream and the response
 * head to the client, with hop-by-hop fields removed (RFC 9110 §7.6.1), X-Forwarded-* and
 * Forwarded set, the request ID and the route's header edits applied.
 *
 * Hot path: fields are forwarded as they came, in runs of consecutive kept lines, and only the
 * lines the engine adds are built. Which fields to drop is decided by the kind the parser gave
 * each name (no lower-casing, no Map lookups), and by length-first comparisons for the names known
 * at run time (request ID, Connection options, route edits). Content-Length is never dropped:
 * the engine frames both messages by it, so a `Connection: content-length` option (which RFC 9110
 * §7.6.1 forbids senders to send) must not strip it from what goes on, or the body would reach the
 * next hop unframed: a request smuggled upstream, a response read into the next one. Request heads are one string (slices
 * of the decoded head plus the added lines: V8 ropes, flattened once by the write); response heads
 * are bytes copied from the upstream's read. Decoding, lower-casing and re-concatenating every
 * field instead cost about 2 µs per response on http-small and 4 µs per browser-like request
 * (perf and micro benchmarks, this 2-core VM).
 */
import type { ForwardActionConfig, HttpConfig } from '../config/schema.ts';
import type { CompiledRoute } from '../route/route-table.ts';
import { type ClientConnection, pathAndQuery } from './client-connection.ts';
import type { HttpEngine } from './http-engine.ts';
import { reasonPhrase } from './local-response.ts';
import {
  F_CONTENT_LENGTH,
  F_FORWARDED,
  F_HOST,
  F_X_FORWARDED_FOR,
  F_X_FORWARDED_HOST,
  F_X_FORWARDED_PROTO,
  isHopByHopKind,
  type RequestHead,
  type ResponseHead,
} from './parser/index.ts';

/** A route's header edits, compiled once per route (cached on the route object). */
export class HeaderEditPlan {
  /** Lower-cased names removed or replaced. */
  readonly dropNames: readonly string[];
  /** Serialised `name: value\r\n` lines appended. */
  readonly lines: string;
  /** {@link lines} and the CRLF that ends a head. */
  readonly linesAndEnd: string;

  constructor(edits: ForwardActionConfig['requestHeaders']) {
    const drop = new Set<string>();
    let lines = '';
    for (const name of edits?.remove ?? []) drop.add(name.toLowerCase());
    for (const [name, value] of Object.entries(edits?.set ?? {})) {
      drop.add(name.toLowerCase());
      lines += `${name}: ${value}\r\n`;
    }
    for (const [name, value] of Object.entries(edits?.add ?? {})) lines += `${name}: ${value}\r\n`;
    this.dropNames = [...drop];
    this.lines = lines;
    this.linesAndEnd = `${lines}\r\n`;
  }
}

const kPlans = Symbol('switchyard.headerPlans');

interface PlannedRoute extends CompiledRoute {
  [kPlans]?: { request: HeaderEditPlan; response: HeaderEditPlan };
}

/** The compiled header edits of a forward route. */
function plans(
  route: CompiledRoute,
  action: ForwardActionConfig,
): { request: HeaderEditPlan; response: HeaderEditPlan } {
  const planned = route as PlannedRoute;
  let p = planned[kPlans];
  if (p === undefined) {
    p = { request: new HeaderEditPlan(action.requestHeaders), response: new HeaderEditPlan(action.responseHeaders) };
    planned[kPlans] = p;
  }
  return p;
}

/**
 * What repeats between the requests of one client connection, made once rather than per request:
 * the name its Host gives for routing, the request head lines of its address and scheme, and those
 * of its Host (the same on every request of nearly every keep-alive client). Cutting and
 * lower-casing the Host again, and concatenating these lines again, were among the largest items
 * of CPU and garbage per http-small exchange (cpuprofile, sampling heap profile,
 * docs/benchmarks.md).
 */
export class AddedLines {
  /** X-Forwarded-For and -Proto for a request that brings neither field (or whose peer is not trusted). */
  readonly forwarded: string;
  /** The Host value the fields below were made for (null: none sent). */
  host: string | null;
  /** The Host's name for route matching: lower-case, without port or IPv6 brackets. */
  serverName: string | null;
  hostLine: string;
  forwardedHostLine: string;
  /** Host, X-Forwarded-For, -Proto and -Host, for a request that brings none of the last three. */
  hostAndForwarded: string;

  constructor(clientIp: string, proto: string) {
    this.forwarded = `x-forwarded-for: ${clientIp}\r\nx-forwarded-proto: ${proto}\r\n`;
    this.host = null;
    this.serverName = null;
    this.hostLine = '';
    this.forwardedHostLine = '';
    this.hostAndForwarded = '';
  }

  forHost(host: string | null): void {
    if (host === this.host) return;
    this.host = host;
    this.serverName = hostName(host);
    if (host === null) return;
    this.hostLine = `host: ${host}\r\n`;
    this.forwardedHostLine = `x-forwarded-host: ${host}\r\n`;
    this.hostAndForwarded = this.hostLine + this.forwarded + this.forwardedHostLine;
  }
}

/** The connection's {@link AddedLines}, made on first use, brought up to date for `host`. */
export function addedLinesFor(conn: ClientConnection, host: string | null): AddedLines {
  let added = conn.addedLines;
  if (added === null) added = conn.addedLines = new AddedLines(conn.clientIp, conn.match.tls ? 'https' : 'http');
  added.forHost(host);
  return added;
}

/** Host name of a Host value: lower-case, without port or IPv6 brackets. */
function hostName(host: string | null): string | null {
  if (host === null) return null;
  let end = host.length;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    return host.slice(1, close).toLowerCase();
  }
  const colon = host.lastIndexOf(':');
  if (colon !== -1) end = colon;
  const name = end === host.length ? host : host.slice(0, end);
  return name.toLowerCase();
}

/** The request head sent upstream. */
export function buildRequestHead(
  req: RequestHead,
  conn: ClientConnection,
  action: ForwardActionConfig,
  route: CompiledRoute,
  http: HttpConfig,
  engine: HttpEngine,
): string {
  const edits = plans(route, action).request;
  const trusted = conn.peerTrusted;
  const idName = engine.requestIdHeader;
  const http10 = req.versionMinor === 0;
  const tokens = namedTokens(req.connectionTokens);
  const dropNames = edits.dropNames;
  const headers = req.headers;
  const text = req.text;
  const lines = req.fieldLines;
  let out = '';
  // An origin-form request line goes on as the client sent it (`method SP target SP HTTP/1.x CRLF`,
  // nothing else passes the parser), as the start of the first run of kept lines; others are rebuilt.
  let runStart = 0;
  if (req.pathOffset !== 0) {
    out = `${req.method} ${pathAndQuery(req)} ${http10 ? 'HTTP/1.0' : 'HTTP/1.1'}\r\n`;
    runStart = -1;
  }
  let xff: string | null = null;
  let xfp: string | null = null;
  let xfh: string | null = null;
  let forwarded: string | null = null;
  for (let i = 0; i < lines.length; i += 2) {
    const kind = lines[i + 1];
    let keep = false;
    if (kind === F_X_FORWARDED_FOR) {
      if (trusted) xff = xff === null ? headers[i + 1] : `${xff}, ${headers[i + 1]}`;
    } else if (kind === F_X_FORWARDED_PROTO) {
      if (trusted) xfp = headers[i + 1];
    } else if (kind === F_X_FORWARDED_HOST) {
      if (trusted) xfh = headers[i + 1];
    } else if (kind === F_FORWARDED) {
      // Without forwardedHeader the engine adds no element of its own, so a trusted peer's field
      // goes on as sent; an untrusted client's is dropped either way (it could name any address).
      if (trusted && !http.forwardedHeader) keep = true;
      else if (trusted) forwarded = forwarded === null ? headers[i + 1] : `${forwarded}, ${headers[i + 1]}`;
    } else if (kind === F_CONTENT_LENGTH) {
      keep = true;
    } else if (kind !== F_HOST && !isHopByHopKind(kind)) {
      const name = headers[i];
      keep = !(
        nameIs(name, idName) ||
        (tokens.length > 0 && anyNameIs(name, tokens)) ||
        (dropNames.length > 0 && anyNameIs(name, dropNames))
      );
    }
    if (keep) {
      if (runStart < 0) runStart = lines[i];
    } else if (runStart >= 0) {
      out += text.slice(runStart, lines[i]);
      runStart = -1;
    }
  }
  if (runStart >= 0) out += text.slice(runStart);
  const clientIp = conn.clientIp;
  const host = req.host;
  const proto = conn.match.tls ? 'https' : 'http';
  const hostHeader = action.hostHeader ?? 'preserve';
  const added = addedLinesFor(conn, host);
  if (hostHeader === 'preserve' && host !== null && xff === null && xfp === null && xfh === null) {
    // The common case: all four lines as one string, made when the Host last changed.
    out += added.hostAndForwarded;
  } else {
    if (hostHeader === 'preserve' && host !== null) out += added.hostLine;
    else if (hostHeader === 'preserve' || hostHeader === 'target') out += `host: ${conn.target!.key}\r\n`;
    else out += `host: ${hostHeader}\r\n`;
    if (xff === null && xfp === null) out += added.forwarded;
    else {
      out += `x-forwarded-for: ${xff === null ? clientIp : `${xff}, ${clientIp}`}\r\n`;
      out += `x-forwarded-proto: ${xfp ?? proto}\r\n`;
    }
    if (xfh !== null) out += `x-forwarded-host: ${xfh}\r\n`;
    else if (host !== null) out += added.forwardedHostLine;
  }
  if (http.forwardedHeader) {
    const forIp = clientIp.includes(':') ? `"[${clientIp}]"` : clientIp;
    const element = `for=${forIp};proto=${proto}${host !== null ? `;host="${host}"` : ''}`;
    out += `forwarded: ${forwarded === null ? element : `${forwarded}, ${element}`}\r\n`;
  }
  out += requestIdLine(conn, idName);
  if (req.chunked) out += 'transfer-encoding: chunked\r\n';
  if (req.upgrade) {
    out += `connection: upgrade\r\nupgrade: ${fieldValue(headers, 'upgrade')}\r\n`;
  } else if (http10) {
    // An HTTP/1.0 request goes upstream as 1.0 so the response is never chunked for a 1.0 client.
    out += 'connection: close\r\n';
  }
  return out + edits.linesAndEnd;
}

const NO_NAMES: readonly string[] = Object.freeze([]);

/**
 * The Connection options whose same-named fields still need a look: none when the options are
 * only `keep-alive` and `upgrade`, since Keep-Alive and Upgrade fields are dropped by kind anyway.
 * That is what nearly every upstream sends (`Connection: keep-alive`), and it spares a name
 * comparison per field. `close` stays: a field named Close is removed like any other option's.
 */
function namedTokens(tokens: readonly string[]): readonly string[] {
  for (let k = 0; k < tokens.length; k++) {
    // The parser gives these two as constant strings (framing.ts, parseConnection).
    if (tokens[k] !== 'keep-alive' && tokens[k] !== 'upgrade') return tokens;
  }
  return NO_NAMES;
}

/** Whether the field name `name` (as sent) is `lower`, ignoring case; the length is compared first. */
function nameIs(name: string, lower: string): boolean {
  return name.length === lower.length && name.toLowerCase() === lower;
}

function anyNameIs(name: string, lowerNames: readonly string[]): boolean {
  for (let k = 0; k < lowerNames.length; k++) if (nameIs(name, lowerNames[k])) return true;
  return false;
}

/**
 * The final response head sent to the client. With `bodyEnd` > `bodyStart`, the bytes
 * `resp.source[bodyStart..bodyEnd)` follow the head in the same buffer: a small response whose
 * whole body came with its head is then copied once, not once into a head and again into the
 * write (bench: http-small).
 */
export function buildResponseHead(
  resp: ResponseHead,
  conn: ClientConnection,
  route: CompiledRoute,
  action: ForwardActionConfig,
  engine: HttpEngine,
  bodyStart = 0,
  bodyEnd = 0,
): Buffer {
  const edits = plans(route, action).response;
  const idName = engine.requestIdHeader;
  const runs = keptRuns(resp, edits, idName);
  let tail = idAndEdits(runs, edits, requestIdLine(conn, idName));
  if (resp.framing === 'chunked' && conn.req!.versionMinor === 1) tail += 'transfer-encoding: chunked\r\n';
  if (!conn.keepAlive) tail += 'connection: close\r\n';
  else if (conn.req!.versionMinor === 0) tail += 'connection: keep-alive\r\n';
  return assembleHead(resp, statusLine(resp, ''), runs, `${tail}\r\n`, bodyStart, bodyEnd);
}

/** A 1xx interim head (100, 103) relayed to an HTTP/1.1 client, filtered like a final head. */
export function buildInterimHead(resp: ResponseHead, route: CompiledRoute, action: ForwardActionConfig): Buffer {
  const edits = plans(route, action).response;
  return assembleHead(resp, statusLine(resp, ''), keptRuns(resp, edits, ''), `${edits.lines}\r\n`);
}

/** The 101 head sent to the client before a tunnel: Connection and Upgrade are kept. */
export function buildUpgradeResponseHead(
  resp: ResponseHead,
  conn: ClientConnection,
  route: CompiledRoute,
  action: ForwardActionConfig,
  engine: HttpEngine,
): Buffer {
  const edits = plans(route, action).response;
  const idName = engine.requestIdHeader;
  const runs = keptRuns(resp, edits, idName);
  let tail = idAndEdits(runs, edits, requestIdLine(conn, idName));
  tail += `connection: upgrade\r\nupgrade: ${fieldValue(resp.headers, 'upgrade')}\r\n\r\n`;
  return assembleHead(resp, statusLine(resp, 'Switching Protocols'), runs, tail);
}

/** The request-ID line, unless the upstream sent that field itself, then the route's added lines. */
function idAndEdits(runs: KeptRuns, edits: HeaderEditPlan, idLine: string): string {
  return runs.hasId ? edits.lines : idLine + edits.lines;
}

/** The exchange's request-ID line: made once, for the request head and the response head both. */
function requestIdLine(conn: ClientConnection, idName: string): string {
  if (conn.requestIdLine === '') conn.requestIdLine = `${idName}: ${conn.requestId}\r\n`;
  return conn.requestIdLine;
}

/**
 * The status line to send, or null when the upstream's can be copied as it is: HTTP/1.1 with a
 * reason phrase. Others are rewritten as HTTP/1.1 (what the engine speaks to clients), with
 * `fallbackReason` or the standard phrase when the upstream gave none.
 */
function statusLine(resp: ResponseHead, fallbackReason: string): string | null {
  if (resp.versionMinor === 1 && resp.reasonEnd > resp.reasonStart) return null;
  const reason = resp.reasonEnd > resp.reasonStart ? resp.reason : fallbackReason || reasonPhrase(resp.status);
  return `HTTP/1.1 ${resp.status} ${reason}\r\n`;
}

/**
 * The upstream's field lines that go on to the client (not hop-by-hop, not named in Connection,
 * not removed by the route) as runs of consecutive lines: `[start, end)` offset pairs into
 * `resp.source`. `hasId` tells whether the field `idName` was among them. One instance, reused:
 * heads are built synchronously, one at a time.
 */
class KeptRuns {
  offsets = new Int32Array(64);
  count = 0;
  bytes = 0;
  hasId = false;
}

const RUNS = new KeptRuns();

function keptRuns(resp: ResponseHead, edits: HeaderEditPlan, idName: string): KeptRuns {
  const runs = RUNS;
  const n = resp.fieldCount;
  if (runs.offsets.length < 2 * n) runs.offsets = new Int32Array(2 * n);
  const offsets = runs.offsets;
  const tokens = namedTokens(resp.connectionTokens);
  const dropNames = edits.dropNames;
  let count = 0;
  let bytes = 0;
  let hasId = false;
  let runStart = -1;
  for (let i = 0; i < n; i++) {
    const kind = resp.fieldKind(i);
    let keep = !isHopByHopKind(kind);
    // Content-Length stays whatever Connection names: see the file comment.
    if (keep && kind !== F_CONTENT_LENGTH) {
      if (tokens.length > 0) keep = !anyFieldNameIs(resp, i, tokens);
      if (keep && dropNames.length > 0) keep = !anyFieldNameIs(resp, i, dropNames);
    }
    if (keep) {
      if (runStart < 0) runStart = resp.lineStart(i);
      if (!hasId && idName !== '' && resp.nameIs(i, idName)) hasId = true;
    } else if (runStart >= 0) {
      const end = resp.lineStart(i);
      offsets[2 * count] = runStart;
      offsets[2 * count + 1] = end;
      bytes += end - runStart;
      count++;
      runStart = -1;
    }
  }
  if (runStart >= 0) {
    const end = resp.lineEnd(n - 1);
    offsets[2 * count] = runStart;
    offsets[2 * count + 1] = end;
    bytes += end - runStart;
    count++;
  }
  runs.count = count;
  runs.bytes = bytes;
  runs.hasId = hasId;
  return runs;
}

function anyFieldNameIs(resp: ResponseHead, i: number, lowerNames: readonly string[]): boolean {
  for (let k = 0; k < lowerNames.length; k++) if (resp.nameIs(i, lowerNames[k])) return true;
  return false;
}

/**
 * The head's bytes: the status line (`status`, or the upstream's when null), the runs, then `tail`;
 * then `resp.source[bodyStart..bodyEnd)` if that is not empty.
 */
function assembleHead(
  resp: ResponseHead,
  status: string | null,
  runs: KeptRuns,
  tail: string,
  bodyStart = 0,
  bodyEnd = 0,
): Buffer {
  const source = resp.source;
  const statusBytes = status === null ? resp.fieldsStart - resp.start : status.length;
  const out = Buffer.allocUnsafe(statusBytes + runs.bytes + tail.length + (bodyEnd - bodyStart));
  const offsets = runs.offsets;
  let k = 0;
  let at: number;
  if (status !== null) at = out.write(status, 0, 'latin1');
  else if (runs.count > 0 && offsets[0] === resp.fieldsStart) {
    // The upstream's status line and the first kept run are adjacent: one copy for both.
    at = source.copy(out, 0, resp.start, offsets[1]);
    k = 1;
  } else at = source.copy(out, 0, resp.start, resp.fieldsStart);
  for (; k < runs.count; k++) at += source.copy(out, at, offsets[2 * k], offsets[2 * k + 1]);
  at += out.write(tail, at, 'latin1');
  if (bodyEnd > bodyStart) source.copy(out, at, bodyStart, bodyEnd);
  return out;
}

/** First value of a field (case-insensitive name), or ''. */
function fieldValue(headers: ReadonlyArray<string>, lower: string): string {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i].length === lower.length && headers[i].toLowerCase() === lower) return headers[i + 1];
  }
  return '';
}
