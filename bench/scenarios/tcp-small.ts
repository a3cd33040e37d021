/**
 * Small keep-alive HTTP exchanges through a TCP forward: the cost per read/write round trip of
 * the L4 path, where a proxy's per-chunk overhead dominates.
 */
import { compare, GOAL_ROUNDS } from '../lib/compare.ts';
import type { Scenario, ScenarioContext } from '../lib/context.ts';
import { startNginxBackend } from '../lib/nginx.ts';
import type { ScenarioResult } from '../lib/results.ts';
import { TCP_FORWARD_PEERS, TCP_FORWARD_RATIOS, tcpForwardContenders } from '../lib/tcp-forwards.ts';
import type { WrkLoad } from '../lib/wrk.ts';

const LOAD: WrkLoad = { path: '/hello', connections: 64, threads: 1 };

/** Scenario `tcp-small`: 64 keep-alive connections, `hello\n` responses, through a TCP forward. */
export const tcpSmall: Scenario = {
  name: 'tcp-small',
  description: 'Small keep-alive HTTP exchanges (6-byte body) through a TCP forward.',
  peers: TCP_FORWARD_PEERS,
  async run(ctx: ScenarioContext): Promise<ScenarioResult> {
    const backend = await startNginxBackend(ctx);
    const result = await compare(ctx, {
      load: LOAD,
      contenders: tcpForwardContenders(backend.port, ctx.peers.versions),
      ratios: TCP_FORWARD_RATIOS,
      primary: 'requestsPerS',
      goalRounds: GOAL_ROUNDS,
    });
    return {
      name: this.name,
      description: this.description,
      load: {
        tool: 'wrk',
        request: `GET ${LOAD.path}`,
        response: '200, body "hello\\n" (about 150 bytes with headers)',
        connections: LOAD.connections,
        threads: LOAD.threads,
        backend: 'nginx, 1 worker, `return 200`',
      },
      ...result,
      notes: [],
    };
  },
};
