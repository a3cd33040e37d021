/**
 * Bulk throughput through a TCP forward: large responses, where copying bytes and honouring
 * backpressure dominate rather than per-exchange overhead.
 */
import { randomBytes } from 'node:crypto';
import type { Scenario, ScenarioContext } from '../lib/context.ts';
import type { ScenarioResult } from '../lib/results.ts';
import { runTcpForwardScenario, TCP_FORWARD_PEERS } from '../lib/tcp-forwards.ts';

const FILE_BYTES = 1 << 20;

/** Scenario `tcp-bulk`: 8 keep-alive connections fetching a 1 MiB file through a TCP forward. */
export const tcpBulk: Scenario = {
  name: 'tcp-bulk',
  description: 'Bulk transfer: 1 MiB responses on 8 keep-alive connections through a TCP forward.',
  peers: TCP_FORWARD_PEERS,
  run(ctx: ScenarioContext): Promise<ScenarioResult> {
    return runTcpForwardScenario(ctx, {
      name: this.name,
      description: this.description,
      load: { path: '/1m.bin', connections: 8, threads: 1 },
      primary: 'transferMiBps',
      // Random bytes: nothing on the path may profit from compressible data.
      files: { '1m.bin': randomBytes(FILE_BYTES) },
      response: '200, 1 MiB of random bytes (static file, sendfile)',
      backend: 'nginx, 1 worker, static file',
    });
  },
};
