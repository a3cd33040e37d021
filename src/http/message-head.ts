/**
 * Serialising the heads the engine sends: the request head to the upstream and the response
 * head to the client, with hop-by-hop fields removed (RFC 9110 §7.6.1), X-Forwarded-* and
 * Forwarded set, the request ID and the route's header edits applied.
 *
 * Hot path: one string built by concatenation per head (V8 ropes, flattened once by the write),
 * names lower-cased once and looked up in a Map of fields that need handling.
 */
import type { ForwardActionConfig, HttpConfig } from '../config/schema.ts';
import type { CompiledRoute } from '../route/route-table.ts';
import { type ClientConnection, pathAndQuery } from './client-connection.ts';
import type { HttpEngine } from './http-engine.ts';
import { reasonPhrase } from './local-response.ts';
import type { RequestHead, ResponseHead } from './parser/index.ts';

// What to do with a field when forwarding.
const DROP = 1;
const HOST = 2;
const XFF = 3;
const XFP = 4;
const XFH = 5;
const FORWARDED = 6;

/** Fields never forwarded in either direction: hop-by-hop, or framing we set ourselves. */
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
];

const REQUEST_FIELDS = new Map<string, number>([
  ...HOP_BY_HOP.map((name) => [name, DROP] as [string, number]),
  ['host', HOST],
  ['x-forwarded-for', XFF],
  ['x-forwarded-proto', XFP],
  ['x-forwarded-host', XFH],
  ['forwarded', FORWARDED],
]);

const RESPONSE_FIELDS = new Map<string, number>(HOP_BY_HOP.map((name) => [name, DROP] as [string, number]));

/** A route's header edits, compiled once per route (cached on the route object). */
export class HeaderEditPlan {
  /** Lower-cased names removed or replaced. */
  readonly drop: ReadonlySet<string>;
  /** Serialised `name: value\r\n` lines appended. */
  readonly lines: string;

