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
