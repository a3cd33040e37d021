/**
 * The contenders of the TCP forward scenarios: no proxy, Switchyard, HAProxy and nginx `stream`,
 * all forwarding to the same backend port.
 */
import type { Contender } from './compare.ts';
import { loopbackEndpoint } from './compare.ts';
import { startHaproxyTcp } from './haproxy.ts';
import { startNginxStream } from './nginx.ts';
import type { PeerName } from './peers.ts';
import { startSwitchyardTcp } from './switchyard.ts';

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
