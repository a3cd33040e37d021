/**
 * Maps what undici or the network reports for a failed provider call to a registry error and a
 * retry decision.
 */
import { SwitchyardError } from '../errors.ts';
import type { ProviderRuntime } from './provider-runtime.ts';

/** Network failures after which the same request may well succeed on a new connection. */
const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** A failed call as the retry logic sees it. */
export interface UpstreamErrorInfo {
  error: SwitchyardError;
  retryable: boolean;
}

/**
 * Classifies `cause`.
 * @param responseStarted whether response headers had arrived (a break then is a broken
 * response, not a failure to connect).
 */
export function classifyUpstreamError(
  cause: Error,
  provider: ProviderRuntime,
  responseStarted: boolean,
): UpstreamErrorInfo {
  const code = (cause as { code?: unknown }).code;
  const options = { cause };
  if (code === 'UND_ERR_HEADERS_TIMEOUT') {
    return {
      error: new SwitchyardError(
        'SY_UPS_FIRST_BYTE_TIMEOUT',
        { provider: provider.id, timeoutMs: provider.firstByteMs },
        options,
      ),
      retryable: provider.retry.onTimeout,
    };
  }
  if (code === 'UND_ERR_BODY_TIMEOUT') {
    return {
      error: new SwitchyardError('SY_UPS_IDLE_TIMEOUT', { provider: provider.id, timeoutMs: provider.idleMs }, options),
      retryable: provider.retry.onTimeout,
    };
  }
  const network = typeof code === 'string' && (NETWORK_CODES.has(code) || code.startsWith('HPE_'));
  const detail = typeof code === 'string' ? `${code}: ${cause.message}` : cause.message;
  const error = responseStarted
    ? new SwitchyardError('SY_UPS_STREAM_BROKEN', { provider: provider.id, detail }, options)
    : new SwitchyardError('SY_UPS_CONNECT', { provider: provider.id, detail }, options);
  return { error, retryable: network };
}
