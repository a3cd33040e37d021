/**
 * Switchyard as the subject: `node src/cli/main.ts start --config FILE` from the repository under
 * test, with a YAML config written to the scenario directory.
 */
import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { ScenarioContext } from './context.ts';
import { withNofile } from './nofile.ts';
import { freePort, LOOPBACK } from './ports.ts';
import type { ManagedProcess } from './processes.ts';
import type { SniRoute } from './tls.ts';
import { waitForPort } from './wait-for-port.ts';

/** A started Switchyard. */
export interface SwitchyardInstance {
  readonly port: number;
  readonly process: ManagedProcess;
}

/** Path of the CLI entry point inside a Switchyard checkout. */
export function switchyardCli(root: string): string {
  return join(root, 'src', 'cli', 'main.ts');
}

/**
 * Starts Switchyard with `config` and waits until `port` (a port the config listens on) accepts
 * connections.
 */
export async function startSwitchyard(
  ctx: ScenarioContext,
  name: string,
  config: ConfigInput,
  port: number,
  nofile?: number,
): Promise<SwitchyardInstance> {
  const root = ctx.options.switchyardRoot;
  const cli = switchyardCli(root);
  try {
    await access(cli);
  } catch {
    throw new Error(`Switchyard CLI not found at ${cli}`);
  }
  const file = join(ctx.dir, `${name}.yaml`);
  await writeFile(file, stringify(config));
  const proc = await ctx.spawn({
    name,
    ...withNofile(ctx.options.nodeBinary, [cli, 'start', '--config', file], nofile),
    cwd: root,
    role: 'proxy',
  });
  await waitForPort(LOOPBACK, port, proc);
  return { port, process: proc };
}

/** Switchyard with one route: a `tcp` forward of its port to `targetPort`. */
export async function startSwitchyardTcp(ctx: ScenarioContext, targetPort: number): Promise<SwitchyardInstance> {
  const port = await freePort();
  const config: ConfigInput = {
    bind: LOOPBACK,
    log: { level: 'warn' },
    // Nothing is left to drain when the harness stops it; do not wait for the default deadline.
    timeouts: { shutdownMs: 1000 },
    routes: [
      {
        name: 'bench',
        match: { ports: port },
        action: { type: 'forward', mode: 'tcp', targets: [`${LOOPBACK}:${targetPort}`] },
      },
    ],
  };
  return startSwitchyard(ctx, 'switchyard-tcp', config, port);
}

/**
 * Switchyard with one route per SNI route, all on one port: `match.domains` the route's server
 * name, action `forward` in `mode: tls-passthrough` to its target. A ClientHello naming no route's
 * server is refused (`SY_ROUTE_NO_MATCH`) and the connection closed.
 */
export async function startSwitchyardTlsPassthrough(
  ctx: ScenarioContext,
  routes: readonly SniRoute[],
): Promise<SwitchyardInstance> {
  const port = await freePort();
  const config: ConfigInput = {
    bind: LOOPBACK,
    log: { level: 'warn' },
    // Nothing is left to drain when the harness stops it; do not wait for the default deadline.
    timeouts: { shutdownMs: 1000 },
    routes: routes.map((r) => ({
      name: r.name,
      match: { ports: port, domains: [r.serverName] },
      action: { type: 'forward', mode: 'tls-passthrough', targets: [`${LOOPBACK}:${r.targetPort}`] },
    })),
  };
  return startSwitchyard(ctx, 'switchyard-tls', config, port);
}

/** Options of {@link startSwitchyardHttp}. */
export interface SwitchyardHttpOptions {
  /** Process and file name (default `switchyard-http`). */
  readonly name?: string;
  /** `log.level`; `info` is needed for the stop line with event-loop lag (default `warn`). */
  readonly logLevel?: 'warn' | 'info';
  /** Open-files limit for the process (see `withNofile`). */
  readonly nofile?: number;
}

/**
 * Switchyard with one route: a `forward` in `mode: http` of its port to `targetPort`, with the
 * default upstream pool, and client keep-alive long enough that no benchmark connection is
 * closed for idleness (the 60 s default would cut the idle-connections scenario short).
 */
export async function startSwitchyardHttp(
  ctx: ScenarioContext,
  targetPort: number,
  options: SwitchyardHttpOptions = {},
): Promise<SwitchyardInstance> {
  const port = await freePort();
  const config: ConfigInput = {
    bind: LOOPBACK,
    log: { level: options.logLevel ?? 'warn' },
    // Nothing is left to drain when the harness stops it; do not wait for the default deadline.
    timeouts: { shutdownMs: 1000 },
    http: { keepAliveTimeoutMs: 600_000 },
    routes: [
      {
        name: 'bench',
        match: { ports: port },
        action: { type: 'forward', mode: 'http', targets: [`${LOOPBACK}:${targetPort}`] },
      },
    ],
  };
  return startSwitchyard(ctx, options.name ?? 'switchyard-http', config, port, options.nofile);
}
