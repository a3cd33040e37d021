/**
 * Bulk throughput through a TCP forward: large responses, where copying bytes and honouring
 * backpressure dominate rather than per-exchange overhead.
 */
import { randomBytes } from 'node:crypto';
import { compare } from '../lib/compare.ts';
import type { Scenario, ScenarioContext } from '../lib/context.ts';
import { startNginxBackend } from '../lib/nginx.ts';
import type { ScenarioResult } from '../lib/results.ts';
import { TCP_FORWARD_PEERS, TCP_FORWARD_RATIOS, tcpForwardContenders } from '../lib/tcp-forwards.ts';
import type { WrkLoad } from '../lib/wrk.ts';

const FILE_BYTES = 1 << 20;
const LOAD: WrkLoad = { path: '/1m.bin', connections: 8, threads: 1 };

/** Scenario `tcp-bulk`: 8 keep-alive connections fetching a 1 MiB file through a TCP forward. */
export const tcpBulk: Scenario = {
  name: 'tcp-bulk',
  description: 'Bulk transfer: 1 MiB responses on 8 keep-alive connections through a TCP forward.',
  peers: TCP_FORWARD_PEERS,
  async run(ctx: ScenarioContext): Promise<ScenarioResult> {
    // Random bytes: nothing on the path may profit from compressible data.
    const backend = await startNginxBackend(ctx, { '1m.bin': randomBytes(FILE_BYTES) });
    const result = await compare(ctx, {
      load: LOAD,
      contenders: tcpForwardContenders(backend.port, ctx.peers.versions),
      ratios: TCP_FORWARD_RATIOS,
      primary: 'transferMiBps',
    });
    return {
      name: this.name,
      description: this.description,
      load: {
        tool: 'wrk',
        request: `GET ${LOAD.path}`,
        response: '200, 1 MiB of random bytes (static file, sendfile)',
        connections: LOAD.connections,
        threads: LOAD.threads,
        backend: 'nginx, 1 worker, static file',
      },
      ...result,
      notes: [],
    };
  },
};
