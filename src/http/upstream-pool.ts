/**
 * Keep-alive connections to one upstream address, shared by every route that targets it and kept
 * across reloads (the pool hangs off the address's TargetState).
 *
 * Hot path: socket handlers are shared top-level functions that reach their UpstreamConnection
 * through a symbol, and idle connections are a LIFO stack (the most recently used socket is the
 * least likely to have been closed by the upstream's own idle timer).
 */
import { connect, type Socket } from 'node:net';
import { FAST_READ, type FastSocket, kOnData, kOnShared, readDirect } from '../listener/fast-read.ts';
import type { TargetState } from '../policy/target-state.ts';

const kConn = Symbol('switchyard.upstream');

interface UpstreamSocket extends FastSocket {
  [kConn]?: UpstreamConnection;
}

/** Whoever is using (or waiting for) an upstream connection: the client connection's exchange. */
export interface PoolUser {
  /** A connection is ready for this user. Called synchronously when one is idle. */
  onUpstreamReady(conn: UpstreamConnection): void;
  /** No connection could be had: `code` says why (connect error, timeout, queue full or wait). */
  onUpstreamUnavailable(code: string, detail: string): void;
  /** Bytes from the upstream while this user holds the connection. */
  onUpstreamData(chunk: Buffer): void;
  /**
   * A read still in fast-read's shared buffer (`kOnShared` there): true when the user handled it
   * without keeping a reference, false (nothing done) to get it copied through onUpstreamData.
   */
  onUpstreamShared(shared: Buffer, length: number): boolean;
  /** The upstream sent FIN. */
  onUpstreamEnd(): void;
  /** The connection closed (after an error or not) while this user held it. */
  onUpstreamClose(): void;
  /** The upstream socket can take more writes. */
  onUpstreamDrain(): void;
  /** Coarse deadline (ms since epoch) of the queue wait, set by the pool. */
  queueDeadline: number;
}

/** Pool settings, from the route config. */
export interface PoolOptions {
  maxConnections: number;
  idleTimeoutMs: number;
  queueSize: number;
  queueTimeoutMs: number;
  connectTimeoutMs: number;
}

/** One socket to the upstream. */
export class UpstreamConnection {
  readonly socket: UpstreamSocket;
  readonly pool: UpstreamPool;
  /** The user holding it, or null while idle or connecting for nobody. */
  user: PoolUser | null;
  /** Requests already completed on this socket: a reused socket may have gone stale. */
  served: number;
  /** When it became idle (coarse clock), for the idle timeout. */
  idleSince: number;
  connected: boolean;

  constructor(pool: UpstreamPool, user: PoolUser) {
    this.pool = pool;
    this.user = user;
    this.served = 0;
    this.idleSince = 0;
    this.connected = false;
    const target = pool.target;
    const socket = connect({
      host: target.host,
      port: target.port,
      noDelay: true,
      onread: FAST_READ,
    }) as UpstreamSocket;
    socket[kConn] = this;
    this.socket = socket;
    socket.setTimeout(pool.options.connectTimeoutMs);
    socket.once('connect', onConnect);
    socket.on('timeout', onConnectTimeout);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket[kOnData] = onData;
    socket[kOnShared] = onShared;
    socket.on('end', onEnd);
    socket.on('drain', onDrain);
  }

  /** Closes the socket; the pool forgets it on 'close'. */
  destroy(): void {
    this.socket.destroy();
  }
}

function onConnect(this: UpstreamSocket): void {
  const conn = this[kConn]!;
  conn.connected = true;
  this.setTimeout(0);
  readDirect(this);
  this.removeListener('timeout', onConnectTimeout);
  const user = conn.user;
  if (user === null) conn.pool.release(conn, true);
  else user.onUpstreamReady(conn);
}

function onConnectTimeout(this: UpstreamSocket): void {
  const conn = this[kConn]!;
  conn.pool.connectFailed(
    conn,
    'SY_UPS_CONNECT_TIMEOUT',
    `connect timed out after ${conn.pool.options.connectTimeoutMs} ms`,
  );
}

function onError(this: UpstreamSocket, err: Error): void {
  const conn = this[kConn]!;
  if (!conn.connected) conn.pool.connectFailed(conn, 'SY_UPS_CONNECT', err.message);
  // Errors after connecting are followed by 'close', which tells the user.
}

function onClose(this: UpstreamSocket): void {
  const conn = this[kConn]!;
  conn.pool.forget(conn);
  const user = conn.user;
  if (user !== null && conn.connected) {
    conn.user = null;
    user.onUpstreamClose();
  }
}

function onData(this: UpstreamSocket, chunk: Buffer): void {
  const user = this[kConn]!.user;
  // Bytes on an idle connection are a protocol error: it can never be reused safely.
  if (user === null) this.destroy();
  else user.onUpstreamData(chunk);
}

function onShared(this: UpstreamSocket, shared: Buffer, length: number): boolean {
  return this[kConn]?.user?.onUpstreamShared(shared, length) === true;
}

function ignoreData(): void {}

function onEnd(this: UpstreamSocket): void {
  const conn = this[kConn]!;
  const user = conn.user;
  if (user === null) this.destroy();
  else user.onUpstreamEnd();
}

