/**
 * What the data plane shares per proxy instance: the current route table, logger, metrics and
 * the set of live connections (so shutdown can drain and then close them).
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { HttpEngine } from '../http/http-engine.ts';
import type { TunnelSweeper } from '../l4/tunnel-sweeper.ts';
import type { ClassifySweeper } from '../listener/classify-sweeper.ts';
import type { LlmGateway } from '../llm/gateway.ts';
import type { ProxyMetrics } from '../observe/metrics.ts';
import type { IpMatcher } from '../route/ip-matcher.ts';
import type { RouteTable } from '../route/route-table.ts';
import type { ConnectionList } from './connection-list.ts';

/** Shared state of one running proxy; the listener and forwarders read it, the runtime owns it. */
export interface ProxyContext {
  /** The table new connections use; replaced whole on reload. */
  table: RouteTable;
  /** Peers allowed to send a PROXY header, or null when none are configured. */
  trustedProxies: IpMatcher | null;
  readonly logger: Logger;
  readonly metrics: ProxyMetrics;
  /** Every open client socket, so shutdown can wait for them and then close them. */
  readonly clients: ConnectionList<Socket>;
  /**
   * Client connections forwarded on bare handles (l4/raw-tunnel.ts), counted until their tunnel
   * closes its handles; the tunnels themselves are in {@link tunnels} until then too.
   */
  rawClients: number;
  /** True once shutdown began: new connections are refused. */
  closing: boolean;
  /** Classify deadlines of new connections that are still being read. */
  readonly classifying: ClassifySweeper;
  /** Idle timeouts of L4 tunnels (and joined upgrades). */
  readonly tunnels: TunnelSweeper;
  /** The HTTP engine, set once at start. */
  http: HttpEngine;
  /** The LLM gateway of the current config, or null when it has no `llm` block. */
  llm: LlmGateway | null;
}
