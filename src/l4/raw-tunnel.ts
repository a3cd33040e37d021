/**
 * The TCP forward on bare libuv handles: no net.Socket on either side.
 *
 * A Socket is a Duplex stream: building one, connecting it, and taking it through end, finish,
 * destroy and close costs user time that has nothing to do with moving bytes. On a pure port
 * forward with one connection per exchange (bench: tcp-close) the Socket tunnel spent about
 * 120 µs of user CPU per connection against HAProxy's 16, at 0.44-0.49x HAProxy's connection
 * rate; a throwaway forwarder on bare handles used about 45 µs (docs/benchmarks.md, "Connection
 * churn through a TCP forward"). So connections on a port whose routes all forward to IP
 * addresses, with no HTTP route and no PROXY header, take this path: the accepted handle (as
 * accepted, or once the listener has read the ClientHello's SNI on it) and a TCP handle connected
 * to the target are joined here, reading into fast-read's shared buffer and writing through
 * fast-write's direct writes. Everything else (upgrades after HTTP, targets by host name, PROXY
 * headers) stays on tunnel.ts.
 *
 * What a Socket did that is done here instead:
 * - connect timeout: a deadline the tunnel sweeper checks (tunnel-sweeper.ts), as it checks idle
 *   timeouts, instead of a timer per connection; it fires at most two sweeps late;
 * - backpressure: a write libuv could not finish at once stops reading the side that feeds it,
 *   until the last pending write completes (no high-water mark: the kernel's send buffer is one);
 * - half-close: a side's FIN is passed on as a shutdown of the other once every byte before it is
 *   written; a side is closed once both its directions are done, the tunnel once both sides are;
 * - byte counters, for the `bytes` metric.
 */
import { getSystemErrorName } from 'node:util';
import { SwitchyardError } from '../errors.ts';
import { copyShared, readIntoShared, readResult, sharedReadsAvailable, streamWrap } from '../listener/fast-read.ts';
import {
  flushRawHeld,
  type RawTarget,
  type RawWriteOwner,
  rawWritesAvailable,
  type StreamHandle,
  writeRawSoon,
} from '../listener/fast-write.ts';
import type { TargetState } from '../policy/target-state.ts';
import type { CompiledRoute } from '../route/route-table.ts';
import type { ProxyContext } from '../runtime/proxy-context.ts';
import {
  countTunnelBytes,
  logConnectFailed,
  logIdleTimeout,
  nextTarget,
  type TargetCursor,
  type TunnelOptions,
} from './tunnel.ts';

/** libuv's end-of-stream status, the same on every platform. */
export const UV_EOF = -4095;

/** A connected or accepted TCP handle (node's TCPWrap), as this file uses it. */
export interface TcpHandle extends StreamHandle {
  onread: (this: TcpHandle) => void;
  readStart(): number;
  readStop(): number;
  shutdown(req: ShutdownReq): number;
  close(callback?: () => void): void;
  setNoDelay(on: boolean): number;
  getpeername(out: { address?: string }): number;
  connect(req: ConnectReq, address: string, port: number): number;
  connect6(req: ConnectReq, address: string, port: number): number;
  useUserBuffer(buffer: Uint8Array): void;
  [kSide]?: RawSide;
}

interface ConnectReq {
  oncomplete: (status: number) => void;
  tunnel: RawTunnel;
  side: RawSide;
}

interface ShutdownReq {
  oncomplete: (this: ShutdownReq, status: number) => void;
  handle: TcpHandle;
  side: RawSide;
}

interface TcpWrapBinding {
  TCP: new (type: number) => TcpHandle;
  TCPConnectWrap: new () => ConnectReq;
  constants: { SOCKET: number };
}

const kSide = Symbol('switchyard.rawSide');

const tcpWrap = (() => {
  try {
    const b = (process as unknown as { binding(name: string): Partial<TcpWrapBinding> }).binding('tcp_wrap');
    if (typeof b.TCP !== 'function' || typeof b.TCPConnectWrap !== 'function' || b.constants === undefined) return null;
    return b as TcpWrapBinding;
  } catch {
    return null;
  }
})();
const ShutdownWrap = streamWrap?.ShutdownWrap as (new () => ShutdownReq) | undefined;

/** Whether this Node exposes what bare tunnels need; without it every forward uses tunnel.ts. */
export const rawTunnelsAvailable =
  tcpWrap !== null && typeof ShutdownWrap === 'function' && rawWritesAvailable && sharedReadsAvailable;

