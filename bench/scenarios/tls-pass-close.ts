/**
 * One connection per request through a TLS passthrough forward: accept, peek the ClientHello
 * for its SNI, pick the route, connect to the backend, relay a full TLS 1.3 handshake and one
 * small exchange, and tear both connections down. Measures the per-connection cost of SNI
 * routing, where tls-pass-small measures the per-exchange cost. SNI reaches the proxies as the
 * URL host wrk connects to, `127.0.0.1` (bench/lib/tls-forwards.ts); the backend allows no
 * session resumption, so every handshake is a full one. On the 2-core machine wrk's one thread,
 * doing the client side of each handshake, is the bottleneck (a full core in the first smoke
 * runs, with every proxy well below), so proxy CPU per request compares the forwards better
 * than requests/s does.
 */
import type { Scenario, ScenarioContext } from '../lib/context.ts';
import type { ScenarioResult } from '../lib/results.ts';
import { CLOSE_PER_REQUEST } from '../lib/tcp-forwards.ts';
import { runTlsPassthroughScenario, TLS_PASSTHROUGH_PEERS } from '../lib/tls-forwards.ts';

/** Scenario `tls-pass-close`: `Connection: close` on every HTTPS request, so a TLS handshake and an SNI lookup each. */
export const tlsPassClose: Scenario = {
  name: 'tls-pass-close',
  description:
    'One connection and full TLS handshake per request (`Connection: close`), 6-byte body, through a TLS passthrough forward routed by SNI.',
  peers: TLS_PASSTHROUGH_PEERS,
  run(ctx: ScenarioContext): Promise<ScenarioResult> {
    return runTlsPassthroughScenario(ctx, {
      name: this.name,
      description: this.description,
      ...CLOSE_PER_REQUEST,
    });
  },
};
