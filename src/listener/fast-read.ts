/**
 * Reading sockets without Node's per-read allocation and stream dispatch.
 *
 * Every socket Switchyard reads is created with the `onread` option: libuv reads into one shared
 * 64 KiB buffer and calls back directly, and the callback copies the bytes out (a pooled slice
 * for small reads) and hands them to `socket[kOnData]`. The default path mallocs a 64 KiB
 * buffer per read, shrinks it, and goes through Readable's push/emit machinery.
 * Measured with a minimal forwarder under `wrk -c64` (tcp-small, one run): 36 µs of proxy CPU per
 * request with 'data' events, 27 µs with this path on both sides.
 *
 * One buffer can serve every socket because each read is consumed synchronously before libuv
 * performs the next; the copy is what makes that safe when a write of the bytes stays pending.
 * `pause()`/`resume()`, 'end', 'close', 'error' and timeouts behave as usual.
 *
 * Large reads (16 KiB and more) are copied into recycled 64 KiB buffers instead of fresh ones.
 * Every fresh Buffer of 4 KiB or more is a new ArrayBuffer counted as external memory, and at
 * hundreds of MB/s of 64 KiB bodies that churn made V8 run a major GC several times a second:
 * with recycling, http-64k under wrk -c64 went from about 200 to about 150 µs of proxy CPU per
 * request and its p99 latency halved (same run, before and after). A consumer that has written a
 * chunk and keeps no other reference to it hands it back with {@link recycle} (the write paths in
 * fast-write.ts do this once the kernel has the bytes); a chunk never handed back is simply
 * collected, so only a premature recycle could do harm, and only those write paths recycle.
 */
import { type OnReadOpts, type Server, Socket, type SocketConstructorOpts } from 'node:net';
import { getSystemErrorName } from 'node:util';

/** The consumer of a socket's bytes; called with `this` set to the socket. */
export const kOnData = Symbol('switchyard.onData');

/**
 * An optional first look at a read while its bytes are still in the shared buffer
 * (`shared[0..length)`), before they are copied out. It returns true when it has handled them and
 * keeps no reference to `shared` or a view of it (the next read overwrites it); false, having
 * changed nothing, to have the bytes copied and handed to `socket[kOnData]` as usual. Bench:
 * http-small, where the HTTP engine handles whole small requests and responses this way and the
 * copy's Buffer was the largest thing allocated per read (docs/benchmarks.md).
 */
export const kOnShared = Symbol('switchyard.onShared');

/** A socket read through {@link FAST_READ}. */
export interface FastSocket extends Socket {
  [kOnData]: (this: FastSocket, chunk: Buffer) => void;
  [kOnShared]?: (this: FastSocket, shared: Buffer, length: number) => boolean;
}

const READ_SIZE = 64 * 1024;
const SHARED = Buffer.allocUnsafe(READ_SIZE);

/** Reads at least this large are copied into a recycled buffer. */
const RECYCLE_MIN = 16 * 1024;
/** Free recycled buffers kept at most (8 MiB); beyond that, returned ones are left to the GC. */
const RECYCLE_MAX_FREE = 128;

const kFree = Symbol('switchyard.recycledFree');

/** A recycled buffer's memory: `[kFree]` is false while a chunk on it is in use, true when free. */
interface RecycledMemory extends ArrayBuffer {
  [kFree]?: boolean;
}

const freeMemory: RecycledMemory[] = [];

/** A chunk of `length` bytes (at most 64 KiB) on recycled memory. */
function recycledChunk(length: number): Buffer {
  let memory = freeMemory.pop();
  if (memory === undefined) memory = new ArrayBuffer(READ_SIZE) as RecycledMemory;
  memory[kFree] = false;
  return Buffer.from(memory, 0, length);
}

/**
 * Hands a chunk read through {@link FAST_READ} back for reuse: the caller guarantees nothing reads
 * it any more (the kernel has its bytes and no reference is kept). A chunk that is not on recycled
 * memory, or was handed back already, is ignored.
 */
export function recycle(chunk: Uint8Array): void {
  const memory = chunk.buffer as RecycledMemory;
  if (memory[kFree] !== false) return;
  memory[kFree] = true;
  if (freeMemory.length < RECYCLE_MAX_FREE) freeMemory.push(memory);
}

/**
 * Offers the read to the socket's {@link kOnShared}, if any; unless that handled it, copies
 * `length` bytes out of the shared buffer and hands them to the socket's consumer.
 */
