/**
 * Small keep-alive exchanges through an HTTP reverse proxy: per-request overhead of parsing,
 * routing, header rewriting and upstream pooling. The headline scenario of issue 3.
 */
import { GOAL_ROUNDS } from '../lib/compare.ts';
import type { Scenario, ScenarioContext } from '../lib/context.ts';
import { HTTP_PROXY_PEERS, runHttpScenario, SMALL_KEEPALIVE_GOALS } from '../lib/http-proxies.ts';
import type { ScenarioResult } from '../lib/results.ts';
import type { WrkLoad } from '../lib/wrk.ts';

const LOAD: WrkLoad = { path: '/small', connections: 64, threads: 1 };

/** Scenario `http-small`: 64 keep-alive connections, 100-byte responses, through an HTTP proxy. */
export const httpSmall: Scenario = {
  name: 'http-small',
  description: 'Small keep-alive exchanges (100-byte body) through an HTTP reverse proxy.',
  peers: HTTP_PROXY_PEERS,
  run(ctx: ScenarioContext): Promise<ScenarioResult> {
    return runHttpScenario(ctx, {
      name: this.name,
      description: this.description,
      load: LOAD,
      response: '200, 100-byte text body from config (about 250 bytes with headers)',
      goals: SMALL_KEEPALIVE_GOALS,
      goalRounds: GOAL_ROUNDS,
    });
  },
};
