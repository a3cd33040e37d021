/**
 * Small keep-alive HTTPS exchanges through a TLS passthrough forward routed by SNI: after one
 * handshake per connection, the cost per TLS record relayed each way. The ClientHello is peeked
 * once per connection, so this is tcp-small's per-exchange cost with TLS records as the payload.
 * SNI reaches the proxies as the URL host wrk connects to, `127.0.0.1` (bench/lib/tls-forwards.ts).
 */
import type { Scenario, ScenarioContext } from '../lib/context.ts';
import type { ScenarioResult } from '../lib/results.ts';
import { runTlsPassthroughScenario, TLS_PASSTHROUGH_PEERS } from '../lib/tls-forwards.ts';

/** Scenario `tls-pass-small`: 64 keep-alive HTTPS connections, `hello\n` responses, through a TLS passthrough. */
export const tlsPassSmall: Scenario = {
  name: 'tls-pass-small',
  description: 'Small keep-alive HTTPS exchanges (6-byte body) through a TLS passthrough forward routed by SNI.',
  peers: TLS_PASSTHROUGH_PEERS,
  run(ctx: ScenarioContext): Promise<ScenarioResult> {
    return runTlsPassthroughScenario(ctx, {
      name: this.name,
      description: this.description,
      load: { path: '/hello', connections: 64, threads: 1 },
      primary: 'requestsPerS',
      response: '200, body "hello\\n", one TLS record each way per exchange',
    });
  },
};
