/**
 * One listening server per port. Each new connection is classified before it is routed: an
 * optional PROXY protocol header (trusted peers only), then a TLS ClientHello (for SNI) or
 * plaintext. Ports whose routes need neither are forwarded at once without reading a byte.
 */
import { createServer, isIP, type Server, type Socket } from 'node:net';
import type { Config, ForwardActionConfig } from '../config/schema.ts';
import { SwitchyardError } from '../errors.ts';
import { RawTunnel, rawTunnelsAvailable, type TcpHandle } from '../l4/raw-tunnel.ts';
import { Tunnel, type TunnelOptions } from '../l4/tunnel.ts';
import { normalizeAddress } from '../route/ip-matcher.ts';
import type { CompiledRoute, MatchContext, PortIndex, RouteTable } from '../route/route-table.ts';
import type { ProxyContext } from '../runtime/proxy-context.ts';
import { looksLikeTls, parseClientHello } from './client-hello.ts';
import { acceptFast, adoptAccepted, type FastSocket, kOnData, releaseConnection } from './fast-read.ts';
import { parseProxyHeader } from './proxy-protocol.ts';

const kClassifier = Symbol('switchyard.classifier');

interface ClassifiedSocket extends FastSocket {
  [kClassifier]?: Classifier;
}

/** A server bound to one port; it routes with whatever table the context holds at accept time. */
export class Listener {
  readonly ctx: ProxyContext;
  readonly host: string;
  readonly port: number;
  readonly server: Server;

  constructor(ctx: ProxyContext, host: string, port: number) {
    this.ctx = ctx;
    this.host = host;
    this.port = port;
    // Connections come through acceptFast once listening; the 'connection' path is its fallback.
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) =>
      this.accept(adoptAccepted(socket, { allowHalfOpen: true })),
    );
  }

  /** Binds the port. @throws SwitchyardError SY_LSN_BIND */
  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = this.server;
      const onError = (cause: Error): void => {
        server.removeListener('listening', onListening);
        reject(
          new SwitchyardError(
            'SY_LSN_BIND',
            { address: `${this.host}:${this.port}`, detail: cause.message },
            { cause },
          ),
        );
      };
      const onListening = (): void => {
        server.removeListener('error', onError);
        acceptFast(
          server,
          true,
          (socket) => this.accept(socket),
          rawTunnelsAvailable ? (handle) => this.acceptRaw(handle as TcpHandle) : null,
        );
        server.on('error', (err) => this.ctx.logger.error({ err, port: this.port }, 'listener error'));
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen({ host: this.host, port: this.port, exclusive: false });
    });
  }

  /**
   * Stops accepting. Open connections are not touched: the runtime drains them. (node's
   * `server.close` callback waits for every connection, so it is not awaited; the listening
   * handle itself is released at once.)
   */
  close(): void {
    if (this.server.listening) this.server.close();
  }

  /**
   * Takes a connection on its bare handle when its port's routes are known without reading a
   * byte and forward to addresses (raw-tunnel.ts); returns false to have a Socket made for it.
   */
  private acceptRaw(handle: TcpHandle): boolean {
    const ctx = this.ctx;
    const table = ctx.table;
    const index = table.ports.get(this.port);
    if (ctx.closing || index === undefined || ctx.trustedProxies !== null || !takesBareHandles(index)) return false;
    const peer: { address?: string } = {};
    if (handle.getpeername(peer) !== 0) return false;
    const clientIp = normalizeAddress(peer.address ?? '');
    const match: MatchContext = {
      port: this.port,
      serverName: null,
      clientIp,
      tls: false,
      path: null,
      headers: null,
      layer: 4,
    };
    const route = table.match(match);
    // Every route on the port qualifies (takesBareHandles); none may match this client.
    const action = route?.action;
    if (action?.type !== 'forward') return false;
    ctx.rawClients++;
    ctx.metrics.activeConnections.inc();
    ctx.metrics.forRoute(route!.name).connections.inc();
    new RawTunnel(ctx, handle, route!, clientIp, tunnelOptions(action, table.config), this.rawClosed).start();
    return true;
  }

  /** A raw tunnel closed its handles: what a client Socket's 'close' does below. */
  private readonly rawClosed = (): void => {
    this.ctx.rawClients--;
    this.ctx.metrics.activeConnections.dec();
    releaseConnection(this.server);
  };

  private accept(socket: FastSocket): void {
    const ctx = this.ctx;
    if (ctx.closing) {
      socket.destroy();
      return;
    }
    ctx.clients.add(socket);
    ctx.metrics.activeConnections.inc();
    socket.on('close', onSocketClose);
    const classifier = new Classifier(ctx, this.port, ctx.table, socket);
    classifier.start();
  }
}

