/**
 * Errors in the shape OpenAI's API uses, `{"error":{"message","type","code","param"}}`, with a
 * Switchyard registry code as `code`, so the official clients surface them as `APIError`s.
 */
import type { SwitchyardError } from '../errors.ts';
import type { LlmResponse } from './types.ts';

/** OpenAI's error `type` for an HTTP status. */
export function openAiErrorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500 || status === 0) return 'server_error';
  return 'invalid_request_error';
}

/** The JSON error body for `error`; `param` names the offending request field, if any. */
export function openAiErrorBody(error: SwitchyardError, param: string | null = null): string {
  return JSON.stringify({
    error: { message: error.message, type: openAiErrorType(error.status), code: error.code, param },
  });
}

/** The response side the helpers below need (a subset of {@link LlmResponse}). */
type ErrorSink = Pick<LlmResponse, 'writeHead' | 'end' | 'destroyed' | 'headersSent'>;

/**
 * Answers with `error` in OpenAI's shape and the error's status; adds `Retry-After` when
 * `retryAfterS` is given. Does nothing on a response already started or gone.
 */
export function writeOpenAiError(
  res: ErrorSink,
  error: SwitchyardError,
  param: string | null = null,
  retryAfterS = 0,
  extraHeaders: Record<string, string> | null = null,
): void {
  if (res.destroyed || res.headersSent) return;
  const body = openAiErrorBody(error, param);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'x-switchyard-error': error.code,
  };
  if (retryAfterS > 0) headers['retry-after'] = String(retryAfterS);
  if (extraHeaders !== null) Object.assign(headers, extraHeaders);
  res.writeHead(error.status, headers);
  res.end(body);
}
