/**
 * One connection per request through an HTTP reverse proxy: accept, parse, forward over a pooled
 * upstream connection, answer and close. Measures connection setup and teardown on the client side.
 */
import { GOAL_ROUNDS } from '../lib/compare.ts';
import type { Scenario, ScenarioContext } from '../lib/context.ts';
import { HTTP_PROXY_PEERS, LAG_GOAL, REPLY_FROM_GOAL, runHttpScenario } from '../lib/http-proxies.ts';
import type { ScenarioResult } from '../lib/results.ts';
import type { WrkLoad } from '../lib/wrk.ts';

const LOAD: WrkLoad = { path: '/small', connections: 64, threads: 1, headers: { Connection: 'close' } };

/** Scenario `http-close`: `Connection: close` on every request, 100-byte responses. */
export const httpClose: Scenario = {
  name: 'http-close',
  description: 'One connection per request (`Connection: close`), 100-byte body, through an HTTP reverse proxy.',
  peers: HTTP_PROXY_PEERS,
  run(ctx: ScenarioContext): Promise<ScenarioResult> {
    return runHttpScenario(ctx, {
      name: this.name,
      description: this.description,
      load: LOAD,
      response: '200, 100-byte text body from config; the proxy closes the client connection after it',
      goals: [REPLY_FROM_GOAL, LAG_GOAL],
      // Both sides of the goal's ratio swing by round: at 2b25b7e, Switchyard 6,400-12,300 req/s
      // and reply-from 3,960-4,620 in one run, reply-from 2,920 in the run before (bench docs).
      goalRounds: GOAL_ROUNDS,
    });
  },
};
