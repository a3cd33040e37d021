import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConcurrencyLimiter, type LimiterWaiter } from './concurrency-limiter.ts';
import { DeadlineWheel } from './deadline-wheel.ts';

/** A waiter that records what happened to it. */
class Waiter implements LimiterWaiter {
  state: 'waiting' | 'slot' | 'timeout' = 'waiting';
  onSlot(): void {
    this.state = 'slot';
  }
  onQueueTimeout(): void {
    this.state = 'timeout';
  }
}

function limiter(max: number, queue = 10, maxWaitMs = 1000, wheel = new DeadlineWheel(5)): ConcurrencyLimiter {
  return new ConcurrencyLimiter({ max, queue, maxWaitMs, adaptive: true, wheel });
}

test('grants up to the limit, then queues FIFO, then refuses when the queue is full', () => {
  const wheel = new DeadlineWheel(5);
  const l = limiter(2, 2, 1000, wheel);
  assert.equal(l.acquire(new Waiter()), 'granted');
  assert.equal(l.acquire(new Waiter()), 'granted');
  const a = new Waiter();
  const b = new Waiter();
  assert.equal(l.acquire(a), 'queued');
  assert.equal(l.acquire(b), 'queued');
  assert.equal(l.acquire(new Waiter()), 'full');
  assert.deepEqual([l.inFlight, l.queued, l.stats().rejectedFull], [2, 2, 1]);
  l.release('other', l.epoch);
  assert.deepEqual([a.state, b.state], ['slot', 'waiting']);
  l.release('other', l.epoch);
  assert.equal(b.state, 'slot');
  assert.equal(l.inFlight, 2);
  wheel.close();
});

test('a queued waiter times out after maxWaitMs, not before', async () => {
  const wheel = new DeadlineWheel(5);
  const l = limiter(1, 5, 40, wheel);
  l.acquire(new Waiter());
  const w = new Waiter();
  const started = performance.now();
  l.acquire(w);
  while (w.state === 'waiting') await sleep(5);
  assert.equal(w.state, 'timeout');
  assert.ok(performance.now() - started >= 40);
  assert.equal(l.queued, 0);
  assert.equal(l.stats().rejectedTimeout, 1);
  assert.equal(wheel.size, 0);
  wheel.close();
});

test('an expired waiter (its request deadline came first) leaves the queue and counts as a timeout', () => {
  const wheel = new DeadlineWheel(5);
  const l = limiter(1, 5, 10_000, wheel);
  l.acquire(new Waiter());
  const w = new Waiter();
  l.acquire(w);
  l.expire(w);
  l.expire(w);
  assert.equal(w.state, 'waiting', 'no callback');
  assert.equal(l.queued, 0);
  assert.equal(l.stats().rejectedTimeout, 1, 'counted once');
  assert.equal(wheel.size, 0);
  wheel.close();
});

test('a cancelled waiter gets no callback and leaves its place to the next', async () => {
  const wheel = new DeadlineWheel(5);
  const l = limiter(1, 5, 1000, wheel);
  l.acquire(new Waiter());
  const a = new Waiter();
  const b = new Waiter();
  l.acquire(a);
  l.acquire(b);
  l.cancel(a);
  l.release('success', l.epoch);
  assert.deepEqual([a.state, b.state], ['waiting', 'slot']);
  wheel.close();
});

test('AIMD: one halving per window of 429s, +1 per window of successes, bounded by 1 and max', () => {
  const wheel = new DeadlineWheel(5);
  const l = limiter(8, 100, 1000, wheel);
  const epochs: number[] = [];
  for (let i = 0; i < 8; i++) {
    assert.equal(l.acquire(new Waiter()), 'granted');
    epochs.push(l.epoch);
  }
  // All eight were in flight together: their 429s are one congestion signal.
  for (const epoch of epochs) l.release('rate-limited', epoch);
  assert.equal(l.limit, 4);
  // Further 429s, each on a slot taken after the previous cut, halve each time down to 1.
  for (const expected of [2, 1, 1]) {
    l.acquire(new Waiter());
    l.release('rate-limited', l.epoch);
    assert.equal(l.limit, expected);
  }
  // Recovery: a full window (limit) of successes adds one.
  let rounds = 0;
  while (l.limit < 8) {
    l.acquire(new Waiter());
    l.release('success', l.epoch);
    rounds++;
  }
  assert.equal(rounds, 1 + 2 + 3 + 4 + 5 + 6 + 7);
  l.acquire(new Waiter());
  l.release('success', l.epoch);
  assert.equal(l.limit, 8, 'never above max');
  wheel.close();
});

test('a shrunk limit holds back queued waiters until enough slots are released', () => {
  const wheel = new DeadlineWheel(5);
  const l = limiter(4, 10, 1000, wheel);
  const epochs = [0, 1, 2, 3].map(() => {
    l.acquire(new Waiter());
    return l.epoch;
  });
  const queued = new Waiter();
  l.acquire(queued);
  l.release('rate-limited', epochs[0]);
  assert.equal(l.limit, 2);
  l.release('other', epochs[1]);
  assert.equal(queued.state, 'waiting', 'two in flight at limit two');
  l.release('other', epochs[2]);
  assert.equal(queued.state, 'slot');
  wheel.close();
});

test('close drops waiters and leaves no timer', () => {
  const wheel = new DeadlineWheel(5);
  const l = limiter(1, 5, 1000, wheel);
  l.acquire(new Waiter());
  const w = new Waiter();
  l.acquire(w);
  assert.equal(wheel.size, 1);
  l.close();
  assert.equal(wheel.size, 0);
  assert.equal(w.state, 'waiting');
  wheel.close();
});