  constructor(edits: ForwardActionConfig['requestHeaders']) {
    const drop = new Set<string>();
    let lines = '';
    for (const name of edits?.remove ?? []) drop.add(name.toLowerCase());
    for (const [name, value] of Object.entries(edits?.set ?? {})) {
      drop.add(name.toLowerCase());
      lines += `${name}: ${value}\r\n`;
    }
    for (const [name, value] of Object.entries(edits?.add ?? {})) lines += `${name}: ${value}\r\n`;
    this.drop = drop;
    this.lines = lines;
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

function isConnectionToken(tokens: readonly string[], lower: string): boolean {
  for (let i = 0; i < tokens.length; i++) if (tokens[i] === lower) return true;
  return false;
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
  const tokens = req.connectionTokens;
  const headers = req.headers;
  let out = `${req.method} ${pathAndQuery(req)} ${http10 ? 'HTTP/1.0' : 'HTTP/1.1'}\r\n`;
  let xff: string | null = null;
  let xfp: string | null = null;
  let xfh: string | null = null;
  let forwarded: string | null = null;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    const lower = name.toLowerCase();
    const kind = REQUEST_FIELDS.get(lower);
    if (kind !== undefined) {
      if (kind === XFF) {
        if (trusted) xff = xff === null ? headers[i + 1] : `${xff}, ${headers[i + 1]}`;
      } else if (kind === XFP) {
        if (trusted) xfp = headers[i + 1];
      } else if (kind === XFH) {
        if (trusted) xfh = headers[i + 1];
      } else if (kind === FORWARDED) {
        if (trusted) forwarded = forwarded === null ? headers[i + 1] : `${forwarded}, ${headers[i + 1]}`;
      }
      continue;
    }
    if (lower === idName || (tokens.length > 0 && isConnectionToken(tokens, lower)) || edits.drop.has(lower)) continue;
    out += `${name}: ${headers[i + 1]}\r\n`;
  }
  const clientIp = conn.clientIp;
  const host = req.host;
  const proto = conn.match.tls ? 'https' : 'http';
  const hostHeader = action.hostHeader ?? 'preserve';
  if (hostHeader === 'preserve' && host !== null) out += `host: ${host}\r\n`;
  else if (hostHeader === 'preserve' || hostHeader === 'target') out += `host: ${conn.target!.key}\r\n`;
  else out += `host: ${hostHeader}\r\n`;
  out += `x-forwarded-for: ${xff === null ? clientIp : `${xff}, ${clientIp}`}\r\n`;
  out += `x-forwarded-proto: ${xfp ?? proto}\r\n`;
  if (xfh !== null || host !== null) out += `x-forwarded-host: ${xfh ?? host}\r\n`;
  if (http.forwardedHeader) {
    const forIp = clientIp.includes(':') ? `"[${clientIp}]"` : clientIp;
    const element = `for=${forIp};proto=${proto}${host !== null ? `;host="${host}"` : ''}`;
    out += `forwarded: ${forwarded === null ? element : `${forwarded}, ${element}`}\r\n`;
  }
  out += `${idName}: ${conn.requestId}\r\n`;
  out += edits.lines;
  if (req.chunked) out += 'transfer-encoding: chunked\r\n';
  if (req.upgrade) {
    out += `connection: upgrade\r\nupgrade: ${fieldValue(headers, 'upgrade')}\r\n`;
  } else if (http10) {
    // An HTTP/1.0 request goes upstream as 1.0 so the response is never chunked for a 1.0 client.
    out += 'connection: close\r\n';
  }
  return `${out}\r\n`;
}

/** The final response head sent to the client. */
export function buildResponseHead(
  resp: ResponseHead,
  conn: ClientConnection,
  route: CompiledRoute,
  action: ForwardActionConfig,
  engine: HttpEngine,
): string {
  let out = `HTTP/1.1 ${resp.status} ${resp.reason || reasonPhrase(resp.status)}\r\n`;
  out += responseFields(resp, conn, route, action, engine);
  if (resp.framing === 'chunked' && conn.req!.versionMinor === 1) out += 'transfer-encoding: chunked\r\n';
  if (!conn.keepAlive) out += 'connection: close\r\n';
  else if (conn.req!.versionMinor === 0) out += 'connection: keep-alive\r\n';
  return `${out}\r\n`;
}

/** A 1xx interim head (100, 103) relayed to an HTTP/1.1 client, filtered like a final head. */
export function buildInterimHead(resp: ResponseHead, route: CompiledRoute, action: ForwardActionConfig): string {
  const kept = keptResponseFields(resp, plans(route, action).response, '');
  return `HTTP/1.1 ${resp.status} ${resp.reason || reasonPhrase(resp.status)}\r\n${kept.out}\r\n`;
}

/** The 101 head sent to the client before a tunnel: Connection and Upgrade are kept. */
export function buildUpgradeResponseHead(
  resp: ResponseHead,
  conn: ClientConnection,
  route: CompiledRoute,
  action: ForwardActionConfig,
  engine: HttpEngine,
): string {
  let out = `HTTP/1.1 101 ${resp.reason || 'Switching Protocols'}\r\n`;
  out += responseFields(resp, conn, route, action, engine);
  out += `connection: upgrade\r\nupgrade: ${fieldValue(resp.headers, 'upgrade')}\r\n`;
  return `${out}\r\n`;
}

function responseFields(
  resp: ResponseHead,
  conn: ClientConnection,
  route: CompiledRoute,
  action: ForwardActionConfig,
  engine: HttpEngine,
): string {
  const edits = plans(route, action).response;
  const idName = engine.requestIdHeader;
  const kept = keptResponseFields(resp, edits, idName);
  return kept.hasId ? kept.out + edits.lines : `${kept.out}${idName}: ${conn.requestId}\r\n${edits.lines}`;
}

/**
 * The upstream's fields that go on to the client: not hop-by-hop, not named in Connection, not
 * removed by the route. `hasId` tells whether the field `idName` was among them.
 */
function keptResponseFields(
  resp: ResponseHead,
  edits: HeaderEditPlan,
  idName: string,
): { out: string; hasId: boolean } {
  const tokens = resp.connectionTokens;
  const headers = resp.headers;
  let out = '';
  let hasId = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    const lower = name.toLowerCase();
    if (
      RESPONSE_FIELDS.has(lower) ||
      (tokens.length > 0 && isConnectionToken(tokens, lower)) ||
      edits.drop.has(lower)
    ) {
      continue;
    }
    if (lower === idName) hasId = true;
    out += `${name}: ${headers[i + 1]}\r\n`;
  }
  return { out, hasId };
}

/** First value of a field (case-insensitive name), or ''. */
function fieldValue(headers: ReadonlyArray<string>, lower: string): string {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i].length === lower.length && headers[i].toLowerCase() === lower) return headers[i + 1];
  }
  return '';
}
