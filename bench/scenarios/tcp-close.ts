/**
 * One connection per request through a TCP forward: accept, connect to the backend, relay one
 * small exchange both ways and tear both connections down. Measures a forward's per-connection
 * cost, where tcp-small measures its per-exchange cost. No goal names it; it is reported so the
 * cost of connection churn is on the page (docs/benchmarks.md, tcp-close).
 */
import type { Scenario, ScenarioContext } from '../lib/context.ts';
import type { ScenarioResult } from '../lib/results.ts';
import { CLOSE_PER_REQUEST, runTcpForwardScenario, TCP_FORWARD_PEERS } from '../lib/tcp-forwards.ts';

/** Scenario `tcp-close`: `Connection: close` on every request, `hello\n` responses, through a TCP forward. */
export const tcpClose: Scenario = {
  name: 'tcp-close',
  description: 'One connection per request (`Connection: close`), 6-byte body, through a TCP forward.',
  peers: TCP_FORWARD_PEERS,
  run(ctx: ScenarioContext): Promise<ScenarioResult> {
    return runTcpForwardScenario(ctx, {
      name: this.name,
      description: this.description,
      ...CLOSE_PER_REQUEST,
      backend: 'nginx, 1 worker, `return 200`',
    });
  },
};
