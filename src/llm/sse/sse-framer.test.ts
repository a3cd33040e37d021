import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { lastEventEnd, SseFramer } from './sse-framer.ts';

/** Feeds `stream` cut at `cuts` and returns what the framer released, piece by piece. */
function run(stream: Buffer, cuts: number[]): Buffer[] {
  const framer = new SseFramer();
  const out: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < stream.length)].sort((a, b) => a - b).concat(stream.length)) {
    if (cut <= from) continue;
    const ready = framer.push(stream.subarray(from, cut));
    if (ready !== null) out.push(Buffer.from(ready));
    from = cut;
  }
  const rest = framer.flush();
  if (rest !== null) out.push(rest);
  return out;
}

const event = fc
  .array(fc.string({ unit: 'grapheme', minLength: 0, maxLength: 12 }), { minLength: 1, maxLength: 3 })
  .map((lines) => lines.map((l) => `data: ${l.replace(/[\r\n]/g, ' ')}`));

test('event boundaries with LF, CRLF and CR line endings', () => {
  assert.equal(lastEventEnd(Buffer.from('data: a\n\ndata: b')), 9);
  assert.equal(lastEventEnd(Buffer.from('data: a\r\n\r\ndata: b\r\n')), 11);
  assert.equal(lastEventEnd(Buffer.from('data: a\r\rdata: b')), 9);
  assert.equal(lastEventEnd(Buffer.from('data: a\r\r\n')), 10);
  assert.equal(lastEventEnd(Buffer.from('data: a\n')), -1);
  assert.equal(lastEventEnd(Buffer.from('data: a\r\n\r')), -1);
  // Ending with an empty line (the common case, answered without a search).
  assert.equal(lastEventEnd(Buffer.from('data: a\n\n')), 9);
  assert.equal(lastEventEnd(Buffer.from('data: a\r\n\n')), 10);
  assert.equal(lastEventEnd(Buffer.from('data: a\r\n\r\n')), 11);
  assert.equal(lastEventEnd(Buffer.from('data: a\n\r\n')), 10);
  assert.equal(lastEventEnd(Buffer.from('data: a\r\r\n')), 10);
  assert.equal(lastEventEnd(Buffer.from('\n\n')), 2);
  assert.equal(lastEventEnd(Buffer.from('\r\n')), -1);
  assert.equal(lastEventEnd(Buffer.from('\n')), -1);
});

test('holds a split event until its blank line, then releases it whole', () => {
  const framer = new SseFramer();
  assert.equal(framer.push(Buffer.from('data: {"a":')), null);
  assert.equal(framer.heldBytes, 11);
  assert.equal(framer.push(Buffer.from('1}\n')), null);
  assert.equal(framer.push(Buffer.from('\ndata: {"b"'))?.toString(), 'data: {"a":1}\n\n');
  assert.equal(framer.push(Buffer.from(':2}\n\n'))?.toString(), 'data: {"b":2}\n\n');
  assert.equal(framer.flush(), null);
});

test("remembers the stream's line ending from its first whole event", () => {
  for (const [bytes, eol] of [
    ['data: a\n\n', '\n'],
    ['data: a\r\n\r\n', '\r\n'],
    ['data: a\r\r', '\r'],
  ]) {
    const framer = new SseFramer();
    assert.equal(framer.lineEnd, null);
    assert.equal(framer.push(Buffer.from(bytes.slice(0, 4))), null);
    assert.equal(framer.lineEnd, null, 'not known from part of an event');
    framer.push(Buffer.from(bytes.slice(4)));
    assert.equal(framer.lineEnd, eol);
  }
});

test('gives up alignment past its cap rather than buffer without bound', () => {
  const framer = new SseFramer(16);
  assert.equal(framer.push(Buffer.from('data: 0123456789')), null);
  assert.equal(framer.push(Buffer.from('abcdef'))?.toString(), 'data: 0123456789abcdef');
});

for (const eol of ['\n', '\r\n']) {
  test(`property (${JSON.stringify(eol)}): any cut points give back the same bytes, in whole events`, () => {
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(400)), (events, cuts) => {
        const text = events.map((lines) => lines.join(eol) + eol + eol).join('');
        const stream = Buffer.from(text);
        const pieces = run(stream, cuts);
        assert.deepEqual(Buffer.concat(pieces), stream, 'bytes unchanged');
        for (const piece of pieces) {
          assert.ok(piece.toString().endsWith(eol + eol), 'every release ends an event');
          assert.deepEqual(Buffer.from(piece.toString()), piece, 'valid UTF-8: no character cut');
        }
      }),
    );
  });
}
