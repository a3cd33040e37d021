import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { EventLoopMonitor } from './event-loop-monitor.ts';

test('an idle loop reads near zero lag; a blocked loop reads about the block', async () => {
  const monitor = new EventLoopMonitor(new Registry());
  try {
    await sleep(200);
    assert.ok(monitor.summary().p50Ms < 3, `idle p50 ${monitor.summary().p50Ms} ms`);
    monitor.reset();
    await sleep(30);
    const until = Date.now() + 60;
    while (Date.now() < until) {
      // Block the loop on purpose.
    }
    await sleep(30);
    const max = monitor.summary().maxMs;
    assert.ok(max >= 40 && max < 200, `max ${max} ms after a 60 ms block`);
  } finally {
    monitor.close();
  }
});
