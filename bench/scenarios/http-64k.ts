/**
 * 64 KiB keep-alive responses through an HTTP reverse proxy: body forwarding and backpressure,
 * with the per-request overhead still visible.
 */
import { randomBytes } from 'node:crypto';
import type { Scenario, ScenarioContext } from '../lib/context.ts';
import { HTTP_PROXY_PEERS, LAG_GOAL, REPLY_FROM_GOAL, runHttpScenario } from '../lib/http-proxies.ts';
import type { ScenarioResult } from '../lib/results.ts';
import type { WrkLoad } from '../lib/wrk.ts';

const FILE_BYTES = 64 * 1024;
const LOAD: WrkLoad = { path: '/64k.bin', connections: 64, threads: 1 };

/** Scenario `http-64k`: 64 keep-alive connections fetching a 64 KiB file through an HTTP proxy. */
export const http64k: Scenario = {
  name: 'http-64k',
  description: '64 KiB keep-alive responses through an HTTP reverse proxy.',
  peers: HTTP_PROXY_PEERS,
  run(ctx: ScenarioContext): Promise<ScenarioResult> {
    return runHttpScenario(ctx, {
      name: this.name,
      description: this.description,
      load: LOAD,
      // Random bytes: nothing on the path may profit from compressible data.
      files: { '64k.bin': randomBytes(FILE_BYTES) },
      response: '200, 64 KiB of random bytes (static file, sendfile)',
      goals: [REPLY_FROM_GOAL, LAG_GOAL],
    });
  },
};