/** One end of a raw tunnel: a TCP handle and where its two directions stand. */
export class RawSide implements RawTarget {
  readonly handle: TcpHandle;
  readonly tunnel: RawTunnel;
  peer: RawSide | null;
  held: number;
  pending: number;
  bytesWritten: number;
  bytesRead: number;
  reading: boolean;
  /** The peer sent FIN (read EOF). */
  eof: boolean;
  /** A FIN to send once the writes before it are done. */
  endPending: boolean;
  /** Our FIN was sent and acknowledged by libuv. */
  ended: boolean;
  closed: boolean;

  constructor(handle: TcpHandle, tunnel: RawTunnel) {
    this.handle = handle;
    this.tunnel = tunnel;
    this.peer = null;
    this.held = 0;
    this.pending = 0;
    this.bytesWritten = 0;
    this.bytesRead = 0;
    this.reading = false;
    this.eof = false;
    this.endPending = false;
    this.ended = false;
    this.closed = false;
    handle[kSide] = this;
    handle.onread = onRead;
    readIntoShared(handle);
  }

  resume(): void {
    if (this.reading || this.eof || this.closed) return;
    this.reading = true;
    this.handle.readStart();
  }

  pause(): void {
    if (!this.reading) return;
    this.reading = false;
    this.handle.readStop();
  }

  /** Sends FIN after every byte written so far. */
  end(): void {
    if (this.endPending || this.ended || this.closed) return;
    this.endPending = true;
    flushRawHeld(this);
    if (this.pending === 0) this.shutdown();
  }

  shutdown(): void {
    const req = new ShutdownWrap!();
    req.oncomplete = onShutdown;
    req.handle = this.handle;
    req.side = this;
    if (this.handle.shutdown(req) !== 0) this.tunnel.failed();
  }

  writeFailed(status: number): void {
    this.tunnel.ctx.logger.debug(
      { route: this.tunnel.route.name, code: getSystemErrorName(status) },
      'raw tunnel write failed',
    );
    this.tunnel.failed();
  }

  /** The last pending write completed: read the source again, send a FIN that waited. */
  writesDone(): void {
    this.tunnel.activity++;
    if (this.endPending) this.shutdown();
    if (this.peer !== null) this.peer.resume();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reading = false;
    // No close callback: it would be one more call into JavaScript per handle, and nothing waits
    // on it (libuv finishes the close in this loop iteration; bench: tcp-close).
    this.handle.close();
  }
}

/** One forwarded connection on bare handles; see the file comment. */
export class RawTunnel implements RawWriteOwner, TargetCursor {
  readonly ctx: ProxyContext;
  readonly route: CompiledRoute;
  readonly clientAddress: string;
  readonly options: TunnelOptions;
  readonly client: RawSide;
  upstream: RawSide | null;
  target: TargetState | null;
  attempts: number;
  firstIndex: number;
  done: boolean;
  /** Called once, when the tunnel closes its handles. */
  readonly onClosed: (tunnel: RawTunnel) => void;
  activity: number;
  sweptActivity: number;
  idleSince: number;
  connectDeadline: number;
  /** Bytes read from the client before routing (its ClientHello), written upstream first. */
  initial: Buffer | null;

  constructor(
    ctx: ProxyContext,
    handle: TcpHandle,
    route: CompiledRoute,
    clientAddress: string,
    options: TunnelOptions,
    onClosed: (tunnel: RawTunnel) => void,
    initial: Buffer | null = null,
  ) {
    this.ctx = ctx;
    this.route = route;
    this.clientAddress = clientAddress;
    this.options = options;
    this.upstream = null;
    this.target = null;
    this.attempts = 0;
    this.firstIndex = 0;
    this.done = false;
    this.onClosed = onClosed;
    this.activity = 0;
    this.sweptActivity = 0;
    this.idleSince = 0;
    this.connectDeadline = 0;
    this.initial = initial;
    this.client = new RawSide(handle, this);
    // Counted as the Socket tunnel counts them: its client socket read them too.
    if (initial !== null) this.client.bytesRead = initial.length;
    ctx.tunnels.add(this);
  }

  /** Starts connecting to the next target (the first, or the next after a failure). */
  start(): void {
    const target = nextTarget(this);
    if (target === null) {
      this.finish();
      return;
    }
    const { TCP, TCPConnectWrap, constants } = tcpWrap!;
    const upstream = new RawSide(new TCP(constants.SOCKET), this);
    this.upstream = upstream;
    const req = new TCPConnectWrap();
    req.oncomplete = onConnect;
    req.tunnel = this;
    req.side = upstream;
    this.connectDeadline = Date.now() + this.options.connectTimeoutMs;
    const handle = upstream.handle;
    // The host is an IP address (the listener checked): IPv6 exactly when it has a colon.
    const err = target.host.includes(':')
      ? handle.connect6(req, target.host, target.port)
      : handle.connect(req, target.host, target.port);
    if (err !== 0) this.connectFailed(upstream, 'SY_L4_CONNECT', `connect ${getSystemErrorName(err)}`);
  }

