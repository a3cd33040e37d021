import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FieldPolicy, reportedFieldName } from './field-policy.ts';

test('no policy compiles to null, so the gateway skips it', () => {
  assert.equal(FieldPolicy.compile(), null);
  assert.equal(FieldPolicy.compile({}, {}), null);
});

test('deny drops and reports; tools, response_format, logprobs and unknown fields pass by default', () => {
  const policy = FieldPolicy.compile({ deny: ['logit_bias', 'absent'] })!;
  const body = {
    model: 'm',
    messages: [],
    tools: [{ type: 'function' }],
    response_format: { type: 'json_object' },
    logprobs: true,
    brand_new_field: 1,
    logit_bias: {},
  };
  const changes = policy.apply(body);
  assert.deepEqual(changes, { dropped: ['logit_bias'], transformed: null, renamed: null });
  assert.deepEqual(Object.keys(body), ['model', 'messages', 'tools', 'response_format', 'logprobs', 'brand_new_field']);
});

test('allow keeps only listed fields plus the ones every endpoint needs', () => {
  const policy = FieldPolicy.compile({ allow: ['temperature'] })!;
  const body: Record<string, unknown> = {
    model: 'm',
    messages: [],
    stream: true,
    temperature: 0.2,
    seed: 1,
    user: 'u',
  };
  const changes = policy.apply(body);
  assert.deepEqual(changes.dropped, ['seed', 'user']);
  assert.deepEqual(Object.keys(body), ['model', 'messages', 'stream', 'temperature']);
});

test('transform then rename, keyed by the names the caller sent', () => {
  const policy = FieldPolicy.compile({
    rename: { max_tokens: 'max_completion_tokens' },
    transform: { cache: 'to-boolean', max_tokens: { clamp: { max: 100 } }, seed: 'to-number', stop: 'to-string' },
  })!;
  const body: Record<string, unknown> = { max_tokens: 500, cache: { ttl: 60 }, seed: '42', stop: ['x'] };
  const changes = policy.apply(body);
  assert.deepEqual(body, { max_completion_tokens: 100, cache: true, seed: 42, stop: '["x"]' });
  assert.deepEqual(changes.renamed, ['max_tokens=max_completion_tokens']);
  assert.deepEqual(changes.transformed, ['cache', 'max_tokens', 'seed', 'stop']);
});

test('dropped names chosen by the client are reported escaped, never raw, and counted past 32', () => {
  const policy = FieldPolicy.compile({ allow: ['temperature'] })!;
  const evil = 'x\r\nx-injected: yes';
  const body: Record<string, unknown> = { model: 'm', seed: 1, [evil]: 1, 'a,b': 2, héllo: 3, '50%': 4, '\ud800': 5 };
  assert.deepEqual(policy.apply(body).dropped, [
    'seed',
    'x%0D%0Ax-injected%3A%20yes',
    'a%2Cb',
    'h%C3%A9llo',
    '50%25',
    '%EF%BF%BD',
  ]);
  assert.deepEqual(Object.keys(body), ['model']);
  assert.equal(reportedFieldName('n'.repeat(100)), `${'n'.repeat(64)}%E2%80%A6`);
  const many: Record<string, unknown> = {};
  for (let i = 0; i < 40; i++) many[`f${i}`] = i;
  const dropped = policy.apply(many).dropped!;
  assert.equal(dropped.length, 33);
  assert.equal(dropped[32], '+8 more');
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), (name) => {
      assert.match(reportedFieldName(name), /^[!#$%&'*+\-.^_`|~0-9A-Za-z]*$/);
    }),
  );
});

test('a transform that changes nothing is not reported', () => {
  const policy = FieldPolicy.compile({ transform: { cache: 'to-boolean', n: { clamp: { min: 1 } } } })!;
  const changes = policy.apply({ cache: true, n: 3 });
  assert.equal(changes.transformed, null);
});

test('a model policy merges over the provider one', () => {
  const policy = FieldPolicy.compile(
    { deny: ['a'], rename: { x: 'y' }, transform: { t: 'to-string' } },
    { deny: ['b'], rename: { x: 'z' } },
  )!;
  const body: Record<string, unknown> = { a: 1, b: 2, c: 3, x: 4, t: 5 };
  const changes = policy.apply(body);
  assert.deepEqual(body, { c: 3, t: '5', z: 4 });
  assert.deepEqual(changes.dropped, ['a', 'b']);
});

test('property: deny removes exactly the denied fields present, keeps every other value untouched', () => {
  const key = fc.constantFrom<string>('a', 'b', 'c', 'model', 'tools', 'stream', 'x_y');
  fc.assert(
    fc.property(fc.dictionary(key, fc.jsonValue()), fc.uniqueArray(key, { minLength: 1 }), (body, deny) => {
      const copy: Record<string, unknown> = { ...body };
      const changes = FieldPolicy.compile({ deny })!.apply(copy);
      const expectedDropped = Object.keys(body).filter((k) => deny.includes(k));
      assert.deepEqual(changes.dropped ?? [], expectedDropped);
      for (const k of Object.keys(body)) {
        if (deny.includes(k)) assert.ok(!(k in copy));
        else assert.equal(copy[k], body[k]);
      }
    }),
  );
});
