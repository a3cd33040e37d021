/**
 * Splits an SSE byte stream at event boundaries without decoding it.
 *
 * The gateway forwards upstream bytes untouched, but only whole events: an event split across
 * chunks is held until its blank line arrives. A client therefore never receives half an event,
 * multi-byte UTF-8 characters are never cut by us (an event is whole UTF-8), and when the
 * upstream fails mid-stream the error event we append is parsed on its own instead of being
 * glued to a fragment. Upstreams send one event per chunk almost always, so the common case is
 * one `lastIndexOf` per chunk and no copy.
 */

const LF = 0x0a;
const CR = 0x0d;

/** Past this many held bytes the framer gives up on alignment and forwards as is. */
const DEFAULT_MAX_HELD_BYTES = 1 << 20;

/**
 * End (exclusive) of the last complete event in `buf`, or -1. An event ends with an empty line;
 * lines end with LF, CRLF or CR (WHATWG HTML, "Parsing an event stream").
 */
export function lastEventEnd(buf: Buffer): number {
  // The usual chunk is whole events, ending with LF LF or LF CR LF: an empty last line, so the
  // end of the buffer is the end of an event, with no search (bench: llm-stream).
  const n = buf.length;
  if (n >= 2 && buf[n - 1] === LF && (buf[n - 2] === LF || (n >= 3 && buf[n - 2] === CR && buf[n - 3] === LF))) {
    return n;
  }
  let end = -1;
  const lf = buf.lastIndexOf('\n\n');
  if (lf !== -1) end = lf + 2;
  const crlf = buf.lastIndexOf('\n\r\n');
  if (crlf !== -1 && crlf + 3 > end) end = crlf + 3;
  const cr = buf.lastIndexOf('\r\r');
  if (cr !== -1 && cr + 2 > end) end = buf[cr + 2] === LF ? cr + 3 : cr + 2;
  return end;
}

/** The line ending of the blank line that ends an event at `end` (exclusive). */
function lineEndBefore(buf: Buffer, end: number): string {
  if (buf[end - 1] === CR) return '\r';
  return end >= 2 && buf[end - 2] === CR ? '\r\n' : '\n';
}

/** Event-aligning splitter for one stream; see the file comment. */
export class SseFramer {
  /** Bytes of an incomplete event, held back; null when none. */
  #held: Buffer | null = null;
  #maxHeldBytes: number;
  /**
   * The stream's line ending (`\n`, `\r\n` or `\r`), read from the end of the first whole event
   * forwarded; null until then. An event the gateway appends uses it, so a CRLF stream stays CRLF.
   */
  lineEnd: string | null;

  constructor(maxHeldBytes = DEFAULT_MAX_HELD_BYTES) {
    this.#maxHeldBytes = maxHeldBytes;
    this.lineEnd = null;
  }

  /** Number of bytes held back (an incomplete event). */
  get heldBytes(): number {
    return this.#held === null ? 0 : this.#held.length;
  }

  /**
   * Takes the next chunk and returns the bytes ready to forward (whole events, in order), or
   * null when the chunk only extended an incomplete event.
   */
  push(chunk: Buffer): Buffer | null {
    const data = this.#held === null ? chunk : Buffer.concat([this.#held, chunk]);
    const end = lastEventEnd(data);
    if (this.lineEnd === null && end > 0) this.lineEnd = lineEndBefore(data, end);
    if (end === data.length) {
      this.#held = null;
      return data;
    }
    if (end === -1) {
      if (data.length > this.#maxHeldBytes) {
        this.#held = null;
        return data;
      }
      // Copied: the chunk's memory belongs to the HTTP client and may be reused.
      this.#held = data === chunk ? Buffer.from(chunk) : data;
      return null;
    }
    this.#held = Buffer.from(data.subarray(end));
    return data.subarray(0, end);
  }

  /** At the end of the stream: whatever is still held (an unterminated last event), or null. */
  flush(): Buffer | null {
    const held = this.#held;
    this.#held = null;
    return held;
  }
}
