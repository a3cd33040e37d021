/**
 * The HTTP/1.1 engine of one proxy: takes plaintext connections from listeners, owns their
 * ClientConnections, the upstream pools' settings and the one coarse timer that enforces every
 * HTTP deadline (head, keep-alive, response, idle, pool queue).
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { type ActionConfig, type ForwardActionConfig, POOL_DEFAULTS } from '../config/schema.ts';
import type { ProxyMetrics } from '../observe/metrics.ts';
import type { TargetState } from '../policy/target-state.ts';
import { IpMatcher } from '../route/ip-matcher.ts';
import type { CompiledRoute, RouteTable } from '../route/route-table.ts';
import { ConnectionList } from '../runtime/connection-list.ts';
import type { ProxyContext } from '../runtime/proxy-context.ts';
import { ClientConnection } from './client-connection.ts';
import { type HttpLimits, httpLimits } from './parser/index.ts';
import { type PoolOptions, UpstreamPool } from './upstream-pool.ts';

/**
 * Sweep interval. Deadlines fire up to this late. One interval walking the connection set costs
 * O(connections) per tick (20,000 idle connections: well under 1 ms) and nothing per request,
 * where a timer per request costs a heap insert and removal each time.
 */
const SWEEP_MS = 250;

/** Responses of one route and status not yet added to the Prometheus counter. */
interface ResponseCount {
  readonly child: { inc(value: number): void };
  pending: number;
}

/** Engine-wide HTTP behaviour, taken from the current route table. */
export class HttpEngine {
  readonly ctx: ProxyContext;
  readonly logger: Logger;
  readonly metrics: ProxyMetrics;
  readonly connections: ConnectionList<ClientConnection>;
  readonly pools: Set<UpstreamPool>;
  limits: HttpLimits;
  trustedProxies: IpMatcher | null;
  requestIdHeader: string;
  defaultResponseTimeoutMs: number;
  /** Coarse clock (ms since epoch), advanced by the sweep; deadlines are compared with it. */
  now: number;
  draining: boolean;
  #timer: NodeJS.Timeout | null;
  #idPrefix: string;
  #idCounter: number;
  readonly #responseCounters: Map<string, Map<number, ResponseCount>>;

  constructor(ctx: ProxyContext) {
    this.ctx = ctx;
    this.logger = ctx.logger;
    this.metrics = ctx.metrics;
    this.connections = new ConnectionList();
    this.pools = new Set();
    this.limits = httpLimits();
    this.trustedProxies = null;
    this.requestIdHeader = 'x-request-id';
    this.defaultResponseTimeoutMs = 60_000;
    this.now = Date.now();
    this.draining = false;
    this.#timer = null;
    this.#idPrefix = randomBytes(6).toString('hex');
    this.#idCounter = 0;
    this.#responseCounters = new Map();
    this.metrics.onCollectResponses(() => this.flushResponseCounts());
    this.configure(ctx.table);
  }

  /** Takes the HTTP settings of a (new) route table. Open connections keep their own table. */
  configure(table: RouteTable): void {
    const http = table.config.http;
    this.limits = httpLimits({
      maxHeaderBytes: http.maxHeaderBytes,
      maxHeaders: http.maxHeaders,
      maxUriBytes: http.maxUriBytes,
    });
    this.trustedProxies = http.trustedProxies.length > 0 ? new IpMatcher(http.trustedProxies) : null;
    this.requestIdHeader = http.requestIdHeader.toLowerCase();
    this.defaultResponseTimeoutMs = table.config.timeouts.idleMs;
    // Pool settings are resolved here, once per address, so a request only looks its pool up.
    // The last route in the file that names an address wins (config reference, `pool`), whatever
    // the routes' priorities, and every setting applies to the live pool.
    const compiled = new Map<ActionConfig, CompiledRoute>();
    for (const route of table.routes) compiled.set(route.action, route);
    const settings = new Map<TargetState, PoolOptions>();
    for (const config of table.config.routes) {
      const action = config.action;
      if (action.type !== 'forward' || action.mode !== 'http') continue;
      const options = this.poolOptions(action, table);
      for (const target of compiled.get(action)!.targets) settings.set(target, options);
    }
    for (const [target, options] of settings) this.poolFor(target, options);
  }

