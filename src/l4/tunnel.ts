/**
 * Layer-4 forwarding: connect to a target (with failover), then join the client and upstream
 * sockets until both directions are done.
 *
 * Hot path. Handlers are shared top-level functions that find their tunnel through a symbol on
 * the socket, rather than closures per connection; data moves with `write()` and manual
 * pause/resume instead of `pipe()`, which costs a stream-internal dispatch per chunk
 * (bench: tcp-small, docs/benchmarks.md).
 */
import { connect, type Socket } from 'node:net';
import { SwitchyardError } from '../errors.ts';
import { FAST_READ, type FastSocket, kOnData, readDirect } from '../listener/fast-read.ts';
import { endAfterHeld, flushHeld, type HeldWriteOwner, writeSoon } from '../listener/fast-write.ts';
import { firstTarget } from '../policy/load-balancer.ts';
import type { TargetState } from '../policy/target-state.ts';
import type { CompiledRoute } from '../route/route-table.ts';
import type { ProxyContext } from '../runtime/proxy-context.ts';

const kTunnel = Symbol('switchyard.tunnel');

interface TunnelSocket extends FastSocket {
  [kTunnel]?: Tunnel;
}

/** Options of one tunnel, resolved from the route and the default timeouts. */
export interface TunnelOptions {
  connectTimeoutMs: number;
  idleTimeoutMs: number;
}

/** One forwarded connection: a client socket joined to an upstream socket. */
export class Tunnel implements HeldWriteOwner, TargetCursor {
  readonly ctx: ProxyContext;
  readonly client: TunnelSocket;
  readonly route: CompiledRoute;
  readonly clientAddress: string;
  readonly options: TunnelOptions;
  /** Bytes read from the client before the upstream was connected (peeked for routing). */
  pending: Buffer | null;
  upstream: TunnelSocket | null;
  target: TargetState | null;
  /** Target attempts made so far, for failover. */
  attempts: number;
  /** Index of the first target tried. */
  firstIndex: number;
  done: boolean;
  /** Reads and drains so far, both ways: the idle sweep's sign of life (tunnel-sweeper.ts). */
  activity: number;
  /** {@link activity} at the last sweep. */
  sweptActivity: number;
  /** When the sweep last saw {@link activity} move (ms since epoch). */
  idleSince: number;
  /** Always 0: see {@link connectTimeout}. */
  readonly connectDeadline = 0;
  /**
   * The client's byte counters when the tunnel began, less the bytes already read that it will
   * forward: what came before (a PROXY header, the HTTP exchanges before an upgrade) is not the
   * tunnel's.
   */
  readonly bytesInBefore: number;
  readonly bytesOutBefore: number;

  constructor(
    ctx: ProxyContext,
    client: Socket,
    route: CompiledRoute,
    clientAddress: string,
    pending: Buffer | null,
    options: TunnelOptions,
  ) {
    this.ctx = ctx;
    this.client = client as TunnelSocket;
    this.route = route;
    this.clientAddress = clientAddress;
    this.options = options;
    this.pending = pending;
    this.upstream = null;
    this.target = null;
    this.attempts = 0;
    this.done = false;
    this.firstIndex = 0;
    this.activity = 0;
    this.sweptActivity = 0;
    this.idleSince = 0;
    this.bytesInBefore = client.bytesRead - (pending === null ? 0 : pending.length);
    this.bytesOutBefore = client.bytesWritten;
    this.client[kTunnel] = this;
    client.pause();
    client.on('error', onClientError);
    client.on('close', onClientClose);
  }

  /**
   * Joins a client to an upstream that is already connected (after an HTTP 101 upgrade). The
   * caller has removed its own socket handlers; `target.active` is taken over and released when
   * the tunnel ends.
   */
  static adopt(
    ctx: ProxyContext,
    client: Socket,
    upstream: Socket,
    route: CompiledRoute,
    clientAddress: string,
    target: TargetState,
    options: TunnelOptions,
    toUpstream: Buffer | null,
    toClient: Buffer | null,
  ): Tunnel {
    const tunnel = new Tunnel(ctx, client, route, clientAddress, toUpstream, options);
    const socket = upstream as TunnelSocket;
    socket[kTunnel] = tunnel;
    tunnel.upstream = socket;
    tunnel.target = target;
    if (toClient !== null) {
      flushHeld(client);
      client.write(toClient);
    }
    tunnel.joined();
    return tunnel;
  }

  /** Starts connecting to the next target. */
  start(): void {
    const target = nextTarget(this);
    if (target === null) {
      this.client.destroy();
      return;
    }
    const upstream = connect({
      host: target.host,
      port: target.port,
      allowHalfOpen: true,
      noDelay: true,
      onread: FAST_READ,
    }) as TunnelSocket;
    upstream[kOnData] = ignoreData;
    upstream[kTunnel] = this;
    this.upstream = upstream;
    upstream.setTimeout(this.options.connectTimeoutMs);
    upstream.once('connect', onUpstreamConnect);
    upstream.on('timeout', onUpstreamConnectTimeout);
    upstream.on('error', onUpstreamConnectError);
  }

