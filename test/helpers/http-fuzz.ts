/**
 * Shared fast-check material for the HTTP fuzz tests (the parser's and the engine's): bytes that
 * matter to HTTP framing, and byte-level mutations of valid messages.
 */
import fc from 'fast-check';

/** Bytes that matter to HTTP framing, weighted so random streams reach deep parser and engine states. */
const INTERESTING = [
  ...'\r\n\r\n :;,="\\\t0123456789abcdefABCDEF/HTTP1.GETPOSTHEADchunkedContent-LengthTransfer-EncodingHost',
]
  .map((c) => c.charCodeAt(0))
  .concat([0x00, 0x7f, 0x80, 0xff, 0x0b]);

/** One byte: usually one of the interesting ones, sometimes any. */
export const byteArb: fc.Arbitrary<number> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...INTERESTING) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
);

/** One edit of a message. */
export type Mutation = { kind: 'insert' | 'replace' | 'delete' | 'duplicate'; at: number; byte: number; len: number };

export const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('insert', 'replace', 'delete', 'duplicate'),
  at: fc.nat(),
  byte: byteArb,
  len: fc.integer({ min: 1, max: 12 }),
});

/** Applies mutations in order to a latin1 message. */
export function mutate(source: string, mutations: Mutation[]): Buffer {
  let b = Buffer.from(source, 'latin1');
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : m.at % (b.length + 1);
    if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.of(m.byte), b.subarray(at)]);
    else if (m.kind === 'replace' && at < b.length) b[at] = m.byte;
    else if (m.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
    else if (m.kind === 'duplicate') b = Buffer.concat([b.subarray(0, at + m.len), b.subarray(at)]);
  }
  return b;
}