  /** Serves a plaintext connection that the listener routed to HTTP. */
  accept(socket: Socket, table: RouteTable, port: number, clientIp: string, initial: Buffer | null): void {
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.sweep(), SWEEP_MS);
      this.#timer.unref();
    }
    this.now = Date.now();
    const conn = new ClientConnection(this, socket, table, port, clientIp, false);
    this.connections.add(conn);
    conn.start(initial);
  }

  /** Pool settings of a forward action under a table's defaults. */
  poolOptions(action: ForwardActionConfig, table: RouteTable): PoolOptions {
    const pool = action.pool ?? POOL_DEFAULTS;
    return {
      maxConnections: pool.maxConnections,
      idleTimeoutMs: pool.idleTimeoutMs,
      queueSize: pool.queueSize,
      queueTimeoutMs: pool.queueTimeoutMs,
      connectTimeoutMs: action.connectTimeoutMs ?? table.config.timeouts.connectMs,
    };
  }

  /**
   * The keep-alive pool of a target with these settings: created when the target has none (or
   * only a closed one, after a reload dropped the address), else the live pool takes them.
   */
  poolFor(target: TargetState, options: PoolOptions): UpstreamPool {
    let pool = target.pool as UpstreamPool | null;
    if (pool === null || pool.closed) {
      pool = new UpstreamPool(target, options);
      target.pool = pool;
      this.pools.add(pool);
    } else {
      pool.reconfigure(options);
    }
    return pool;
  }

  /**
   * A request ID: a per-process random prefix and a counter in base 36 (unique, cheap). Not decimal,
   * though V8 makes decimal text faster: it keeps each integer's decimal string in its number-string
   * cache, an old-generation table, so every request's digits survived the next scavenge and were
   * promoted. Under http-small that took the bytes surviving each scavenge from 30 to 130 KB and
   * its pause from 0.4 to 1.6 ms (`--trace-gc-nvp`, docs/benchmarks.md); base 36 bypasses the cache.
   */
  newRequestId(): string {
    this.#idCounter++;
    return `${this.#idPrefix}-${this.#idCounter.toString(36)}`;
  }

  /** Extra headers of a `respond` route, as a fresh flat list. */
  respondHeaders(route: CompiledRoute): string[] {
    const action = route.action;
    if (action.type !== 'respond') return [];
    const list: string[] = [];
    for (const [name, value] of Object.entries(action.headers)) list.push(name, value);
    return list;
  }

  /**
   * Counts a response: a plain increment, handed to prom-client when the counter is read
   * ({@link flushResponseCounts}). A labelled child's `inc()` hashes and validates its labels
   * every time; per response that was about 1.5% of CPU on http-small.
   */
  countResponse(route: CompiledRoute | null, status: number): void {
    const name = route?.name ?? '';
    let byStatus = this.#responseCounters.get(name);
    if (byStatus === undefined) {
      byStatus = new Map();
      this.#responseCounters.set(name, byStatus);
    }
    let count = byStatus.get(status);
    if (count === undefined) {
      count = { child: this.metrics.httpResponses.labels(name, String(status)), pending: 0 };
      byStatus.set(status, count);
    }
    count.pending++;
  }

  /** Adds the responses counted since the last read to the Prometheus counter. */
  flushResponseCounts(): void {
    for (const byStatus of this.#responseCounters.values()) {
      for (const count of byStatus.values()) {
        if (count.pending === 0) continue;
        count.child.inc(count.pending);
        count.pending = 0;
      }
    }
  }

  countError(code: string): void {
    this.metrics.rejected.inc({ reason: code });
  }

  countUpstreamError(target: string, code: string): void {
    this.metrics.upstreamErrors.inc({ target, reason: code });
  }

  sweep(): void {
    const now = Date.now();
    this.now = now;
    this.connections.forEach((conn) => {
      if (conn.deadline !== 0 && conn.deadline <= now) conn.onDeadline();
    });
    for (const pool of this.pools) {
      if (pool.closed && pool.total === 0) this.pools.delete(pool);
      else pool.sweep(now);
    }
  }

  /** Shutdown: idle keep-alive connections close now; busy ones close after their exchange. */
  drain(): void {
    this.draining = true;
    this.connections.forEach((conn) => {
      conn.drain();
    });
  }

  /** Stops the sweep timer and closes every pool. Client sockets are the runtime's to close. */
  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    for (const pool of this.pools) pool.close();
    this.pools.clear();
  }
}
