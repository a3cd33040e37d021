/**
 * Finds token usage in response bytes without parsing the whole response: the last
 * `"usage":{...}` object is located with a native byte search and only that object is parsed.
 * Works on JSON bodies (usage sits at the end) and on SSE streams (the final chunk carries it
 * when the request set `stream_options.include_usage`).
 */

/** Token counts reported by a provider. */
export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

const MARKER = Buffer.from('"usage"');
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN = 0x7b;
const CLOSE = 0x7d;

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

/** Index just past the `}` closing the object that opens at `start`, or -1 if it is not complete. */
function objectEnd(buf: Buffer, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < buf.length; i++) {
    const byte = buf[i];
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) inString = true;
    else if (byte === OPEN) depth++;
    else if (byte === CLOSE && --depth === 0) return i + 1;
  }
  return -1;
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

/**
 * The last usage object in `buf`, or null when there is none (or only `"usage":null`).
 * A `"usage"` inside a JSON string is escaped (`\"usage\"`) and so never matches.
 */
export function findUsage(buf: Buffer): TokenUsage | null {
  let at = buf.lastIndexOf(MARKER);
  while (at !== -1) {
    if (at === 0 || buf[at - 1] !== BACKSLASH) {
      let i = at + MARKER.length;
      while (i < buf.length && isSpace(buf[i])) i++;
      if (buf[i] === 0x3a) {
        i++;
        while (i < buf.length && isSpace(buf[i])) i++;
        if (buf[i] === OPEN) {
          const end = objectEnd(buf, i);
          if (end !== -1) {
            try {
              const usage = JSON.parse(buf.toString('utf8', i, end)) as Record<string, unknown>;
              const promptTokens = count(usage.prompt_tokens);
              const completionTokens = count(usage.completion_tokens);
              const total = count(usage.total_tokens);
              return { promptTokens, completionTokens, totalTokens: total || promptTokens + completionTokens };
            } catch {
              return null;
            }
          }
        }
      }
    }
    at = at === 0 ? -1 : buf.lastIndexOf(MARKER, at - 1);
  }
  return null;
}
