/**
 * Node reverse proxies as peers: the scripts in bench/peers/, run on the same Node as Switchyard
 * (the pinned Node 24), each as `node SCRIPT LISTEN_PORT TARGET_PORT`.
 */
import { fileURLToPath } from 'node:url';
import type { ScenarioContext } from './context.ts';
import { freePort, LOOPBACK } from './ports.ts';
import type { ManagedProcess } from './processes.ts';
import { waitForPort } from './wait-for-port.ts';

/** The Node peers, by the file name of their script in bench/peers/. */
export type NodePeer = 'http-proxy' | 'reply-from';

/** A started Node peer. */
export interface NodePeerInstance {
  readonly port: number;
  readonly process: ManagedProcess;
}

/** Starts `bench/peers/<peer>.ts` forwarding to `targetPort` and waits until it listens. */
export async function startNodePeer(
  ctx: ScenarioContext,
  peer: NodePeer,
  targetPort: number,
): Promise<NodePeerInstance> {
  const script = fileURLToPath(new URL(`../peers/${peer}.ts`, import.meta.url));
  const port = await freePort();
  const proc = await ctx.spawn({
    name: peer,
    command: ctx.options.nodeBinary,
    args: [script, String(port), String(targetPort)],
    role: 'proxy',
  });
  await waitForPort(LOOPBACK, port, proc);
  return { port, process: proc };
}
