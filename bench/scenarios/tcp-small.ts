/**
 * Small keep-alive HTTP exchanges through a TCP forward: the cost per read/write round trip of
 * the L4 path, where a proxy's per-chunk overhead dominates.
 */
import { GOAL_ROUNDS } from '../lib/compare.ts';
import type { Scenario, ScenarioContext } from '../lib/context.ts';
import type { ScenarioResult } from '../lib/results.ts';
import { runTcpForwardScenario, TCP_FORWARD_PEERS } from '../lib/tcp-forwards.ts';

/** Scenario `tcp-small`: 64 keep-alive connections, `hello\n` responses, through a TCP forward. */
export const tcpSmall: Scenario = {
  name: 'tcp-small',
  description: 'Small keep-alive HTTP exchanges (6-byte body) through a TCP forward.',
  peers: TCP_FORWARD_PEERS,
  run(ctx: ScenarioContext): Promise<ScenarioResult> {
    return runTcpForwardScenario(ctx, {
      name: this.name,
      description: this.description,
      load: { path: '/hello', connections: 64, threads: 1 },
      primary: 'requestsPerS',
      response: '200, body "hello\\n" (about 150 bytes with headers)',
      backend: 'nginx, 1 worker, `return 200`',
      goalRounds: GOAL_ROUNDS,
    });
  },
};
