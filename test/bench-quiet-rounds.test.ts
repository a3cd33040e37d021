/**
 * The bench's ratios over quiet rounds (bench/lib/quiet-rounds.ts): rounds are paired by index,
 * only rounds where both contenders had little host steal count, and results without steal
 * figures give none.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { median, QUIET_STEAL_PERCENT, quietRoundRatios } from '../bench/lib/quiet-rounds.ts';
import type { ContenderResult, RoundResult } from '../bench/lib/results.ts';

function round(requestsPerS: number, p99: number, steal: number | null | undefined): RoundResult {
  return {
    durationS: 5,
    requests: requestsPerS * 5,
    bytes: 0,
    requestsPerS,
    transferMiBps: 0,
    errors: { connect: 0, read: 0, write: 0, status: 0, timeout: 0 },
    latencyUs: { min: 0, mean: 0, stdev: 0, max: 0, p50: 0, p90: 0, p99, p999: 0 },
    proxyCpuS: 1,
    ...(steal === undefined ? {} : { hostStealPercent: steal }),
  };
}

function contender(name: string, rounds: RoundResult[], error: string | null = null): ContenderResult {
  return {
    name,
    role: name === 'switchyard' ? 'subject' : 'peer',
    description: name,
    error,
    rounds,
    summary: null,
    memory: { idle: null, loaded: null },
    eventLoopLagP99Ms: null,
    extra: {},
  };
}

test('median of odd and even counts', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
});

test('only rounds quiet for both count, paired by index', () => {
  const q = QUIET_STEAL_PERCENT;
  const contenders = [
    contender('switchyard', [round(80, 300, 0), round(10, 900, q + 40), round(90, 200, 1), round(70, 400, 2)]),
    // Round 4 is quiet for Switchyard but not for nginx: left out too.
    contender('nginx', [round(100, 200, 1), round(100, 200, 0), round(100, 100, 0), round(100, 100, q)]),
  ];
  const r = quietRoundRatios(contenders, 'switchyard', 'nginx');
  assert.ok(r !== null);
  assert.equal(r.rounds, 2);
  assert.equal(r.recorded, 4);
  assert.ok(Math.abs((r.requestsPerS ?? 0) - 0.85) < 1e-9, `req/s ratio ${r.requestsPerS}`);
  assert.ok(Math.abs((r.p99 ?? 0) - 1.75) < 1e-9, `p99 ratio ${r.p99}`);
});

test('no steal figures, or a failed contender, give no quiet ratios; no quiet round gives nulls', () => {
  const old = [contender('switchyard', [round(80, 300, undefined)]), contender('nginx', [round(100, 200, undefined)])];
  assert.equal(quietRoundRatios(old, 'switchyard', 'nginx'), null);
  const failed = [contender('switchyard', [round(80, 300, 0)]), contender('nginx', [round(100, 200, 0)], 'start: x')];
  assert.equal(quietRoundRatios(failed, 'switchyard', 'nginx'), null);
  const busy = [contender('switchyard', [round(80, 300, 50)]), contender('nginx', [round(100, 200, 0)])];
  assert.deepEqual(quietRoundRatios(busy, 'switchyard', 'nginx'), {
    subject: 'switchyard',
    reference: 'nginx',
    rounds: 0,
    recorded: 1,
    requestsPerS: null,
    p99: null,
  });
});