function onDrain(this: UpstreamSocket): void {
  this[kConn]!.user?.onUpstreamDrain();
}

/** The pool of one target address. */
export class UpstreamPool {
  readonly target: TargetState;
  options: PoolOptions;
  /** Idle, connected sockets; the last one is the most recently used. */
  readonly idle: UpstreamConnection[];
  /** Users waiting for a connection, oldest first. */
  readonly waiters: PoolUser[];
  /** Sockets open or connecting. */
  total: number;
  closed: boolean;

  constructor(target: TargetState, options: PoolOptions) {
    this.target = target;
    this.options = options;
    this.idle = [];
    this.waiters = [];
    this.total = 0;
    this.closed = false;
  }

  /**
   * Gets a connection for `user`: an idle one at once (synchronously), a new one once connected,
   * or a place in the bounded queue. When none can be had the user hears why. `fresh` skips idle
   * sockets (a retry after a stale one).
   */
  acquire(user: PoolUser, now: number, fresh = false): void {
    const idle = this.idle;
    while (!fresh && idle.length > 0) {
      const conn = idle.pop()!;
      if (conn.socket.destroyed || conn.socket.readableEnded) continue;
      conn.user = user;
      user.onUpstreamReady(conn);
      return;
    }
    if (this.total < this.options.maxConnections) {
      this.total++;
      new UpstreamConnection(this, user);
      return;
    }
    if (this.waiters.length >= this.options.queueSize) {
      user.onUpstreamUnavailable(
        'SY_UPS_POOL_FULL',
        `${this.options.maxConnections} connections busy and the queue is full`,
      );
      return;
    }
    user.queueDeadline = now + this.options.queueTimeoutMs;
    this.waiters.push(user);
  }

  /** Takes new settings (a reload); a raised connection limit serves waiters at once. */
  reconfigure(options: PoolOptions): void {
    this.options = options;
    while (this.waiters.length > 0 && !this.closed && this.total < options.maxConnections) {
      this.total++;
      new UpstreamConnection(this, this.waiters.shift()!);
    }
  }

  /** Takes a user out of the queue (it gave up, e.g. its client left); false when it was not queued. */
  cancel(user: PoolUser): boolean {
    const i = this.waiters.indexOf(user);
    if (i === -1) return false;
    this.waiters.splice(i, 1);
    return true;
  }

  /** Returns a connection after an exchange; unusable ones are closed. */
  release(conn: UpstreamConnection, reusable: boolean): void {
    conn.user = null;
    if (!reusable || this.closed || conn.socket.destroyed) {
      conn.destroy();
      return;
    }
    conn.served++;
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      conn.user = waiter;
      waiter.onUpstreamReady(conn);
      return;
    }
    conn.idleSince = Date.now();
    this.idle.push(conn);
  }

  /** A connect attempt failed: free its slot and tell its user. */
  connectFailed(conn: UpstreamConnection, code: string, detail: string): void {
    const user = conn.user;
    conn.user = null;
    conn.socket.destroy();
    user?.onUpstreamUnavailable(code, detail);
  }

  /** A socket closed: drop it from the idle list, free its slot and serve a waiter with a new one. */
  forget(conn: UpstreamConnection): void {
    this.total--;
    const i = this.idle.indexOf(conn);
    if (i !== -1) this.idle.splice(i, 1);
    if (this.waiters.length > 0 && !this.closed && this.total < this.options.maxConnections) {
      this.total++;
      new UpstreamConnection(this, this.waiters.shift()!);
    }
  }

  /**
   * Takes a connected socket out of the pool for good (a 101 turned it into a tunnel): its
   * handlers are removed and its slot is freed.
   */
  detach(conn: UpstreamConnection): Socket {
    const socket = conn.socket;
    socket.removeListener('error', onError);
    socket.removeListener('close', onClose);
    socket[kOnData] = ignoreData;
    socket[kOnShared] = undefined;
    socket.removeListener('end', onEnd);
    socket.removeListener('drain', onDrain);
    socket[kConn] = undefined;
    conn.user = null;
    this.forget(conn);
    return socket;
  }

  /** Closes idle sockets past their timeout and answers waiters past their deadline. */
  sweep(now: number): void {
    const limit = now - this.options.idleTimeoutMs;
    for (let i = this.idle.length - 1; i >= 0; i--) {
      if (this.idle[i].idleSince <= limit) this.idle[i].destroy();
    }
    while (this.waiters.length > 0 && this.waiters[0].queueDeadline <= now) {
      const waiter = this.waiters.shift()!;
      waiter.onUpstreamUnavailable(
        'SY_UPS_POOL_TIMEOUT',
        `no connection free within ${this.options.queueTimeoutMs} ms`,
      );
    }
  }

  /** Closes every socket; waiters are told the pool is gone. */
  close(): void {
    this.closed = true;
    for (const conn of [...this.idle]) conn.destroy();
    this.idle.length = 0;
    const waiters = this.waiters.splice(0);
    for (const waiter of waiters) waiter.onUpstreamUnavailable('SY_UPS_POOL_CLOSED', 'upstream pool closed');
  }
}
