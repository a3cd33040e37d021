/**
 * One connection per request through a TCP forward: accept, connect to the backend, relay one
 * small exchange both ways and tear both connections down. Measures a forward's per-connection
 * cost, where tcp-small measures its per-exchange cost. No goal names it; it is reported so the
 * cost of connection churn is on the page (docs/benchmarks.md, tcp-close).
 */
import { compare } from '../lib/compare.ts';
import type { Scenario, ScenarioContext } from '../lib/context.ts';
import { startNginxBackend } from '../lib/nginx.ts';
import type { ScenarioResult } from '../lib/results.ts';
import { TCP_FORWARD_PEERS, TCP_FORWARD_RATIOS, tcpForwardContenders } from '../lib/tcp-forwards.ts';
import type { WrkLoad } from '../lib/wrk.ts';

const LOAD: WrkLoad = { path: '/hello', connections: 64, threads: 1, headers: { Connection: 'close' } };

/** Scenario `tcp-close`: `Connection: close` on every request, `hello\n` responses, through a TCP forward. */
export const tcpClose: Scenario = {
  name: 'tcp-close',
  description: 'One connection per request (`Connection: close`), 6-byte body, through a TCP forward.',
  peers: TCP_FORWARD_PEERS,
  async run(ctx: ScenarioContext): Promise<ScenarioResult> {
    const backend = await startNginxBackend(ctx);
    const result = await compare(ctx, {
      load: LOAD,
      contenders: tcpForwardContenders(backend.port, ctx.peers.versions),
      ratios: TCP_FORWARD_RATIOS,
      primary: 'requestsPerS',
    });
    return {
      name: this.name,
      description: this.description,
      load: {
        tool: 'wrk',
        request: `GET ${LOAD.path}, Connection: close`,
        response: '200, body "hello\\n"; the backend closes, and the forward closes both connections',
        connections: LOAD.connections,
        threads: LOAD.threads,
        backend: 'nginx, 1 worker, `return 200`',
      },
      ...result,
      notes: [],
    };
  },
};
