/**
 * One listening server per port. Each new connection is classified before it is routed: an
 * optional PROXY protocol header (trusted peers only), then a TLS ClientHello (for SNI) or
 * plaintext. Ports whose routes need neither are forwarded at once without reading a byte.
 * Ports whose routes all forward on bare handles are classified on the handle (RawClassifier);
 * the others on a net.Socket (Classifier).
 */
import { createServer, isIP, type Server, type Socket } from 'node:net';
import type { Config, ForwardActionConfig } from '../config/schema.ts';
import { SwitchyardError } from '../errors.ts';
import { RawTunnel, rawTunnelsAvailable, type TcpHandle, UV_EOF } from '../l4/raw-tunnel.ts';
import { Tunnel, type TunnelOptions } from '../l4/tunnel.ts';
import { normalizeAddress } from '../route/ip-matcher.ts';
import type { CompiledRoute, MatchContext, PortIndex, RouteTable } from '../route/route-table.ts';
import type { ProxyContext } from '../runtime/proxy-context.ts';
import type { ClassifyDeadline } from './classify-sweeper.ts';
import { looksLikeTls, parseClientHello } from './client-hello.ts';
import {
  acceptFast,
  adoptAccepted,
  copyShared,
  type FastSocket,
  kOnData,
  readIntoShared,
  readResult,
  releaseConnection,
} from './fast-read.ts';
import { type ProxyHeader, parseProxyHeader } from './proxy-protocol.ts';

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
   * Takes a connection on its bare handle when every route of its port forwards to addresses on
   * bare handles (raw-tunnel.ts): at once when the route is known without reading a byte, after
   * the ClientHello when it takes an SNI ({@link RawClassifier}). Returns false to have a Socket
   * made for it.
   */
  private acceptRaw(handle: TcpHandle): boolean {
    const ctx = this.ctx;
    const table = ctx.table;
    const index = table.ports.get(this.port);
    if (ctx.closing || index === undefined || ctx.trustedProxies !== null) return false;
    const mode = bareHandleMode(index);
    if (mode === BARE_NEVER) return false;
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
    if (mode === BARE_AFTER_PEEK) {
      ctx.rawClients++;
      ctx.metrics.activeConnections.inc();
      new RawClassifier(ctx, table, handle, match, this.rawClosed).start();
      return true;
    }
    const route = table.match(match);
    // Every route on the port qualifies (bareHandleMode); none may match this client.
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
      const header = readProxyHeader(data, this.peerTrusted, this.match);
      if (header === NEED_MORE) return;
      if (header instanceof SwitchyardError) {
        this.reject(header);
        return;
      }
      this.proxyPending = false;
      if (header !== null) {
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
    const read = readServerName(this.buffered!, this.match);
    if (read === NEED_MORE) return;
    if (read !== null) this.reject(read);
    else this.route();
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
      this.reject(noMatch(this.match));
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
    logRejected(this.ctx, this.match, error);
    this.buffered = null;
    this.socket.destroy();
  }

  /** Shutdown passed its drain deadline while this connection was still being classified. */
  abort(): void {
    this.socket.destroy();
  }
}

interface ClassifiedHandle extends TcpHandle {
  [kClassifier]?: RawClassifier;
}

/**
 * The {@link Classifier} on a bare handle, for ports where every route forwards on bare handles
 * once the SNI is read (TLS passthrough; see {@link bareHandleMode}). The first bytes are read
 * into fast-read's shared buffer and kept until the ClientHello is complete; the handle then goes
 * to a RawTunnel, which writes them upstream before anything else. Same routing, deadline,
 * rejections and log lines as the Classifier, without the two Sockets a tunnel would otherwise
 * build and tear down per connection (bench: tls-pass-close).
 */
class RawClassifier implements ClassifyDeadline {
  readonly ctx: ProxyContext;
  readonly table: RouteTable;
  readonly handle: ClassifiedHandle;
  readonly match: MatchContext;
  buffered: Buffer | null;
  /** Whether a PROXY header, to be refused (no peer is trusted on this path), may still come. */
  proxyPending: boolean;
  deadline: number;
  /** Called once the handle is closed here or by its tunnel: the listener's accounting. */
  readonly onClosed: () => void;

  constructor(ctx: ProxyContext, table: RouteTable, handle: TcpHandle, match: MatchContext, onClosed: () => void) {
    this.ctx = ctx;
    this.table = table;
    this.handle = handle;
    this.match = match;
    this.buffered = null;
    this.proxyPending = true;
    this.deadline = 0;
    this.onClosed = onClosed;
  }

  start(): void {
    const handle = this.handle;
    handle[kClassifier] = this;
    handle.onread = onRawClassifyRead;
    readIntoShared(handle);
    this.ctx.classifying.add(this, this.table.config.timeouts.classifyMs);
    if (handle.readStart() !== 0) this.close();
  }

  /** A read of `n` bytes into the shared buffer, or an end-of-stream or error status. */
  onRead(n: number): void {
    if (n > 0) {
      const chunk = copyShared(n);
      const data = this.buffered === null ? chunk : Buffer.concat([this.buffered, chunk]);
      this.buffered = data;
      if (this.proxyPending) {
        const header = readProxyHeader(data, false, this.match);
        if (header === NEED_MORE) return;
        if (header !== null) {
          this.reject(header as SwitchyardError);
          return;
        }
        this.proxyPending = false;
      }
      const read = readServerName(data, this.match);
      if (read === NEED_MORE) return;
      if (read !== null) this.reject(read);
      else this.route();
    } else if (n === UV_EOF) {
      // As onClassifyEnd: only an incomplete ClientHello, or nothing, can be buffered here.
      this.reject(new SwitchyardError('SY_LSN_EARLY_CLOSE', {}));
    } else if (n < 0) {
      this.ctx.classifying.delete(this);
      this.close();
    }
  }