  /** A connect attempt failed: count it, log it and try the next target. */
  connectFailed(upstream: TunnelSocket, code: string, detail: string): void {
    if (upstream !== this.upstream || this.done) return;
    upstream.removeAllListeners();
    upstream.on('error', noop);
    upstream.destroy();
    this.upstream = null;
    logConnectFailed(this.ctx, this.route, this.target!, code, detail);
    if (this.client.destroyed) return;
    this.start();
  }

  /** The upstream connected: flush what was peeked and start moving bytes both ways. */
  joined(): void {
    const client = this.client;
    const upstream = this.upstream!;
    upstream.removeListener('timeout', onUpstreamConnectTimeout);
    upstream.removeListener('error', onUpstreamConnectError);
    upstream.on('error', onUpstreamError);
    upstream.on('close', onUpstreamClose);
    upstream[kOnData] = onUpstreamData;
    upstream.on('end', onUpstreamEnd);
    upstream.on('drain', onUpstreamDrain);
    // Idle time is the sweeper's (tunnel-sweeper.ts): no timer refreshed per read and write.
    upstream.setTimeout(0);
    client.setTimeout(0);
    client[kOnData] = onClientData;
    client.on('end', onClientEnd);
    client.on('drain', onClientDrain);
    this.ctx.tunnels.add(this);
    if (this.pending !== null) {
      flushHeld(upstream);
      upstream.write(this.pending);
      this.pending = null;
    }
    if (client.readableEnded) upstream.end();
    else client.resume();
  }

  /** A held write to `socket` stayed pending: stop reading the side that feeds it until 'drain'. */
  heldWriteStalled(socket: Socket): void {
    const source = socket === this.client ? this.upstream : this.client;
    if (source !== null && !source.destroyed) source.pause();
  }

  /** No bytes moved either way for the idle timeout: close both sides. */
  idleTimeout(): void {
    logIdleTimeout(this.ctx, this.route, this.clientAddress, this.options.idleTimeoutMs);
    this.finish();
  }

  /** Never called: the connect timeout is the upstream socket's own (`setTimeout`). */
  connectTimeout(): void {}

  /** Both sides are gone (or one failed): release everything once and record the byte counts. */
  finish(): void {
    if (this.done) return;
    this.done = true;
    this.ctx.tunnels.delete(this);
    if (this.target !== null) this.target.active--;
    const client = this.client;
    const upstream = this.upstream;
    if (!client.destroyed) client.destroy();
    if (upstream !== null && !upstream.destroyed) upstream.destroy();
    countTunnelBytes(
      this.ctx,
      this.route,
      client.bytesRead - this.bytesInBefore,
      client.bytesWritten - this.bytesOutBefore,
    );
  }
}

/** Where a tunnel stands in its route's targets (tunnel.ts, raw-tunnel.ts). */
export interface TargetCursor {
  readonly ctx: ProxyContext;
  readonly route: CompiledRoute;
  readonly clientAddress: string;
  /** Target attempts made so far, for failover. */
  attempts: number;
  /** Index of the first target tried. */
  firstIndex: number;
  /** The target of the attempt in progress (its `active` count taken), or null. */
  target: TargetState | null;
}

/**
 * The target to try next, its `active` count taken over from the last one's; null once every
 * target was tried, which is counted and logged (the caller closes the client).
 */
export function nextTarget(t: TargetCursor): TargetState | null {
  const route = t.route;
  const targets = route.targets;
  const action = route.action;
  if (t.attempts === 0 && action.type === 'forward') t.firstIndex = firstTarget(action.loadBalancing, targets, route);
  if (t.attempts >= targets.length) {
    const error = new SwitchyardError('SY_L4_NO_TARGET', { route: route.name });
    t.ctx.metrics.rejected.inc({ reason: error.code });
    t.ctx.logger.warn(
      { code: error.code, route: route.name, client: t.clientAddress, attempts: t.attempts },
      error.message,
    );
    return null;
  }
  const target = targets[(t.firstIndex + t.attempts) % targets.length];
  t.attempts++;
  if (t.target !== null) t.target.active--;
  target.active++;
  t.target = target;
  return target;
}

/** One connect attempt failed (the caller tries the next target). */
export function logConnectFailed(
  ctx: ProxyContext,
  route: CompiledRoute,
  target: TargetState,
  code: string,
  detail: string,
): void {
  ctx.metrics.upstreamErrors.inc({ target: target.key, reason: code });
  ctx.logger.warn({ code, route: route.name, target: target.key, detail }, 'upstream connect failed');
}

