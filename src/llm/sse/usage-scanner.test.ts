import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findUsage } from './usage-scanner.ts';

test('reads usage from a JSON body, nested details included', () => {
  const body = JSON.stringify({
    id: 'x',
    choices: [{ message: { content: 'hi {"usage":{"prompt_tokens":99}}' } }],
    usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12, prompt_tokens_details: { cached_tokens: 1 } },
  });
  assert.deepEqual(findUsage(Buffer.from(body)), { promptTokens: 5, completionTokens: 7, totalTokens: 12 });
});

test('takes the last usage object in a stream, skipping "usage": null chunks', () => {
  const stream = [
    'data: {"choices":[{"delta":{"content":"a"}}],"usage":null}\n\n',
    'data: {"choices":[],"usage": {"prompt_tokens":3,"completion_tokens":4}}\n\n',
    'data: {"choices":[{"delta":{}}],"usage":null}\n\n',
    'data: [DONE]\n\n',
  ].join('');
  assert.deepEqual(findUsage(Buffer.from(stream)), { promptTokens: 3, completionTokens: 4, totalTokens: 7 });
});

test('none, null only, escaped text, or a truncated object: null', () => {
  assert.equal(findUsage(Buffer.from('{"id":1}')), null);
  assert.equal(findUsage(Buffer.from('{"usage":null}')), null);
  assert.equal(findUsage(Buffer.from('{"content":"say \\"usage\\":{\\"prompt_tokens\\":1}"}')), null);
  assert.equal(findUsage(Buffer.from('data: {"usage":{"prompt_tokens":1,')), null);
});

test('a marker at the very start, and a valid one before an escaped or unfinished one', () => {
  assert.deepEqual(findUsage(Buffer.from('"usage":{"prompt_tokens":2}')), {
    promptTokens: 2,
    completionTokens: 0,
    totalTokens: 2,
  });
  const stream = 'data: {"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\ndata: {"c":"\\"usage\\":{}"}\n\n';
  assert.deepEqual(findUsage(Buffer.from(stream)), { promptTokens: 1, completionTokens: 1, totalTokens: 2 });
  assert.deepEqual(findUsage(Buffer.from(`${stream}data: {"usage":{"prompt_tokens":`)), {
    promptTokens: 1,
    completionTokens: 1,
    totalTokens: 2,
  });
});