function onSocketClose(this: Socket): void {
  const classifier = (this as ClassifiedSocket)[kClassifier]!;
  const ctx = classifier.ctx;
  if (classifier.deadline !== 0) ctx.classifying.delete(classifier);
  ctx.clients.delete(this);
  ctx.metrics.activeConnections.dec();
}

/** Reads as little as routing needs from a new connection, then hands it to its action. */
class Classifier {
  readonly ctx: ProxyContext;
  readonly table: RouteTable;
  readonly socket: ClassifiedSocket;
  readonly match: MatchContext;
  /** Bytes read while classifying, forwarded once the upstream is connected. */
  buffered: Buffer | null;
  /** Whether a PROXY header may still come. */
  proxyPending: boolean;
  peerTrusted: boolean;
  /** When classification must be done (classify-sweeper.ts); 0 while not classifying. */
  deadline: number;

  constructor(ctx: ProxyContext, port: number, table: RouteTable, socket: Socket) {
    this.ctx = ctx;
    this.table = table;
    this.socket = socket as ClassifiedSocket;
    this.socket[kClassifier] = this;
    const peer = normalizeAddress(socket.remoteAddress ?? '');
    this.match = { port, serverName: null, clientIp: peer, tls: false, path: null, headers: null, layer: 4 };
    this.buffered = null;
    this.peerTrusted = ctx.trustedProxies?.matches(peer) === true;
    this.proxyPending = true;
    this.deadline = 0;
  }

  start(): void {
    const index = this.table.ports.get(this.match.port);
    // Read first bytes only when routing needs them: an SNI to read, TLS to detect, or a PROXY
    // header to take (trusted peers) or refuse (anyone else) once PROXY protocol is configured.
    // Otherwise forward at once, so server-speaks-first protocols work.
    if (index !== undefined && !index.needsPeek && this.ctx.trustedProxies === null) {
      this.proxyPending = false;
      this.route();
      return;
    }
    const socket = this.socket;
    this.ctx.classifying.add(this, this.table.config.timeouts.classifyMs);
    socket[kOnData] = onClassifyData;
    socket.on('end', onClassifyEnd);
    socket.on('error', noop);
    socket.resume();
  }

  onData(chunk: Buffer): void {
    const data = this.buffered === null ? chunk : Buffer.concat([this.buffered, chunk]);
    this.buffered = data;
    if (this.proxyPending) {
      const result = parseProxyHeader(data);
      if (result.kind === 'need-more') return;
      if (result.kind === 'error') {
        this.reject(new SwitchyardError('SY_LSN_BAD_PROXY_HEADER', { detail: result.reason }));
        return;
      }
      this.proxyPending = false;
      if (result.kind === 'header') {
        if (!this.peerTrusted) {
          this.reject(new SwitchyardError('SY_LSN_UNTRUSTED_PROXY_HEADER', { peer: this.match.clientIp }));
          return;
        }
        const header = result.header;
        if (header.command === 'proxy' && header.sourceAddress !== null) {
          this.match.clientIp = normalizeAddress(header.sourceAddress);
        }
        this.buffered = data.length > header.length ? data.subarray(header.length) : null;
        const index = this.table.ports.get(this.match.port);
        if (index !== undefined && !index.needsPeek) {
          this.route();
          return;
        }
        if (this.buffered === null) return;
      }
    }
    const bytes = this.buffered!;
    if (!looksLikeTls(bytes[0])) {
      this.route();
      return;
    }
    const hello = parseClientHello(bytes);
    if (hello.kind === 'need-more') return;
    if (hello.kind === 'error') {
      this.reject(new SwitchyardError('SY_LSN_BAD_TLS', { detail: hello.reason }));
      return;
    }
    this.match.tls = true;
    this.match.serverName = hello.info.serverName;
    this.route();
  }

