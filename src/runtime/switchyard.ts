/**
 * The running proxy: owns listeners, the current route table, the hello server and every live
 * connection, and swaps tables atomically on update.
 */
import type { Logger } from 'pino';
import { loadConfigFile, validateConfig } from '../config/load.ts';
import type { Config, ConfigInput } from '../config/schema.ts';
import { HttpEngine } from '../http/http-engine.ts';
import { TunnelSweeper } from '../l4/tunnel-sweeper.ts';
import { ClassifySweeper } from '../listener/classify-sweeper.ts';
import { Listener } from '../listener/listener.ts';
import { LlmGateway } from '../llm/gateway.ts';
import { EventLoopMonitor } from '../observe/event-loop-monitor.ts';
import { registerLlmMetrics } from '../observe/llm-metrics.ts';
import { createLogger, flushLogger } from '../observe/logger.ts';
import { ProxyMetrics } from '../observe/metrics.ts';
import { TargetRegistry } from '../policy/target-state.ts';
import { IpMatcher } from '../route/ip-matcher.ts';
import { RouteTable } from '../route/route-table.ts';
import { ConnectionList } from './connection-list.ts';
import { HelloServer } from './hello-server.ts';
import type { ProxyContext } from './proxy-context.ts';

/** Options of {@link Switchyard.start}. */
export interface StartOptions {
  /** Logger to use; one is created from `config.log` when absent. */
  logger?: Logger;
  /** The file the config came from, re-read by {@link Switchyard.reload}. */
  configFile?: string;
}

/** A running Switchyard instance. */
export class Switchyard {
  readonly ctx: ProxyContext;
  readonly logger: Logger;
  readonly metrics: ProxyMetrics;
  readonly configFile: string | null;
  readonly http: HttpEngine;
  readonly eventLoop: EventLoopMonitor;
  readonly #targets: TargetRegistry;
  readonly #listeners: Map<number, Listener>;
  #bind: string;
  #hello: HelloServer | null;
  /** Serialises updates so two reloads never interleave. */
  #updating: Promise<void>;
  #closed: Promise<void> | null;
  /** Replaced LLM gateways still finishing their requests. */
  readonly #retiring: Set<Promise<void>>;

  private constructor(config: Config, options: StartOptions) {
    this.logger = options.logger ?? createLogger({ level: config.log.level });
    this.metrics = new ProxyMetrics();
    this.eventLoop = new EventLoopMonitor(this.metrics.registry);
    this.configFile = options.configFile ?? null;
    this.#targets = new TargetRegistry();
    this.ctx = {
      table: new RouteTable(config, this.#targets),
      trustedProxies: trustedProxies(config),
      logger: this.logger,
      metrics: this.metrics,
      clients: new ConnectionList(),
      rawClients: 0,
      classifying: new ClassifySweeper(),
      tunnels: new TunnelSweeper(),
      closing: false,
      http: null as unknown as HttpEngine,
      llm: null,
    };
    this.http = new HttpEngine(this.ctx);
    registerLlmMetrics(this.metrics.registry, () => this.ctx.llm);
    this.ctx.http = this.http;
    this.#listeners = new Map();
    this.#bind = config.bind;
    this.#hello = null;
    this.#updating = Promise.resolve();
    this.#closed = null;
    this.#retiring = new Set();
  }

  /**
   * Validates the config, binds every route port and starts the built-in servers it asks for.
   * @throws SwitchyardError SY_CFG_INVALID on a bad config, SY_LSN_BIND when a port is taken.
   */
  static async start(input: ConfigInput, options: StartOptions = {}): Promise<Switchyard> {
    const config = validateConfig(input, options.configFile ?? 'library config');
    const proxy = new Switchyard(config, options);
    try {
      if (config.helloServer !== undefined) {
        proxy.#hello = new HelloServer(config.helloServer.host, config.helloServer.port);
        await proxy.#hello.listen();
      }
      proxy.ctx.llm = await proxy.#startGateway(config);
      proxy.#swapListeners(await proxy.#openListeners(proxy.ctx.table, config.bind), proxy.ctx.table, config.bind);
    } catch (error) {
      await proxy.close();
      throw error;
    }
    proxy.logger.info({ ports: proxy.ports, bind: config.bind, routes: config.routes.length }, 'switchyard started');
    return proxy;
  }

  /** Starts from a YAML file; {@link reload} re-reads it (SIGHUP in the CLI). */
  static async startFile(file: string, options: Omit<StartOptions, 'configFile'> = {}): Promise<Switchyard> {
    const config = await loadConfigFile(file);
    return Switchyard.start(config, { ...options, configFile: file });
  }

  /** Ports currently listening, ascending. */
  get ports(): number[] {
    return [...this.#listeners.keys()].sort((a, b) => a - b);
  }

  /** The active config (after defaults). */
  get config(): Config {
    return this.ctx.table.config;
  }

  /** Open client connections. */
  get connectionCount(): number {
    return this.ctx.clients.size + this.ctx.rawClients;
  }

  /**
   * Replaces the route table. New connections use the new table at once; open connections keep
   * the one they started with. Ports are opened and closed to match. Atomic: when the config is
   * invalid or a new port cannot be bound, nothing changes and the error is thrown.
   */
  update(input: ConfigInput, source = 'library config'): Promise<void> {
    const run = this.#updating.then(async () => {
      const config = validateConfig(input, source);
      await this.#apply(config);
    });
    this.#updating = run.catch(() => {});
    return run;
  }