export function logIdleTimeout(ctx: ProxyContext, route: CompiledRoute, client: string, idleTimeoutMs: number): void {
  ctx.logger.info({ code: 'SY_L4_IDLE_TIMEOUT', route: route.name, client }, `connection idle for ${idleTimeoutMs} ms`);
}

/** A finished tunnel's bytes: `bytesIn` from the client, `bytesOut` to it. */
export function countTunnelBytes(ctx: ProxyContext, route: CompiledRoute, bytesIn: number, bytesOut: number): void {
  const counters = ctx.metrics.forRoute(route.name);
  counters.bytesIn.inc(bytesIn);
  counters.bytesOut.inc(bytesOut);
}

function noop(): void {}

function ignoreData(): void {}

function onUpstreamConnect(this: TunnelSocket): void {
  const tunnel = this[kTunnel]!;
  if (tunnel.client.destroyed) {
    this.destroy();
    return;
  }
  readDirect(this);
  tunnel.joined();
}

function onUpstreamConnectTimeout(this: TunnelSocket): void {
  const tunnel = this[kTunnel]!;
  const error = new SwitchyardError('SY_L4_CONNECT_TIMEOUT', {
    target: tunnel.target?.key,
    timeoutMs: tunnel.options.connectTimeoutMs,
  });
  tunnel.connectFailed(this, error.code, error.message);
}

function onUpstreamConnectError(this: TunnelSocket, err: Error): void {
  this[kTunnel]!.connectFailed(this, 'SY_L4_CONNECT', err.message);
}

function onClientData(this: TunnelSocket, chunk: Buffer): void {
  const tunnel = this[kTunnel]!;
  tunnel.activity++;
  const upstream = tunnel.upstream!;
  // Backpressure: stop reading the client until the upstream has flushed. A side that is gone
  // takes nothing more, and must not leave the other paused (it would never read its FIN).
  // The chunk is only written, so its memory is recycled once the kernel has it. A small write is
  // held to the end of the poll phase (fast-write.ts), and this socket paused then if need be
  // (heldWriteStalled).
  if (!writeSoon(upstream, chunk, true, tunnel) && !upstream.destroyed) this.pause();
}

function onUpstreamData(this: TunnelSocket, chunk: Buffer): void {
  const tunnel = this[kTunnel]!;
  tunnel.activity++;
  const client = tunnel.client;
  if (!writeSoon(client, chunk, true, tunnel) && !client.destroyed) this.pause();
}

function onUpstreamDrain(this: TunnelSocket): void {
  const tunnel = this[kTunnel]!;
  // A slow reader taking what was queued is progress too.
  tunnel.activity++;
  const client = tunnel.client;
  if (!client.readableEnded) client.resume();
}

function onClientDrain(this: TunnelSocket): void {
  const tunnel = this[kTunnel]!;
  tunnel.activity++;
  const upstream = tunnel.upstream;
  if (upstream !== null && !upstream.readableEnded) upstream.resume();
}

/** Half-close: the client sent FIN, so pass it on; the other direction keeps flowing. */
function onClientEnd(this: TunnelSocket): void {
  const upstream = this[kTunnel]!.upstream;
  if (upstream !== null && !upstream.destroyed && !upstream.writableEnded) endAfterHeld(upstream);
}

function onUpstreamEnd(this: TunnelSocket): void {
  const client = this[kTunnel]!.client;
  if (!client.destroyed && !client.writableEnded) endAfterHeld(client);
}

function onClientError(this: TunnelSocket): void {
  // 'close' follows and finishes the tunnel; the error itself (a reset) needs no more.
}

function onUpstreamError(this: TunnelSocket): void {}

/**
 * A socket that closed without error has finished both directions: its peer sent FIN and we
 * ended our side. The other socket is then ended (not destroyed), so bytes still queued for it
 * are delivered before it closes and finishes the tunnel. An error closes everything at once.
 *
 * An upstream that never answers our FIN is left to the idle sweep (and to shutdown, which
 * finishes every tunnel at its deadline). What it still sends has nobody to go to, so it is read
 * and dropped without counting as activity: a talkative upstream cannot keep a tunnel whose
 * client is gone open past its idle timeout.
 */
function onClientClose(this: TunnelSocket, hadError: boolean): void {
  const tunnel = this[kTunnel]!;
  const upstream = tunnel.upstream;
  if (hadError || upstream === null || upstream.connecting || upstream.closed) {
    tunnel.finish();
    return;
  }
  upstream[kOnData] = ignoreData;
  upstream.resume();
  if (!upstream.writableEnded) endAfterHeld(upstream);
}

function onUpstreamClose(this: TunnelSocket, hadError: boolean): void {
  const tunnel = this[kTunnel]!;
  const client = tunnel.client;
  if (hadError || client.closed) tunnel.finish();
  else if (!client.writableEnded) endAfterHeld(client);
}
