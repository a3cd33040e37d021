/**
 * The contenders of the TCP forward scenarios: no proxy, Switchyard, HAProxy and nginx `stream`,
 * all forwarding to the same backend port.
 */
import type { Contender } from './compare.ts';
import { compare, loopbackEndpoint } from './compare.ts';
import type { ScenarioContext } from './context.ts';
import { startHaproxyTcp } from './haproxy.ts';
import { type BackendFiles, startNginxBackend, startNginxStream } from './nginx.ts';
import type { PeerName } from './peers.ts';
import type { PrimaryMetric, ScenarioResult } from './results.ts';
import { startSwitchyardTcp } from './switchyard.ts';
import type { WrkLoad } from './wrk.ts';

/** Peers the TCP forward contenders need (the backend is nginx, the load wrk). */
export const TCP_FORWARD_PEERS: readonly PeerName[] = ['nginx', 'nginx-stream', 'haproxy', 'wrk'];

/** Ratios reported by the TCP forward scenarios: Switchyard over each other contender. */
export const TCP_FORWARD_RATIOS: ReadonlyArray<readonly [string, string]> = [
  ['switchyard', 'haproxy'],
  ['switchyard', 'nginx-stream'],
  ['switchyard', 'direct'],
];

/** Contenders forwarding TCP to `backendPort`, in the order they are measured in round one. */
export function tcpForwardContenders(backendPort: number, versions: Readonly<Record<string, string>>): Contender[] {
  return [
    {
      name: 'direct',
      role: 'direct',
      description: 'wrk straight to the backend, no proxy',
      start: async () => loopbackEndpoint(backendPort, []),
    },
    {
      name: 'switchyard',
      role: 'subject',
      description: 'Switchyard, one process, route action `forward` mode `tcp`',
      start: async (ctx) => {
        const { port, process } = await startSwitchyardTcp(ctx, backendPort);
        return loopbackEndpoint(port, [process.pid]);
      },
    },
    {
      name: 'haproxy',
      role: 'peer',
      description: `${versions.haproxy ?? 'HAProxy'}, \`mode tcp\`, \`nbthread 1\``,
      start: async (ctx) => {
        const { port, process } = await startHaproxyTcp(ctx, backendPort);
        return loopbackEndpoint(port, [process.pid]);
      },
    },
    {
      name: 'nginx-stream',
      role: 'peer',
      description: `${versions.nginx ?? 'nginx'} \`stream\` module, \`worker_processes 1\``,
      start: async (ctx) => {
        const { port, process } = await startNginxStream(ctx, backendPort);
        return loopbackEndpoint(port, [process.pid]);
      },
    },
  ];
}

/** What a TCP forward scenario varies: its load, the backend's files and how the page describes them. */
export interface TcpForwardScenario {
  readonly name: string;
  readonly description: string;
  readonly load: WrkLoad;
  readonly primary: PrimaryMetric;
  /** Files the backend nginx serves, by name. */
  readonly files?: BackendFiles;
  /** The request as the results page states it (defaults to `GET <path>`). */
  readonly request?: string;
  readonly response: string;
  readonly backend: string;
  readonly goalRounds?: number;
}

/**
 * The exchange of the one-connection-per-request forward scenarios (tcp-close, tls-pass-close):
 * `GET /hello` with `Connection: close` on 64 connections, so the backend closes after each answer.
 */
export const CLOSE_PER_REQUEST = {
  load: { path: '/hello', connections: 64, threads: 1, headers: { Connection: 'close' } },
  primary: 'requestsPerS',
  request: 'GET /hello, Connection: close',
  response: '200, body "hello\\n"; the backend closes, and the forward closes both connections',
} as const satisfies Pick<TcpForwardScenario, 'load' | 'primary' | 'request' | 'response'>;

/** Runs `scenario`: an nginx backend, then every TCP forward contender compared under its load. */
export async function runTcpForwardScenario(
  ctx: ScenarioContext,
  scenario: TcpForwardScenario,
): Promise<ScenarioResult> {
  const backend = await startNginxBackend(ctx, scenario.files);
  const load = scenario.load;
  const result = await compare(ctx, {
    load,
    contenders: tcpForwardContenders(backend.port, ctx.peers.versions),
    ratios: TCP_FORWARD_RATIOS,
    primary: scenario.primary,
    goalRounds: scenario.goalRounds,
  });
  return forwardScenarioResult(scenario, scenario.request ?? `GET ${load.path}`, scenario.backend, result);
}

/** A forward scenario's result as the page records it: its load described, and what was measured. */
export function forwardScenarioResult(
  scenario: Pick<TcpForwardScenario, 'name' | 'description' | 'load' | 'response'>,
  request: string,
  backend: string,
  measured: Awaited<ReturnType<typeof compare>>,
): ScenarioResult {
  const load = scenario.load;
  return {
    name: scenario.name,
    description: scenario.description,
    load: {
      tool: 'wrk',
      request,
      response: scenario.response,
      connections: load.connections,
      threads: load.threads,
      backend,
    },
    ...measured,
    notes: [],
  };
}
