import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type DeadlineEntry, DeadlineWheel } from './deadline-wheel.ts';

class Entry implements DeadlineEntry {
  deadlineAt: number;
  firedAt = -1;
  constructor(inMs: number) {
    this.deadlineAt = performance.now() + inMs;
  }
  onDeadline(): void {
    this.firedAt = performance.now();
  }
}

/** Waits until `done()` holds, failing the test after `ms` rather than hanging. */
async function until(done: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = performance.now() + ms;
  while (!done()) {
    if (performance.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function timers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

test('fires each deadline once, never early, and stops its timer when empty', async () => {
  const before = timers();
  const wheel = new DeadlineWheel(10);
  const entries = [5, 30, 60].map((ms) => new Entry(ms));
  for (const e of entries) wheel.add(e);
  assert.equal(timers(), before + 1, 'one timer for all deadlines');
  while (entries.some((e) => e.firedAt < 0)) await sleep(5);
  for (const e of entries) assert.ok(e.firedAt >= e.deadlineAt, 'not early');
  await sleep(30);
  assert.equal(wheel.size, 0);
  assert.equal(timers(), before, 'timer stopped once idle');
  wheel.close();
});

test('a deleted deadline does not fire; a re-added one moves', async () => {
  const wheel = new DeadlineWheel(5);
  const gone = new Entry(10);
  const moved = new Entry(10);
  wheel.add(gone);
  wheel.add(moved);
  wheel.delete(gone);
  moved.deadlineAt = performance.now() + 40;
  wheel.add(moved);
  assert.equal(wheel.size, 1);
  await sleep(25);
  assert.equal(moved.firedAt, -1);
  while (moved.firedAt < 0) await sleep(5);
  assert.equal(gone.firedAt, -1);
  assert.ok(moved.firedAt >= moved.deadlineAt);
  wheel.close();
});

test('an entry re-added from its own callback fires again later', async () => {
  const wheel = new DeadlineWheel(5);
  let fired = 0;
  const entry: DeadlineEntry = {
    deadlineAt: performance.now(),
    onDeadline() {
      if (++fired < 3) {
        entry.deadlineAt = performance.now();
        wheel.add(entry);
      }
    },
  };
  wheel.add(entry);
  while (fired < 3) await sleep(5);
  assert.equal(wheel.size, 0);
  wheel.close();
});

test('close clears everything, including the timer', () => {
  const before = timers();
  const wheel = new DeadlineWheel(5);
  wheel.add(new Entry(1000));
  wheel.close();
  wheel.add(new Entry(1000));
  assert.equal(wheel.size, 0);
  assert.equal(timers(), before);
});

test('a callback that cancels or moves entries of its own bucket keeps them from firing there', async () => {
  const wheel = new DeadlineWheel(20);
  const at = performance.now() + 1;
  const fired: number[] = [];
  const firedAt = new Map<number, number>();
  let cancelled = -1;
  let moved = -1;
  const entries: DeadlineEntry[] = [0, 1, 2, 3].map((i) => ({
    deadlineAt: at,
    onDeadline() {
      fired.push(i);
      firedAt.set(i, performance.now());
      if (fired.length > 1) return;
      // The first to fire cancels one of the other three and moves another 100 ms on.
      const others = [0, 1, 2, 3].filter((j) => j !== i);
      cancelled = others[0];
      moved = others[1];
      wheel.delete(entries[cancelled]);
      entries[moved].deadlineAt = performance.now() + 100;
      wheel.add(entries[moved]);
    },
  }));
  for (const e of entries) wheel.add(e);
  assert.equal(wheel.size, 4);
  await until(() => fired.length >= 2, 'two deadlines');
  await sleep(30);
  assert.equal(fired.length, 2, 'the first and the one left alone fire in the bucket');
  assert.ok(!fired.includes(cancelled) && !fired.includes(moved));
  assert.equal(wheel.size, 1, 'the moved entry waits for its new deadline');
  await until(() => fired.length >= 3, 'the moved deadline');
  assert.equal(fired[2], moved);
  assert.ok(firedAt.get(moved)! >= entries[moved].deadlineAt);
  assert.ok(!fired.includes(cancelled));
  assert.equal(wheel.size, 0);
  wheel.close();
});

test('many deadlines added and cancelled in any order keep the count and fire only the rest', async () => {
  const wheel = new DeadlineWheel(5);
  const entries = Array.from({ length: 300 }, (_, i) => new Entry(5 + (i % 7) * 3));
  for (const e of entries) wheel.add(e);
  // Cancel every third, the last added first: removals from each bucket's list at its end and middle.
  const cancelled = entries.filter((_, i) => i % 3 === 0).reverse();
  for (const e of cancelled) wheel.delete(e);
  for (const e of cancelled) wheel.delete(e);
  assert.equal(wheel.size, 200);
  await until(() => wheel.size <= 0, 'every deadline');
  for (const [i, e] of entries.entries()) {
    if (i % 3 === 0) assert.equal(e.firedAt, -1, `entry ${i} was cancelled`);
    else assert.ok(e.firedAt >= e.deadlineAt, `entry ${i} fired, not early`);
  }
  wheel.close();
});
