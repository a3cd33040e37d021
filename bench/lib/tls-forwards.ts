/**
 * The contenders of the TLS passthrough scenarios: no proxy, Switchyard, HAProxy and nginx
 * `stream`, each routing by SNI to an nginx backend that terminates TLS.
 *
 * How SNI reaches them: wrk sends the URL's host as the ClientHello's host_name, an IP literal
 * too (seen in `openssl s_server -trace`: host_name `127.0.0.1`), although RFC 6066 §3 does not
 * allow literal addresses there. So the routed name is {@link SERVER_NAME}, `127.0.0.1`, which
 * every contender listens on and which Switchyard's config accepts as a domain (four numeric
 * labels). Each proxy also has a route for {@link DECOY_SERVER_NAME}, listed first, to a port
 * where nothing listens, so the name is really looked up: a connection sent there is refused.
 * A name no route lists is closed by all three; with the `bench` route renamed, every proxy
 * failed every connection while `direct` did not (checked by hand, 2026-11-22).
 */
import type { Contender, Endpoint } from './compare.ts';
import { compare, loopbackEndpoint } from './compare.ts';
import type { ScenarioContext } from './context.ts';
import { startHaproxyTlsPassthrough } from './haproxy.ts';
import { startNginxBackend, startNginxStreamSni } from './nginx.ts';
import type { PeerName } from './peers.ts';
import { freePort, LOOPBACK } from './ports.ts';
import type { ScenarioResult } from './results.ts';
import { startSwitchyardTlsPassthrough } from './switchyard.ts';
import {
  forwardScenarioResult,
  TCP_FORWARD_PEERS,
  TCP_FORWARD_RATIOS,
  type TcpForwardScenario,
} from './tcp-forwards.ts';
import { type SniRoute, selfSignedCert } from './tls.ts';

/** The server name wrk sends and the proxies route on: the host of the URL it is given. */
export const SERVER_NAME = LOOPBACK;

/** The other route's name on every proxy (RFC 2606 reserves `.test`). */
export const DECOY_SERVER_NAME = 'decoy.switchyard.test';

/** Peers the TLS passthrough contenders need: those of the TCP forwards (`ssl_preread` is in nginx's stream module). */
export const TLS_PASSTHROUGH_PEERS: readonly PeerName[] = TCP_FORWARD_PEERS;

/** Ratios reported by the TLS passthrough scenarios: Switchyard over each other contender, as for TCP forwards. */
export const TLS_PASSTHROUGH_RATIOS: ReadonlyArray<readonly [string, string]> = TCP_FORWARD_RATIOS;

function httpsEndpoint(port: number, pids: readonly number[]): Endpoint {
  return { ...loopbackEndpoint(port, pids), scheme: 'https' };
}

/**
 * Contenders passing TLS through to `backendPort` when the ClientHello names {@link SERVER_NAME},
 * and to `decoyPort` when it names {@link DECOY_SERVER_NAME}, in the order they are measured in
 * round one.
 */
export function tlsPassthroughContenders(
  backendPort: number,
  decoyPort: number,
  versions: Readonly<Record<string, string>>,
): Contender[] {
  const routes: SniRoute[] = [
    { name: 'decoy', serverName: DECOY_SERVER_NAME, targetPort: decoyPort },
    { name: 'bench', serverName: SERVER_NAME, targetPort: backendPort },
  ];
  return [
    {
      name: 'direct',
      role: 'direct',
      description: 'wrk straight to the TLS backend, no proxy',
      start: async () => httpsEndpoint(backendPort, []),
    },
    {
      name: 'switchyard',
      role: 'subject',
      description:
        'Switchyard, one process, two routes on the port by `match.domains`, action `forward` mode `tls-passthrough`',
      start: async (ctx) => {
        const { port, process } = await startSwitchyardTlsPassthrough(ctx, routes);
        return httpsEndpoint(port, [process.pid]);
      },
    },
    {
      name: 'haproxy',
      role: 'peer',
      description:
        `${versions.haproxy ?? 'HAProxy'}, \`mode tcp\`, \`nbthread 1\`, \`tcp-request inspect-delay\`, ` +
        '`use_backend` by `req_ssl_sni`',
      start: async (ctx) => {
        const { port, process } = await startHaproxyTlsPassthrough(ctx, routes);
        return httpsEndpoint(port, [process.pid]);
      },
    },
    {
      name: 'nginx-stream',
      role: 'peer',
      description:
        `${versions.nginx ?? 'nginx'} \`stream\` module, \`worker_processes 1\`, \`ssl_preread on\`, ` +
        '`map $ssl_preread_server_name` to the upstream',
      start: async (ctx) => {
        const { port, process } = await startNginxStreamSni(ctx, routes);
        return httpsEndpoint(port, [process.pid]);
      },
    },
  ];
}

/** What a TLS passthrough scenario varies: a TCP forward scenario's fields but the backend's. */
export type TlsPassthroughScenario = Omit<TcpForwardScenario, 'files' | 'backend' | 'goalRounds'>;

/**
 * Runs `scenario`: a certificate for {@link SERVER_NAME} in the scenario directory, an nginx
 * backend serving HTTPS with it, then every TLS passthrough contender compared under its load.
 */
export async function runTlsPassthroughScenario(
  ctx: ScenarioContext,
  scenario: TlsPassthroughScenario,
): Promise<ScenarioResult> {
  const cert = await selfSignedCert(ctx.dir, SERVER_NAME);
  const backend = await startNginxBackend(ctx, {}, cert);
  // Nothing listens on the decoy's port: a connection routed there is refused, and wrk counts it.
  const decoyPort = await freePort();
  const load = scenario.load;
  const result = await compare(ctx, {
    load,
    contenders: tlsPassthroughContenders(backend.port, decoyPort, ctx.peers.versions),
    ratios: TLS_PASSTHROUGH_RATIOS,
    primary: scenario.primary,
  });
  return forwardScenarioResult(
    scenario,
    `${scenario.request ?? `GET ${load.path}`}, HTTPS with SNI ${SERVER_NAME}`,
    'nginx, 1 worker, `return 200`, TLS 1.3 only, ECDSA P-256 self-signed certificate, no session resumption',
    result,
  );
}
