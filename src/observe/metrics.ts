/**
 * Prometheus metrics of one proxy instance. Each instance owns a registry, so several proxies in
 * one process (tests, embedding) never share counters by accident.
 */
import { Counter, Gauge, Registry } from 'prom-client';

/** The metric families the data plane updates. */
export class ProxyMetrics {
  readonly registry: Registry;
  /** Accepted client connections, by route (`""` before one is chosen). */
  readonly connections: Counter<'route'>;
  /** Client connections currently open. */
  readonly activeConnections: Gauge;
  /** Bytes through forwarded connections; `in` from clients, `out` to clients. */
  readonly bytes: Counter<'route' | 'direction'>;
  /** Connections closed before forwarding, by reason (an error code). */
  readonly rejected: Counter<'reason'>;
  /** Failed upstream connection attempts, by target address. */
  readonly upstreamErrors: Counter<'target' | 'reason'>;
  /** HTTP responses sent to clients, by route and status. */
  readonly httpResponses: Counter<'route' | 'status'>;
  /** Run before the response counter is read: they add counts kept outside prom-client. */
  readonly #flushers: Array<() => void>;
  readonly #routeCounters: Map<string, RouteCounters>;

  constructor() {
    this.registry = new Registry();
    this.#flushers = [];
    this.#routeCounters = new Map();
    const flushers = this.#flushers;
    const registers = [this.registry];
    this.connections = new Counter({
      name: 'switchyard_connections_total',
      help: 'Client connections routed, by route.',
      labelNames: ['route'],
      registers,
    });
    this.activeConnections = new Gauge({
      name: 'switchyard_connections_active',
      help: 'Client connections currently open.',
      registers,
    });
    this.bytes = new Counter({
      name: 'switchyard_bytes_total',
      help: 'Bytes forwarded, by route and direction (in: from clients, out: to clients).',
      labelNames: ['route', 'direction'],
      registers,
    });
    this.rejected = new Counter({
      name: 'switchyard_rejected_connections_total',
      help: 'Connections closed before forwarding, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.upstreamErrors = new Counter({
      name: 'switchyard_upstream_errors_total',
      help: 'Upstream failures (connect errors and timeouts, resets, bad responses), by target and reason.',
      labelNames: ['target', 'reason'],
      registers,
    });
    this.httpResponses = new Counter({
      name: 'switchyard_http_responses_total',
      help: 'HTTP responses sent to clients, by route and status.',
      labelNames: ['route', 'status'],
      registers,
      collect() {
        for (const flush of flushers) flush();
      },
    });
  }

  /**
   * A route's connection and byte counters, labelled once: a labelled `inc()` hashes and checks
   * its labels on every call, which showed in the profile of one connection per exchange through a
   * TCP forward (bench: tcp-close).
   */
  forRoute(route: string): RouteCounters {
    let counters = this.#routeCounters.get(route);
    if (counters === undefined) {
      counters = {
        connections: this.connections.labels(route),
        bytesIn: this.bytes.labels(route, 'in'),
        bytesOut: this.bytes.labels(route, 'out'),
      };
      this.#routeCounters.set(route, counters);
    }
    return counters;
  }

  /**
   * Registers `flush` to run whenever `switchyard_http_responses_total` is read (a scrape, or
   * {@link value}), so a hot path can count in plain numbers and hand the counts over then.
   */
  onCollectResponses(flush: () => void): void {
    this.#flushers.push(flush);
  }

  /** Current value of a counter child, for tests and the admin API. */
  async value(name: string, labels: Record<string, string> = {}): Promise<number> {
    const metric = this.registry.getSingleMetric(name);
    if (metric === undefined) return 0;
    const data = await metric.get();
    let sum = 0;
    for (const v of data.values) {
      if (Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want)) sum += v.value;
    }
    return sum;
  }
}

/** One route's labelled counters ({@link ProxyMetrics.forRoute}). */
export interface RouteCounters {
  readonly connections: { inc(value?: number): void };
  readonly bytesIn: { inc(value?: number): void };
  readonly bytesOut: { inc(value?: number): void };
}
