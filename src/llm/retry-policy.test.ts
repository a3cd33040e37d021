import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRetryAfterMs, RetryPolicy } from './retry-policy.ts';

const config = {
  maxRetries: 2,
  statuses: [429, 500, 502, 503, 504],
  onTimeout: true,
  baseDelayMs: 100,
  maxDelayMs: 1000,
  maxRetryAfterMs: 5000,
};

test('Retry-After: seconds, HTTP-date, retry-after-ms first, garbage ignored', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfterMs({ 'retry-after': '2' }, now), 2000);
  assert.equal(parseRetryAfterMs({ 'retry-after': 'Thu, 01 Jan 2026 00:00:03 GMT' }, now), 3000);
  assert.equal(parseRetryAfterMs({ 'retry-after': 'Wed, 31 Dec 2025 00:00:00 GMT' }, now), 0);
  assert.equal(parseRetryAfterMs({ 'retry-after-ms': '1500.5', 'retry-after': '9' }, now), 1501);
  assert.equal(parseRetryAfterMs({ 'retry-after': 'soon' }, now), null);
  assert.equal(parseRetryAfterMs({}, now), null);
});

test('retried statuses are exactly the configured ones', () => {
  const policy = new RetryPolicy(config);
  for (const status of [429, 500, 502, 503, 504]) assert.ok(policy.retriesStatus(status));
  for (const status of [400, 401, 404, 501, 599, 600, 999]) assert.ok(!policy.retriesStatus(status));
});

test('backoff doubles, is capped, keeps half as jitter floor, and never undercuts Retry-After', () => {
  const policy = new RetryPolicy(config);
  assert.equal(policy.delayMs(1, null, 0), 50);
  assert.equal(policy.delayMs(1, null, 1), 100);
  assert.equal(policy.delayMs(3, null, 1), 400);
  assert.equal(policy.delayMs(10, null, 1), 1000);
  assert.equal(policy.delayMs(10, null, 0), 500);
  assert.equal(policy.delayMs(1, 2000, 0.5), 2000);
  assert.equal(policy.delayMs(1, 10, 1), 100);
  assert.equal(policy.delayMs(1, 5001, 0), -1, 'longer than maxRetryAfterMs: do not wait, fall back');
});
