/**
 * Responses the proxy writes itself: errors (4xx/5xx with a small body), redirects and the
 * `respond` action. Built as one string and written in one call.
 */
import { STATUS_CODES } from 'node:http';

/** Reason phrase for a status ('Unknown' when none is registered). */
export function reasonPhrase(status: number): string {
  return STATUS_CODES[status] ?? 'Unknown';
}

/**
 * Serialises a complete response.
 * @param headers extra fields as a flat [name, value, ...] list
 * @param keepAlive whether the connection stays open afterwards (else `Connection: close`)
 * @param head true for a HEAD request: fields as for GET, no body bytes
 */
export function serializeResponse(
  status: number,
  headers: ReadonlyArray<string>,
  body: string,
  keepAlive: boolean,
  head: boolean,
): string {
  let out = `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n`;
  for (let i = 0; i < headers.length; i += 2) out += `${headers[i]}: ${headers[i + 1]}\r\n`;
  out += `content-length: ${Buffer.byteLength(body)}\r\n`;
  if (!keepAlive) out += 'connection: close\r\n';
  out += '\r\n';
  return head ? out : out + body;
}

/** The small plain-text body of an error response: status line text and the error code. */
export function errorBody(status: number, code: string): string {
  return `${status} ${reasonPhrase(status)} (${code})\n`;
}

/**
 * Builds a redirect Location from a `to` template (see the `redirect` action docs): `{host}`,
 * `{port}` and `{path}` are replaced; a bare origin (`https://{host}`, no path) gets the request's
 * path and query appended, anything with a path is sent as written.
 */
export function redirectLocation(to: string, host: string, port: number, pathAndQuery: string): string {
  const location = to.replaceAll('{host}', host).replaceAll('{port}', String(port)).replaceAll('{path}', pathAndQuery);
  if (to.includes('{path}')) return location;
  const scheme = location.indexOf('://');
  const bareOrigin = scheme !== -1 && location.indexOf('/', scheme + 3) === -1;
  return bareOrigin ? location + pathAndQuery : location;
}