function deliver(socket: FastSocket, length: number): void {
  if (socket[kOnShared]?.(SHARED, length)) return;
  socket[kOnData](copyShared(length));
}

/**
 * The first `length` bytes of the shared read buffer, copied out: into Node's 8 KiB pool for
 * small reads (Buffer.allocUnsafe, no malloc), into recycled memory for large ones.
 */
export function copyShared(length: number): Buffer {
  const chunk = length < RECYCLE_MIN ? Buffer.allocUnsafe(length) : recycledChunk(length);
  SHARED.copy(chunk, 0, 0, length);
  return chunk;
}

/**
 * Makes a bare stream handle (no Socket; l4/raw-tunnel.ts) read into the shared buffer, as
 * {@link FAST_READ} does for sockets: its `onread` then finds the byte count (or UV_EOF, or an
 * error) in {@link readResult} and the bytes in the shared buffer, to take with
 * {@link copyShared} before it returns. Returns false, changing nothing, without the binding.
 */
export function readIntoShared(handle: { useUserBuffer(buffer: Uint8Array): void }): boolean {
  if (readBytes === undefined || typeof handle.useUserBuffer !== 'function') return false;
  handle.useUserBuffer(SHARED);
  return true;
}

/** In a bare handle's `onread`: the bytes read into the shared buffer, or a libuv error (< 0). */
export function readResult(): number {
  return (readBytes as Int32Array)[kReadBytes];
}

function onRead(this: FastSocket, length: number): boolean {
  deliver(this, length);
  return true;
}

function ignore(): void {}

/** The parts of a connected TCP handle (node's TCPWrap) that {@link readDirect} uses. */
interface ReadHandle {
  onread: (this: ReadHandle, arrayBuffer: ArrayBuffer | undefined) => unknown;
  [kReader]?: FastSocket;
}

const kReader = Symbol('switchyard.reader');

/**
 * Node's stream_wrap binding, or null. `process.binding('stream_wrap')` is in Node's allow-list
 * (DEP0111 is documentation-only unless `--pending-deprecation`); its users here and in
 * fast-write.ts check the parts they need and fall back to the public paths without them.
 */
export const streamWrap: Readonly<Record<string, unknown>> | null = (() => {
  try {
    return (process as unknown as { binding(name: string): Record<string, unknown> }).binding('stream_wrap');
  } catch {
    return null;
  }
})();

/** `streamBaseState`: where libuv's read count is left for `onread`, at `kReadBytesOrError`. */
const readBytes =
  streamWrap?.streamBaseState instanceof Int32Array && typeof streamWrap.kReadBytesOrError === 'number'
    ? streamWrap.streamBaseState
    : undefined;
const kReadBytes = (streamWrap?.kReadBytesOrError as number | undefined) ?? 0;

/** Whether {@link readIntoShared} and {@link readResult} work here (Node's binding was found). */
export const sharedReadsAvailable = readBytes !== undefined;
/** Node's own `onread` of stream handles (onStreamRead), taken from the first handle seen. */
let nodeOnread: ReadHandle['onread'] | null = null;

/**
 * The handle's `onread` once {@link readDirect} installed it: a read of data goes straight to the
 * socket's consumer; EOF, errors and empty reads go to Node's own onStreamRead as before.
 */
function directRead(this: ReadHandle, arrayBuffer: ArrayBuffer | undefined): unknown {
  const socket = this[kReader] as FastSocket & { _handle: unknown; _unrefTimer(): void };
  const length = (readBytes as Int32Array)[kReadBytes];
  // A destroyed socket has let go of its handle (and libuv stopped reading it when it closed).
  if (length > 0 && socket._handle === this) {
    // As onStreamRead does, a read refreshes a `setTimeout` timer, for the sockets that have one.
    if (socket.timeout) socket._unrefTimer();
    deliver(socket, length);
    return undefined;
  }
  return (nodeOnread as ReadHandle['onread']).call(this, arrayBuffer);
}

/**
 * Lets a connected socket read through {@link FAST_READ} skip Node's onStreamRead for reads of
 * data: the handle calls {@link directRead}, which finds the socket on the handle itself. What
 * that skips, per read: about eight property loads keyed by symbols on the socket (megamorphic,
 * as sockets differ in shape), the `bufferGen` check, and the walk for a `setTimeout` timer on
 * sockets that have none. Bench: http-small and tcp-small (docs/benchmarks.md). Call it once the
 * socket is connected: a connect that tries several addresses replaces the handle on the way.
 * Without the binding this does nothing.
 */
