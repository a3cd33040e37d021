/**
 * Extracts the data of a chunked body whose bytes a ChunkedScanner has already validated, for
 * the one case the engine must re-frame a body: a chunked response to an HTTP/1.0 client, which
 * cannot read chunked framing (RFC 9112 §6.1) and gets the data close-delimited instead.
 * Lenient by design: validation is the scanner's job.
 */

const SIZE = 0;
const SIZE_LINE = 1;
const DATA = 2;
const DATA_END = 3;
const TRAILERS = 4;
const DONE = 5;

/** Streaming chunked-body data extractor. */
export class ChunkedDecoder {
  state: number;
  size: number;
  remaining: number;
  /** Bytes of the current trailer line (0 at a line start), to spot the empty line that ends it. */
  lineBytes: number;

  constructor() {
    this.state = SIZE;
    this.size = 0;
    this.remaining = 0;
    this.lineBytes = 0;
  }

  reset(): void {
    this.state = SIZE;
    this.size = 0;
    this.remaining = 0;
    this.lineBytes = 0;
  }

  /** Calls `emit` with each run of data bytes in `buf[start, end)`. */
  decode(buf: Buffer, start: number, end: number, emit: (data: Buffer) => void): void {
    let p = start;
    while (p < end) {
      switch (this.state) {
        case SIZE: {
          const c = buf[p];
          if (c === 0x3b /* ; */ || c === 0x0d) this.state = SIZE_LINE;
          else this.size = this.size * 16 + Number.parseInt(String.fromCharCode(c), 16);
          p++;
          break;
        }
        case SIZE_LINE:
          if (buf[p] === 0x0a) {
            if (this.size === 0) {
              this.state = TRAILERS;
              this.lineBytes = 0;
            } else {
              this.state = DATA;
              this.remaining = this.size;
            }
            this.size = 0;
          }
          p++;
          break;
        case DATA: {
          const n = Math.min(this.remaining, end - p);
          emit(buf.subarray(p, p + n));
          this.remaining -= n;
          p += n;
          if (this.remaining === 0) this.state = DATA_END;
          break;
        }
        case DATA_END:
          // CR LF after the data.
          if (buf[p] === 0x0a) this.state = SIZE;
          p++;
          break;
        case TRAILERS:
          if (buf[p] === 0x0a) {
            if (this.lineBytes === 0) this.state = DONE;
            this.lineBytes = 0;
          } else if (buf[p] !== 0x0d) {
            this.lineBytes++;
          }
          p++;
          break;
        default:
          return;
      }
    }
  }
}