  /** Picks the route and hands the handle to its tunnel; closes the connection when none matches. */
  route(): void {
    const ctx = this.ctx;
    const handle = this.handle;
    ctx.classifying.delete(this);
    handle.readStop();
    handle[kClassifier] = undefined;
    const route = this.table.match(this.match);
    if (route === null || route.action.type !== 'forward') {
      this.reject(noMatch(this.match));
      return;
    }
    ctx.metrics.forRoute(route.name).connections.inc();
    const initial = this.buffered;
    this.buffered = null;
    const options = tunnelOptions(route.action, this.table.config);
    new RawTunnel(ctx, handle, route, this.match.clientIp, options, this.onClosed, initial).start();
  }

  onDeadline(): void {
    this.reject(new SwitchyardError('SY_LSN_CLASSIFY_TIMEOUT', { timeoutMs: this.table.config.timeouts.classifyMs }));
  }

  reject(error: SwitchyardError): void {
    if (this.deadline !== 0) this.ctx.classifying.delete(this);
    logRejected(this.ctx, this.match, error);
    this.close();
  }

  abort(): void {
    this.close();
  }

  close(): void {
    this.buffered = null;
    this.handle[kClassifier] = undefined;
    this.handle.close();
    this.onClosed();
  }
}

function onRawClassifyRead(this: ClassifiedHandle): void {
  this[kClassifier]?.onRead(readResult());
}

function noMatch(match: MatchContext): SwitchyardError {
  return new SwitchyardError('SY_ROUTE_NO_MATCH', { port: match.port, host: match.serverName ?? '(none)' });
}

/** Returned by {@link readProxyHeader} and {@link readServerName} while they need more bytes. */
const NEED_MORE = 'need-more';

/**
 * Reads a PROXY header at the start of a connection on a port that peeks: the header, null when
 * the bytes are not one, {@link NEED_MORE}, or the error to reject with (malformed, or sent by a
 * peer that is not trusted: once ports peek, nobody else may pass a header off as payload).
 */
function readProxyHeader(
  data: Buffer,
  peerTrusted: boolean,
  match: MatchContext,
): typeof NEED_MORE | SwitchyardError | ProxyHeader | null {
  const result = parseProxyHeader(data);
  if (result.kind === 'need-more') return NEED_MORE;
  if (result.kind === 'error') return new SwitchyardError('SY_LSN_BAD_PROXY_HEADER', { detail: result.reason });
  if (result.kind === 'none') return null;
  if (!peerTrusted) return new SwitchyardError('SY_LSN_UNTRUSTED_PROXY_HEADER', { peer: match.clientIp });
  return result.header;
}

/**
 * Reads what routing needs from a connection's first bytes into `match`: the SNI of a TLS
 * ClientHello (and that it is TLS), or nothing for plaintext. Returns null once `match` is ready
 * to route, {@link NEED_MORE} for an incomplete ClientHello, or the error to reject it with.
 */
function readServerName(bytes: Buffer, match: MatchContext): typeof NEED_MORE | SwitchyardError | null {
  if (!looksLikeTls(bytes[0])) return null;
  const hello = parseClientHello(bytes);
  if (hello.kind === 'need-more') return NEED_MORE;
  if (hello.kind === 'error') return new SwitchyardError('SY_LSN_BAD_TLS', { detail: hello.reason });
  match.tls = true;
  match.serverName = hello.info.serverName;
  return null;
}

/** The log line and counter of a connection closed because it cannot be routed. */
function logRejected(ctx: ProxyContext, match: MatchContext, error: SwitchyardError): void {
  ctx.metrics.rejected.inc({ reason: error.code });
  ctx.logger.info({ code: error.code, port: match.port, client: match.clientIp, sni: match.serverName }, error.message);
}

function noop(): void {}

/** A forward's timeouts, from the route or the defaults. */
function tunnelOptions(action: ForwardActionConfig, config: Config): TunnelOptions {
  return {
    connectTimeoutMs: action.connectTimeoutMs ?? config.timeouts.connectMs,
    idleTimeoutMs: action.idleTimeoutMs ?? config.timeouts.idleMs,
  };
}

/** How a port's connections are taken (bareHandleMode): on Sockets, */
const BARE_NEVER = 0;
/** on bare handles from accept (the route is known without reading a byte), */
const BARE_AT_ACCEPT = 1;
/** or on bare handles classified by RawClassifier (the route takes the SNI). */
const BARE_AFTER_PEEK = 2;

/**
 * Whether a port's connections go to bare-handle tunnels (raw-tunnel.ts): it has no HTTP route,
 * and each of its routes is a forward with `engine: handles` whose targets are all IP addresses
 * (a raw tunnel connects without a lookup). Decided once per port of a table, so a port that
 * does not qualify costs its connections nothing (no peer-address lookup twice).
 */
const bareHandlePorts = new WeakMap<PortIndex, number>();

function bareHandleMode(index: PortIndex): number {
  let mode = bareHandlePorts.get(index);
  if (mode === undefined) {
    if (index.hasHttp || ![...portRoutes(index)].every(usesBareHandles)) mode = BARE_NEVER;
    else mode = index.needsPeek ? BARE_AFTER_PEEK : BARE_AT_ACCEPT;
    bareHandlePorts.set(index, mode);
  }
  return mode;
}

/** Every route of a port, with or without a host condition. */
function portRoutes(index: PortIndex): Set<CompiledRoute> {
  const routes = new Set(index.any);
  for (const list of index.exact.values()) for (const route of list) routes.add(route);
  for (const list of index.wildcards.values()) for (const route of list) routes.add(route);
  return routes;
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