  /** Picks the route and starts its action; closes the connection when none matches. */
  route(): void {
    const socket = this.socket;
    socket[kOnData] = ignoreData;
    socket.removeListener('end', onClassifyEnd);
    socket.removeListener('error', noop);
    if (this.deadline !== 0) this.ctx.classifying.delete(this);
    socket.pause();
    const index = this.table.ports.get(this.match.port);
    if (!this.match.tls && index !== undefined && index.hasHttp) {
      // Plaintext on a port with HTTP routes: the HTTP engine routes each request itself.
      const initial = this.buffered;
      this.buffered = null;
      this.ctx.http.accept(socket, this.table, this.match.port, this.match.clientIp, initial);
      return;
    }
    const route = this.table.match(this.match);
    if (route === null || route.action.type !== 'forward') {
      this.reject(
        new SwitchyardError('SY_ROUTE_NO_MATCH', { port: this.match.port, host: this.match.serverName ?? '(none)' }),
      );
      return;
    }
    const ctx = this.ctx;
    ctx.metrics.forRoute(route.name).connections.inc();
    const tunnel = new Tunnel(
      ctx,
      socket,
      route,
      this.match.clientIp,
      this.buffered,
      tunnelOptions(route.action, this.table.config),
    );
    this.buffered = null;
    tunnel.start();
  }

  /** The classify deadline passed before a PROXY header or a complete ClientHello arrived. */
  onDeadline(): void {
    this.reject(new SwitchyardError('SY_LSN_CLASSIFY_TIMEOUT', { timeoutMs: this.table.config.timeouts.classifyMs }));
  }

  /** Closes a connection that cannot be routed, with a log line and a counter. */
  reject(error: SwitchyardError): void {
    if (this.deadline !== 0) this.ctx.classifying.delete(this);
    this.ctx.metrics.rejected.inc({ reason: error.code });
    this.ctx.logger.info(
      { code: error.code, port: this.match.port, client: this.match.clientIp, sni: this.match.serverName },
      error.message,
    );
    this.buffered = null;
    this.socket.destroy();
  }
}

function noop(): void {}

/** A forward's timeouts, from the route or the defaults. */
function tunnelOptions(action: ForwardActionConfig, config: Config): TunnelOptions {
  return {
    connectTimeoutMs: action.connectTimeoutMs ?? config.timeouts.connectMs,
    idleTimeoutMs: action.idleTimeoutMs ?? config.timeouts.idleMs,
  };
}

/**
 * Whether a port's connections go to bare-handle tunnels (raw-tunnel.ts): its routes need no
 * first bytes and no HTTP, and each is a forward with `engine: handles` whose targets are all IP
 * addresses (a raw tunnel connects without a lookup). Decided once per port of a table, so a
 * port that does not qualify costs its connections nothing (no peer-address lookup twice).
 */
const bareHandlePorts = new WeakMap<PortIndex, boolean>();

function takesBareHandles(index: PortIndex): boolean {
  let takes = bareHandlePorts.get(index);
  if (takes === undefined) {
    // Without SNI or TLS to peek for and without HTTP routes, every route here has no host
    // condition, so `any` holds them all (route-table.ts).
    takes = !index.needsPeek && !index.hasHttp && index.any.every(usesBareHandles);
    bareHandlePorts.set(index, takes);
  }
  return takes;
}

function usesBareHandles(route: CompiledRoute): boolean {
  const action = route.action;
  return (
    action.type === 'forward' &&
    action.engine === 'handles' &&
    route.targets.length > 0 &&
    route.targets.every((target) => isIP(target.host) !== 0)
  );
}

function ignoreData(): void {}

function onClassifyData(this: ClassifiedSocket, chunk: Buffer): void {
  this[kClassifier]!.onData(chunk);
}

function onClassifyEnd(this: ClassifiedSocket): void {
  // Plaintext is routed on its first byte, so only an incomplete PROXY header or ClientHello (or
  // nothing at all) can be buffered when the client half-closes here.
  this[kClassifier]!.reject(new SwitchyardError('SY_LSN_EARLY_CLOSE', {}));
}
