/** HAProxy as a peer proxy: one thread, in the foreground, config in the scenario directory. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ScenarioContext } from './context.ts';
import { freePort, LOOPBACK } from './ports.ts';
import type { ManagedProcess } from './processes.ts';
import type { SniRoute } from './tls.ts';
import { waitForPort } from './wait-for-port.ts';

/** A started HAProxy. */
export interface HaproxyInstance {
  readonly port: number;
  readonly process: ManagedProcess;
}

/** Starts HAProxy with `conf` as its config (`-db`: foreground, no daemon) and waits for `port`. */
export async function startHaproxy(
  ctx: ScenarioContext,
  name: string,
  conf: string,
  port: number,
): Promise<HaproxyInstance> {
  const file = join(ctx.dir, `${name}.cfg`);
  await writeFile(file, conf);
  const proc = await ctx.spawn({ name, command: 'haproxy', args: ['-db', '-f', file], role: 'proxy' });
  await waitForPort(LOOPBACK, port, proc);
  return { port, process: proc };
}

/** The `global` and `defaults` sections of the `mode tcp` configs: one thread, long timeouts. */
const TCP_GLOBALS = `global
  nbthread 1

defaults
  mode tcp
  timeout connect 5s
  timeout client 300s
  timeout server 300s
`;

/** HAProxy in `mode tcp` with `nbthread 1`, forwarding every connection to `targetPort`. */
export async function startHaproxyTcp(ctx: ScenarioContext, targetPort: number): Promise<HaproxyInstance> {
  const port = await freePort();
  const conf = `${TCP_GLOBALS}
frontend bench
  bind ${LOOPBACK}:${port}
  default_backend upstream

backend upstream
  server s1 ${LOOPBACK}:${targetPort}
`;
  return startHaproxy(ctx, 'haproxy-tcp', conf, port);
}

/**
 * HAProxy in `mode tcp` with `nbthread 1`, routing TLS by SNI without terminating it: the
 * frontend waits for a whole ClientHello (`req_ssl_hello_type 1`, at most 5 s), then picks a
 * backend per route on `req_ssl_sni`. It has no default backend, so a name no route lists is
 * closed.
 */
export async function startHaproxyTlsPassthrough(
  ctx: ScenarioContext,
  routes: readonly SniRoute[],
): Promise<HaproxyInstance> {
  const port = await freePort();
  const useBackends = routes.map((r) => `  use_backend ${r.name} if { req_ssl_sni -i ${r.serverName} }`).join('\n');
  const backends = routes.map((r) => `backend ${r.name}\n  server s1 ${LOOPBACK}:${r.targetPort}\n`).join('\n');
  const conf = `${TCP_GLOBALS}
frontend bench
  bind ${LOOPBACK}:${port}
  tcp-request inspect-delay 5s
  tcp-request content accept if { req_ssl_hello_type 1 }
${useBackends}

${backends}`;
  return startHaproxy(ctx, 'haproxy-tls', conf, port);
}

/**
 * HAProxy in `mode http` with `nbthread 1`: keep-alive on both sides and `http-reuse always`, so
 * idle upstream connections are shared between client connections as nginx's `keepalive` does.
 */
export async function startHaproxyHttp(ctx: ScenarioContext, targetPort: number): Promise<HaproxyInstance> {
  const port = await freePort();
  const conf = `global
  nbthread 1

defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s

frontend bench
  bind ${LOOPBACK}:${port}
  default_backend upstream

backend upstream
  server s1 ${LOOPBACK}:${targetPort}
`;
  return startHaproxy(ctx, 'haproxy-http', conf, port);
}