  /** The sweep found the connect attempt past its deadline. */
  connectTimeout(): void {
    const error = new SwitchyardError('SY_L4_CONNECT_TIMEOUT', {
      target: this.target?.key,
      timeoutMs: this.options.connectTimeoutMs,
    });
    this.connectFailed(this.upstream!, error.code, error.message);
  }

  /** A connect attempt failed: close its handle, count and log it, try the next target. */
  connectFailed(upstream: RawSide, code: string, detail: string): void {
    if (upstream !== this.upstream || this.done) return;
    this.connectDeadline = 0;
    this.upstream = null;
    upstream.close();
    logConnectFailed(this.ctx, this.route, this.target!, code, detail);
    this.start();
  }

  /** Connected: both sides read, each into the other. */
  joined(): void {
    this.connectDeadline = 0;
    this.idleSince = Date.now();
    const client = this.client;
    const upstream = this.upstream!;
    client.peer = upstream;
    upstream.peer = client;
    upstream.handle.setNoDelay(true);
    upstream.resume();
    // The bytes read while classifying go first; the client is read again once the kernel has
    // them (writesDone resumes it when the write stays pending).
    const initial = this.initial;
    this.initial = null;
    if (initial === null || writeRawSoon(upstream, initial, false, this)) client.resume();
  }

  rawWriteStalled(target: RawTarget): void {
    const source = (target as RawSide).peer;
    if (source !== null) source.pause();
  }

  /** A side read EOF: pass the FIN on, and close what is finished. */
  sideEnded(side: RawSide): void {
    side.eof = true;
    side.pause();
    const peer = side.peer!;
    if (peer.eof && side.held === 0 && side.pending === 0 && peer.held === 0 && peer.pending === 0) {
      // Both peers sent FIN and the kernel has every byte for both: closing sends what it still
      // holds and then FIN, as a shutdown would, and nothing unread is left to draw a reset. This
      // saves a shutdown and its callback per connection (bench: tcp-close).
      this.finish();
      return;
    }
    peer.end();
    this.settle();
  }

  /**
   * Finishes the tunnel once both directions are done: each side sent its FIN and took ours. A
   * side that never takes our FIN (an upstream that stopped reading, say) is left to the idle sweep.
   */
  settle(): void {
    const client = this.client;
    const upstream = this.upstream;
    if (upstream !== null && client.eof && client.ended && upstream.eof && upstream.ended) this.finish();
  }

  /** A read or write error, or a failed shutdown: close both sides now. */
  failed(): void {
    this.finish();
  }

  idleTimeout(): void {
    logIdleTimeout(this.ctx, this.route, this.clientAddress, this.options.idleTimeoutMs);
    this.finish();
  }

  /** Closes both sides once and records the byte counts. */
  finish(): void {
    if (this.done) return;
    this.done = true;
    this.connectDeadline = 0;
    this.initial = null;
    this.ctx.tunnels.delete(this);
    if (this.target !== null) this.target.active--;
    const client = this.client;
    client.close();
    this.upstream?.close();
    countTunnelBytes(this.ctx, this.route, client.bytesRead, client.bytesWritten);
    this.onClosed(this);
  }
}

function onConnect(this: ConnectReq, status: number): void {
  const tunnel = this.tunnel;
  const side = this.side;
  if (tunnel.done || side !== tunnel.upstream) return;
  if (status < 0) tunnel.connectFailed(side, 'SY_L4_CONNECT', `connect ${getSystemErrorName(status)}`);
  else tunnel.joined();
}

function onRead(this: TcpHandle): void {
  const side = this[kSide]!;
  const n = readResult();
  if (n > 0) {
    side.bytesRead += n;
    const tunnel = side.tunnel;
    tunnel.activity++;
    const peer = side.peer!;
    if (!writeRawSoon(peer, copyShared(n), true, tunnel)) side.pause();
    return;
  }
  if (n === 0 || side.closed) return;
  if (n === UV_EOF) side.tunnel.sideEnded(side);
  else side.tunnel.failed();
}

function onShutdown(this: ShutdownReq, status: number): void {
  const side = this.side;
  side.endPending = false;
  if (side.closed) return;
  if (status < 0) {
    side.tunnel.failed();
    return;
  }
  side.ended = true;
  side.tunnel.settle();
}