export function readDirect(socket: FastSocket): void {
  const handle = (socket as unknown as { _handle: ReadHandle | null })._handle;
  if (readBytes === undefined || handle === null || handle === undefined) return;
  if (nodeOnread === null) nodeOnread = handle.onread;
  if (handle.onread !== nodeOnread) return;
  handle[kReader] = socket;
  handle.onread = directRead;
}

/** The `onread` option for `net.connect` and `new net.Socket`. */
export const FAST_READ: OnReadOpts = Object.freeze({ buffer: SHARED, callback: onRead as OnReadOpts['callback'] });

/**
 * Re-wraps a socket that a net.Server accepted (with `pauseOnConnect`, so nothing was read yet)
 * in a new Socket that reads through {@link FAST_READ}: net.Server has no `onread` option. The
 * old object gives up its handle and its server link, so connection counts stay right.
 */
export function adoptAccepted(accepted: Socket, options: Pick<SocketConstructorOpts, 'allowHalfOpen'>): FastSocket {
  const internal = accepted as Socket & { _handle: unknown; _server: unknown; server: unknown };
  const handle = internal._handle;
  internal._handle = null;
  const socket = new Socket({
    handle: handle as SocketConstructorOpts['fd'] & object,
    allowHalfOpen: options.allowHalfOpen,
    pauseOnCreate: true,
    onread: FAST_READ,
  } as unknown as SocketConstructorOpts) as FastSocket & { _server: unknown; server: unknown };
  socket.server = internal.server;
  socket._server = internal._server;
  internal._server = null;
  socket[kOnData] = ignore;
  readDirect(socket);
  return socket;
}

/** The parts of a listening TCP handle (node's TCPWrap) that {@link acceptFast} uses. */
interface ListenHandle {
  onconnection: (status: number, clientHandle: object) => void;
  setNoDelay?: (on: boolean) => number;
}

/**
 * Makes a listening `server` wrap each accepted connection itself, in one Socket that reads
 * through {@link FAST_READ} with TCP_NODELAY, and hand it to `onSocket` paused; net.Server would
 * first build a Socket of its own that {@link adoptAccepted} then replaces. On Linux, where
 * accepted sockets inherit TCP_NODELAY from the listening one, it is set once on the listener
 * instead of once per connection. Measured on http-close (one connection per request), where
 * building the second Socket and the setsockopt were about 4% of the proxy's CPU (cpuprofile).
 *
 * `onHandle`, when given, sees each accepted handle first and may take it whole (returning true):
 * it then owns the handle and must call {@link releaseConnection} once the handle is closed.
 * Connections are counted as net.Server counts its own, so `server.close()` still waits for them.
 *
 * Call once the server listens. Returns false, changing nothing, when the server's handle is not a
 * plain TCP listener (then use adoptAccepted from the 'connection' listener).
 */
export function acceptFast(
  server: Server,
  allowHalfOpen: boolean,
  onSocket: (socket: FastSocket) => void,
  onHandle: ((handle: object) => boolean) | null = null,
): boolean {
  const internal = server as Server & { _handle: ListenHandle | null; _connections: number };
  const handle = internal._handle;
  if (handle === null || typeof handle.onconnection !== 'function') return false;
  const inherited = process.platform === 'linux' && handle.setNoDelay?.(true) === 0;
  handle.onconnection = (status, clientHandle) => {
    if (status < 0) {
      const code = getSystemErrorName(status);
      server.emit('error', Object.assign(new Error(`accept ${code}`), { code, errno: status, syscall: 'accept' }));
      return;
    }
    internal._connections++;
    if (onHandle?.(clientHandle)) return;
    const socket = new Socket({
      handle: clientHandle,
      allowHalfOpen,
      pauseOnCreate: true,
      onread: FAST_READ,
    } as unknown as SocketConstructorOpts) as FastSocket & { _server: unknown; server: unknown };
    if (!inherited) socket.setNoDelay(true);
    socket.server = server;
    socket._server = server;
    socket[kOnData] = ignore;
    readDirect(socket);
    onSocket(socket);
  };
  return true;
}

/** What a net.Socket's destroy does for its server: one connection fewer, 'close' once drained. */
export function releaseConnection(server: Server): void {
  const internal = server as Server & { _connections: number; _emitCloseIfDrained?: () => void };
  internal._connections--;
  internal._emitCloseIfDrained?.();
}