  /** Re-reads the config file given at start and applies it like {@link update}. */
  reload(): Promise<void> {
    const file = this.configFile;
    if (file === null) return Promise.reject(new Error('reload() needs a proxy started from a config file'));
    const run = this.#updating.then(async () => {
      const config = await loadConfigFile(file);
      await this.#apply(config);
    });
    this.#updating = run.catch(() => {});
    return run;
  }

  /**
   * Everything that can fail is done first: the table and the trusted-proxy list are compiled,
   * a changed `llm` block gets its new gateway and new ports are bound. Only then, with no await
   * in between, does the running proxy switch over, so a failed update changes nothing. (The
   * HTTP engine's `configure` compiles `http.trustedProxies` with the parser the schema checks
   * with, ip-matcher.ts, so it cannot throw on a validated config.)
   */
  async #apply(config: Config): Promise<void> {
    if (this.ctx.closing) throw new Error('proxy is closing');
    const table = new RouteTable(config, this.#targets);
    const trusted = trustedProxies(config);
    const llmChanged = JSON.stringify(this.ctx.table.config.llm) !== JSON.stringify(config.llm);
    const gateway = llmChanged ? await this.#startGateway(config) : this.ctx.llm;
    let opened: Listener[];
    try {
      opened = await this.#openListeners(table, config.bind);
    } catch (error) {
      if (llmChanged && gateway !== null) {
        await gateway.close().catch((err) => this.logger.warn({ err }, 'closing the unused LLM gateway failed'));
      }
      throw error;
    }
    this.#swapListeners(opened, table, config.bind);
    if (llmChanged) {
      // The old gateway finishes what it has, then closes.
      const old = this.ctx.llm;
      this.ctx.llm = gateway;
      if (old !== null) {
        const retiring = retireGateway(old, config.timeouts.shutdownMs).finally(() => this.#retiring.delete(retiring));
        this.#retiring.add(retiring);
      }
    }
    this.ctx.table = table;
    this.ctx.trustedProxies = trusted;
    this.http.configure(table);
    // Pools of addresses no route uses any more are closed; shared ones carry on.
    this.#targets.retain(new Set(table.routes.flatMap((r) => r.targets)));
    this.logger.info({ ports: this.ports, routes: config.routes.length }, 'route table updated');
  }

  /** The gateway of an `llm` block, or null; providers that fail are logged, not fatal. */
  async #startGateway(config: Config): Promise<LlmGateway | null> {
    if (config.llm === undefined) return null;
    const gateway = new LlmGateway(config.llm, { logger: this.logger });
    try {
      await gateway.ready();
    } catch (error) {
      this.logger.error({ err: error }, 'some LLM providers are unavailable; their aliases answer 503 or fall back');
    }
    return gateway;
  }

  /** The running LLM gateway, or null when the config has no `llm` block. */
  get llm(): LlmGateway | null {
    return this.ctx.llm;
  }

  /**
   * Binds the ports of `table` that have no listener on `bind` yet (every port when the bind
   * address changes). On failure the ones it bound are closed and the error is thrown.
   */
  async #openListeners(table: RouteTable, bind: string): Promise<Listener[]> {
    const rebind = bind !== this.#bind;
    const opened: Listener[] = [];
    try {
      for (const port of table.ports.keys()) {
        if (!rebind && this.#listeners.has(port)) continue;
        const listener = new Listener(this.ctx, bind, port);
        await listener.listen();
        opened.push(listener);
      }
    } catch (error) {
      for (const listener of opened) listener.close();
      throw error;
    }
    return opened;
  }

  /** Takes the listeners `#openListeners` bound and closes those `table` no longer uses. */
  #swapListeners(opened: Listener[], table: RouteTable, bind: string): void {
    if (bind !== this.#bind) {
      for (const listener of this.#listeners.values()) listener.close();
      this.#listeners.clear();
      this.#bind = bind;
    }
    for (const listener of opened) this.#listeners.set(listener.port, listener);
    for (const [port, listener] of this.#listeners) {
      if (!table.ports.has(port)) {
        this.#listeners.delete(port);
        listener.close();
      }
    }
  }

  /**
   * Graceful shutdown: stop accepting, let open connections finish for up to
   * `timeouts.shutdownMs` (or `drainMs`), then close whatever is left. Idempotent.
   */
  close(drainMs?: number): Promise<void> {
    if (this.#closed === null) this.#closed = this.#shutdown(drainMs ?? this.config.timeouts.shutdownMs);
    return this.#closed;
  }

  async #shutdown(drainMs: number): Promise<void> {
    this.ctx.closing = true;
    await this.#updating;
    const listeners = [...this.#listeners.values()];
    this.#listeners.clear();
    for (const listener of listeners) listener.close();
    this.http.drain();
    const clients = this.ctx.clients;
    const tunnels = this.ctx.tunnels;
    // A tunnel whose client is gone still counts: its upstream may be taking the last bytes.
    const open = (): number => clients.size + this.ctx.rawClients + tunnels.tunnels.size;
    if (open() > 0) {
      this.logger.info({ open: this.connectionCount, tunnels: tunnels.tunnels.size, drainMs }, 'draining connections');
      await waitForDrain(open, drainMs);
      if (open() > 0) {
        this.logger.warn(
          { open: this.connectionCount, tunnels: tunnels.tunnels.size },
          'drain deadline passed; closing remaining connections',
        );
        // Tunnels first: destroying a client alone only ends its upstream (tunnel.ts).
        tunnels.close();
        clients.forEach((socket) => {
          socket.destroy();
        });
        // Connections still being classified on bare handles are in neither list.
        this.ctx.classifying.abortAll();
        await waitForDrain(open, 1000);
      }
    }
    this.http.close();
    this.ctx.classifying.close();
    tunnels.close();
    this.#targets.close();
    if (this.ctx.llm !== null) await this.ctx.llm.close();
    await Promise.all(this.#retiring);
    if (this.#hello !== null) await this.#hello.close();
    this.eventLoop.close();
    this.logger.info({ eventLoopLag: this.eventLoop.summary() }, 'switchyard stopped');
    flushLogger(this.logger);
  }
}

/** Closes a replaced gateway once its requests are done, or at the deadline. */
async function retireGateway(gateway: LlmGateway, deadlineMs: number): Promise<void> {
  const started = Date.now();
  while (gateway.stats().inFlight > 0 && Date.now() - started < deadlineMs) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await gateway.close();
}

function trustedProxies(config: Config): IpMatcher | null {
  const cidrs = config.proxyProtocol.trustedCidrs;
  return cidrs.length > 0 ? new IpMatcher(cidrs) : null;
}

/** Resolves when `open()` is 0 or the deadline passes, whichever is first. */
function waitForDrain(open: () => number, drainMs: number): Promise<void> {
  return new Promise((resolve) => {
    const started = Date.now();
    // Polling a Set's size every 50 ms costs nothing next to a drain; a close hook per socket
    // would put work on every connection's hot path for a once-per-process event.
    const timer = setInterval(() => {
      if (open() === 0 || Date.now() - started >= drainMs) {
        clearInterval(timer);
        resolve();
      }
    }, 50);
  });
}
