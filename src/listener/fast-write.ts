/**
 * Writing sockets on the forwarding hot path without Node's Writable machinery, and knowing when
 * the kernel has the bytes so that recycled read buffers (fast-read.ts) can be reused.
 *
 * `socket.write()` goes through Writable.write, _write, Socket._writeGeneric and writeGeneric
 * (cork/uncork through clearBuffer and _writev) before it reaches the handle's writeBuffer or
 * writev, and it tells the caller nothing about when the memory is free again. When the Writable
 * holds nothing, {@link writeSoon} and {@link writeHeadAndBody} call the handle directly, as
 * writeGeneric does, and fall back to `socket.write()` whenever it holds anything (corked,
 * buffered, connecting, ended). Order is kept either way: libuv queues every write of a stream in
 * call order, and the direct path is only taken when the Writable has nothing of its own pending.
 * Measured on http-64k and tcp-bulk (bench), where recycling the read buffers needs it: see the
 * note in fast-read.ts.
 *
 * What the direct path keeps from `socket.write()`:
 * - the socket's `setTimeout` timer is refreshed, as _writeGeneric does;
 * - `socket.bytesWritten` counts the bytes (it reads the handle's own counter);
 * - an error fails the socket with `destroy(error)`, as writeGeneric does;
 * - a write the kernel did not take at once is tracked here: {@link needsDrain} reports it and the
 *   socket emits 'drain' once the last one completes, as the Writable would.
 *
 * The WriteWrap constructor comes from Node's stream_wrap binding ({@link streamWrap}). If it is
 * ever missing, every write takes the public path and nothing is recycled.
 */
import type { Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { recycle, streamWrap } from './fast-read.ts';

interface WriteReq {
  handle: StreamHandle;
  oncomplete: (this: WriteReq, status: number) => void;
  async: boolean;
  bytes: number;
  buffer: unknown;
  socket: Socket | null;
  /** The bare stream written, for writes made through {@link writeRawSoon}; else null. */
  raw: RawTarget | null;
  /** A chunk to hand back to fast-read once written, or null. */
  recycled: Buffer | null;
}

/** The parts of a stream handle (node's LibuvStreamWrap) that the direct writes use. */
export interface StreamHandle {
  writeBuffer(req: WriteReq, data: Uint8Array): number;
  writeLatin1String(req: WriteReq, data: string): number;
  writev(req: WriteReq, chunks: unknown[], allBuffers: boolean): number;
}

interface StreamWrapBinding {
  WriteWrap: new () => WriteReq;
  streamBaseState: Int32Array;
  kLastWriteWasAsync: number;
}

function loadBinding(): StreamWrapBinding | null {
  const b = streamWrap as Partial<StreamWrapBinding> | null;
  if (b === null || typeof b.WriteWrap !== 'function' || !(b.streamBaseState instanceof Int32Array)) return null;
  if (typeof b.kLastWriteWasAsync !== 'number') return null;
  return b as StreamWrapBinding;
}

const binding = loadBinding();
const WriteWrap = binding?.WriteWrap;
const state = binding?.streamBaseState;
const kAsync = binding?.kLastWriteWasAsync ?? 0;

const kPending = Symbol('switchyard.pendingWrites');

/** The parts of a Writable's `_writableState` that {@link idleHandle} reads. */
interface WritableState {
  length: number;
  corked: number;
  readonly ending: boolean;
  readonly destroyed: boolean;
}

interface InternalSocket extends Socket {
  _handle: StreamHandle | null;
  _writableState: WritableState;
  _unrefTimer(): void;
  [kPending]?: number;
}

function writeError(status: number): NodeJS.ErrnoException {
  const code = getSystemErrorName(status);
  const error: NodeJS.ErrnoException = new Error(`write ${code}`);
  error.code = code;
  error.errno = status;
  error.syscall = 'write';
  return error;
}

function onComplete(this: WriteReq, status: number): void {
  // libuv is done with the memory, whatever the status (a closed handle cancels its writes).
  if (this.recycled !== null) recycle(this.recycled);
  this.buffer = null;
  this.recycled = null;
  const raw = this.raw;
  if (raw !== null) {
    this.raw = null;
    rawWriteComplete(raw, status);
    return;
  }
  const socket = this.socket as InternalSocket;
  this.socket = null;
  socket[kPending] = (socket[kPending] ?? 1) - 1;
  if (socket.destroyed) return;
  if (status < 0) {
    socket.destroy(writeError(status));
    return;
  }
  refreshTimer(socket);
  if (socket[kPending] === 0 && !socket.writableNeedDrain) socket.emit('drain');
}

/** The socket's handle when the Writable has nothing of its own in flight, else null. */
function idleHandle(socket: InternalSocket): StreamHandle | null {
  if (WriteWrap === undefined) return null;
  const handle = socket._handle;
  if (handle === null || handle === undefined) return null;
  // The Writable's own state, read directly: one load where the socket's getters (writableLength,
  // writableCorked, writableEnded, destroyed) would each look it up again on a socket whose shape
  // varies (megamorphic). Its fields and getters are what those getters read.
  const ws = socket._writableState;
  if (ws.length !== 0 || ws.corked !== 0 || ws.ending || ws.destroyed || socket.connecting) return null;
  return handle;
}

/**
 * A WriteWrap free for the next write. The handle only takes hold of the JS object it is given
 * when a write stays pending; after a write the kernel took whole, the object is untouched and is
 * used again, which saves the constructor call (into C++) on most writes (bench: http-small).
 */
let spare: WriteReq | null = null;

function newReq(handle: StreamHandle, socket: Socket | null, recycled: Buffer | null): WriteReq {
  let req = spare;
  if (req === null) {
    req = new WriteWrap!();
    req.oncomplete = onComplete;
  } else spare = null;
  req.handle = handle;
  req.async = false;
  req.bytes = 0;
  req.buffer = null;
  req.socket = socket;
  req.raw = null;
  req.recycled = recycled;
  return req;
}

/**
 * Refreshes the socket's `setTimeout` timer, as _writeGeneric does, when it has one: most of ours
 * have none (`timeout` unset, or 0 once cleared after connecting), and for those the call would
 * only walk the socket and its parents with symbol-keyed loads.
 */
function refreshTimer(socket: InternalSocket): void {
  if (socket.timeout) socket._unrefTimer();
}

/** After a dispatched write: fail the socket on error; track a write left pending. */
function dispatched(socket: InternalSocket, req: WriteReq, err: number, data: unknown): boolean {
  refreshTimer(socket);
  if (err !== 0) {
    socket.destroy(writeError(err));
    return false;
  }
  if (state![kAsync] !== 0) {
    req.async = true;
    req.buffer = data;
    socket[kPending] = (socket[kPending] ?? 0) + 1;
    return false;
  }
  // Written in full: the kernel has the bytes, and the request object is free again.
  if (req.recycled !== null) recycle(req.recycled);
  req.recycled = null;
  req.socket = null;
  spare = req;
  return true;
}

/**
 * Writes a Buffer, or a string as latin1, like `socket.write(data)` would, now; callers first
 * dispatch what is held for the socket. Returns false when the caller should wait for 'drain'
 * before writing more. With `recycled`, `data` is a chunk read through fast-read (or a view of
 * one) that the caller keeps no reference to: it is handed back for reuse once written.
 */
function writeNow(socket: InternalSocket, data: Buffer | string, recycled: boolean): boolean {
  const handle = idleHandle(socket);
  if (handle === null) return typeof data === 'string' ? socket.write(data, 'latin1') : socket.write(data);
  const req = newReq(handle, socket, recycled && typeof data !== 'string' ? data : null);
  const err = typeof data === 'string' ? handle.writeLatin1String(req, data) : handle.writeBuffer(req, data);
  return dispatched(socket, req, err, data);
}

/**
 * A head and body smaller than this in all go out copied into one buffer (one `writeBuffer`)
 * rather than side by side in a writev: the handle's writev reads each element of its JS array
 * through the V8 API, parses the encoding names, and mallocs a backing store for the string parts
 * on every call (bench: http-small, where responses are about 100 bytes; llm-stream, a few events
 * per tick). Below half of Node's 8 KiB allocation pool the copy comes from the pool; larger
 * copies would be fresh ArrayBuffers, the garbage that drove major GCs on http-64k
 * (docs/operations.md, Memory), so those are written in place.
 */
const COPY_BELOW_BYTES = 4096;

/**
 * Writes a head (a latin1 string or bytes, or none) and then `chunks`, like cork, a write of each and uncork would:
 * one buffer or one writev, never a write per piece. With `recycled`, the single chunk is a read
 * as for {@link writeSoon}, handed back once the kernel (or the copy) has its bytes.
 */
export function writeGathered(
  socket: Socket,
  head: string | Buffer | null,
  chunks: Buffer[],
  recycled = false,
  holdFor: HeldWriteOwner | null | false = false,
): boolean {
  const s = socket as InternalSocket;
  if ((s as HoldingSocket)[kHeld]) flushHeld(s);
  const handle = idleHandle(s);
  if (handle === null) {
    socket.cork();
    let ok = head === null || (typeof head === 'string' ? socket.write(head, 'latin1') : socket.write(head));
    for (const chunk of chunks) ok = socket.write(chunk);
    socket.uncork();
    return ok;
  }
  let total = head === null ? 0 : head.length;
  for (const chunk of chunks) total += chunk.length;
  if (total < COPY_BELOW_BYTES) {
    const out = Buffer.allocUnsafe(total);
    // A string head is latin1: one byte per character.
    let at = head === null ? 0 : typeof head === 'string' ? out.write(head, 0, 'latin1') : head.copy(out, 0);
    for (const chunk of chunks) at += chunk.copy(out, at);
    if (recycled) recycle(chunks[0]);
    if (holdFor !== false) return hold(s, out, false, holdFor);
    const req = newReq(handle, socket, null);
    return dispatched(s, req, handle.writeBuffer(req, out), out);
  }
  const list: unknown[] = head === null ? [] : [head, typeof head === 'string' ? 'latin1' : 'buffer'];
  for (const chunk of chunks) list.push(chunk, 'buffer');
  const req = newReq(handle, socket, recycled ? chunks[0] : null);
  return dispatched(s, req, handle.writev(req, list, false), list);
}

/** A head (latin1 string or bytes) and a body, as {@link writeGathered} writes them. */
export function writeHeadAndBody(socket: Socket, head: string | Buffer, body: Buffer, recycled = false): boolean {
  return writeGathered(socket, head, [body], recycled);
}

/**
 * {@link writeHeadAndBody}, held to the end of the poll phase as {@link writeSoon} holds a write
 * when head and body are small enough to go out as one copy.
 */
export function writeHeadAndBodySoon(
  socket: Socket,
  head: string | Buffer,
  body: Buffer,
  recycled: boolean,
  owner: HeldWriteOwner | null,
): boolean {
  return writeGathered(socket, head, [body], recycled, owner);
}

/**
 * Small writes on the forwarding paths are held until the end of the event loop's poll phase and
 * then dispatched back to back ({@link writeSoon}). Sent the moment each read is handled, every
 * write lands some microseconds after the previous one, by which time a fast peer (wrk, nginx)
 * has handled the last and gone back to sleep, so nearly every send pays a wake-up of a sleeping
 * process: on a VM an inter-processor interrupt, the largest single item in the kernel profile
 * (`_raw_spin_unlock_irqrestore` under `sock_def_readable`). Sent together, one wake-up serves
 * many. Measured on tcp-small against HAProxy in the same minutes (3 alternating pairs): 0.69-0.79x
 * with immediate writes, 0.73-0.95x held, with proxy CPU per exchange about 10% lower.
 *
 * The hold is at most one pass of the poll phase: the flush runs from `setImmediate`, in the check
 * phase of the same loop iteration. Only writes below {@link HOLD_BELOW_BYTES} are held; a read
 * that size is the last one libuv makes from that socket in the pass, so each source holds at most
 * one write at a time. Order on a socket is kept: a write too large to hold, or made by any other
 * function here, first dispatches what is held for the socket; callers end a
 * socket with {@link endAfterHeld}, and call {@link flushHeld} before they write to it through
 * `socket.write()`. When a held write then stays pending in the kernel's send buffer, its owner is
 * told ({@link HeldWriteOwner}) and pauses its source, as an immediate write's `false` would have
 * made it do; its 'drain' handler resumes the source.
 */
const HOLD_BELOW_BYTES = 16 * 1024;

const kHeld = Symbol('switchyard.heldWrites');

interface HoldingSocket extends InternalSocket {
  /** How many held writes are queued for this socket. */
  [kHeld]?: number;
}

/**
 * Who is told when a held write to `socket` stays pending in the kernel: it pauses whatever feeds
 * that socket (if it still does) and resumes it on the socket's 'drain', as it would after an
 * immediate write returned false.
 */
export interface HeldWriteOwner {
  heldWriteStalled(socket: Socket): void;
}

/**
 * Held writes in order, four slots each: target (null once dispatched), data, recycled, owner;
 * `length` slots are in use. The list and its spare swap at each flush and keep their arrays:
 * emptied with `length = 0` instead, each pass regrew its list from nothing, about 200 B of
 * garbage per http-small exchange (sampling heap profile, docs/benchmarks.md). One queue holds
 * writes to sockets, another those to bare streams; order only matters per target.
 */
class HeldQueue<T, D, O> {
  list: unknown[];
  length: number;
  spare: unknown[];
  readonly dispatch: (target: T, data: D, recycled: boolean, owner: O) => void;

  constructor(dispatch: (target: T, data: D, recycled: boolean, owner: O) => void) {
    this.list = [];
    this.length = 0;
    this.spare = [];
    this.dispatch = dispatch;
  }

  push(target: T, data: D, recycled: boolean, owner: O): void {
    const list = this.list;
    const i = this.length;
    list[i] = target;
    list[i + 1] = data;
    list[i + 2] = recycled;
    list[i + 3] = owner;
    this.length = i + 4;
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
  }

  /** Dispatches every held write, in order. */
  flush(): void {
    const list = this.list;
    const length = this.length;
    if (length === 0) return;
    this.list = this.spare;
    this.length = 0;
    for (let i = 0; i < length; i += 4) {
      const target = list[i] as T | null;
      if (target !== null) this.dispatch(target, list[i + 1] as D, list[i + 2] as boolean, list[i + 3] as O);
    }
    // Drop the references (targets, data, owners) so the list keeps nothing alive until reused.
    list.fill(null, 0, length);
    this.spare = list;
  }

  /** Dispatches, in order, the `count` writes held for `target`. */
  flushFor(target: T, count: number): void {
    const list = this.list;
    for (let i = 0; i < this.length && count > 0; i += 4) {
      if (list[i] !== target) continue;
      list[i] = null;
      count--;
      this.dispatch(target, list[i + 1] as D, list[i + 2] as boolean, list[i + 3] as O);
    }
  }
}

let flushScheduled = false;

const heldSockets = new HeldQueue<HoldingSocket, Buffer | string, HeldWriteOwner | null>(dispatchHeld);

/** Dispatches one held write; tells its owner when the write stays pending. */
function dispatchHeld(
  socket: HoldingSocket,
  data: Buffer | string,
  recycled: boolean,
  owner: HeldWriteOwner | null,
): void {
  socket[kHeld]!--;
  // The Writable's state rather than the socket's `destroyed` getter (see idleHandle).
  const ws = socket._writableState;
  if (ws.destroyed) {
    if (recycled) recycle(data as Buffer);
    return;
  }
  if (!writeNow(socket, data, recycled) && owner !== null && !ws.destroyed) owner.heldWriteStalled(socket);
}

function flushAll(): void {
  flushScheduled = false;
  heldSockets.flush();
  heldRaw.flush();
}

/** Dispatches, in order, the writes held for `socket`. Call before `end()` or `socket.write()`. */
export function flushHeld(socket: Socket): void {
  const s = socket as HoldingSocket;
  const count = s[kHeld];
  if (count) heldSockets.flushFor(s, count);
}

/** Ends `socket` after the writes held for it: its FIN follows every byte written so far. */
export function endAfterHeld(socket: Socket): void {
  flushHeld(socket);
  socket.end();
}

/**
 * Closes `socket` after the writes held for it, for a peer that is known to send nothing more (a
 * request that asked for `Connection: close`, read in full). When the kernel already has every
 * byte, the descriptor is closed at once, as nginx does without lingering: the kernel sends what
 * it holds, then FIN. Ending instead costs a shutdown request, then the peer's FIN as a read
 * (end of stream, the Readable's end and destroy) before the close. Closing at once took proxy
 * CPU per connection on http-close from 155 to 128 µs (paired A/B, docs/benchmarks.md). Bytes
 * arriving after the close draw a RST, and unread ones at the close would too and drop what is
 * unsent, hence the caller's conditions. With a write still pending this is {@link endAfterHeld}.
 */
export function closeAfterHeld(socket: Socket): void {
  flushHeld(socket);
  const s = socket as InternalSocket;
  if ((s[kPending] ?? 0) === 0 && idleHandle(s) !== null) socket.destroy();
  else socket.end();
}

/**
 * Writes `data` to `socket` at the end of this poll phase (see above), or now when it is too large
 * to hold. Whether the socket can take a write directly is checked once, when the held write is
 * dispatched (`writeNow` falls back to `socket.write()`). Returns false only for a write
 * made now that the caller must wait on ('drain'); a held write that stays pending is reported to
 * `owner` instead. With `recycled`, `data` is a chunk read through fast-read (or a view of one)
 * that the caller keeps no reference to: it is handed back for reuse once written.
 */
export function writeSoon(
  socket: Socket,
  data: Buffer | string,
  recycled: boolean,
  owner: HeldWriteOwner | null,
): boolean {
  const s = socket as HoldingSocket;
  if (data.length >= HOLD_BELOW_BYTES) {
    flushHeld(s);
    return writeNow(s, data, recycled);
  }
  return hold(s, data, recycled, owner);
}

function hold(s: HoldingSocket, data: Buffer | string, recycled: boolean, owner: HeldWriteOwner | null): true {
  heldSockets.push(s, data, recycled, owner);
  s[kHeld] = (s[kHeld] ?? 0) + 1;
  return true;
}

/** Whether writes are waiting to complete, through either path ('drain' follows). */
export function needsDrain(socket: Socket): boolean {
  return socket.writableNeedDrain || ((socket as InternalSocket)[kPending] ?? 0) > 0;
}

/**
 * A stream written through its bare handle, with no Socket around it: the TCP forward's sides
 * (l4/raw-tunnel.ts). It keeps the counts these functions need, and is told when a write failed
 * and when its last pending write completed (where a Socket would emit 'error' and 'drain').
 */
export interface RawTarget {
  readonly handle: StreamHandle;
  /** Closed or closing: what is written to it is dropped. */
  readonly closed: boolean;
  /** Writes held for it ({@link writeRawSoon}) and not yet dispatched. */
  held: number;
  /** Writes dispatched that the kernel did not take at once. */
  pending: number;
  /** Bytes handed to the handle. */
  bytesWritten: number;
  writeFailed(status: number): void;
  writesDone(): void;
}

/** Who is told when a held write to a bare stream stays pending (see {@link HeldWriteOwner}). */
export interface RawWriteOwner {
  rawWriteStalled(target: RawTarget): void;
}

/** Whether bare streams can be written here at all (Node's WriteWrap was found). */
export const rawWritesAvailable = WriteWrap !== undefined && state !== undefined;

function rawWriteComplete(target: RawTarget, status: number): void {
  target.pending--;
  if (target.closed) return;
  if (status < 0) target.writeFailed(status);
  else if (target.pending === 0) target.writesDone();
}

/**
 * Writes `data` to a bare stream now. Returns false when the write stays pending in libuv (the
 * caller stops reading what feeds the stream until `writesDone`); true when the kernel took it,
 * or when it failed (the target was told) or was dropped (the target is closed).
 */
function writeRawNow(target: RawTarget, data: Buffer, recycled: boolean): boolean {
  if (target.closed) {
    if (recycled) recycle(data);
    return true;
  }
  const req = newReq(target.handle, null, recycled ? data : null);
  const err = target.handle.writeBuffer(req, data);
  if (err !== 0) {
    if (recycled) recycle(data);
    req.recycled = null;
    spare = req;
    target.writeFailed(err);
    return true;
  }
  target.bytesWritten += data.length;
  if (state![kAsync] !== 0) {
    req.async = true;
    req.buffer = data;
    req.raw = target;
    target.pending++;
    return false;
  }
  if (recycled) recycle(data);
  req.recycled = null;
  spare = req;
  return true;
}

const heldRaw = new HeldQueue<RawTarget, Buffer, RawWriteOwner>(dispatchRawHeld);

/**
 * {@link writeSoon} for a bare stream: held to the end of the poll phase when small, else written
 * now after what is held for it. Returns false only for a write made now that stayed pending; a
 * held write that does is reported to `owner`. `recycled` as for writeSoon.
 */
export function writeRawSoon(target: RawTarget, data: Buffer, recycled: boolean, owner: RawWriteOwner): boolean {
  if (data.length >= HOLD_BELOW_BYTES) {
    flushRawHeld(target);
    return writeRawNow(target, data, recycled);
  }
  heldRaw.push(target, data, recycled, owner);
  target.held++;
  return true;
}

function dispatchRawHeld(target: RawTarget, data: Buffer, recycled: boolean, owner: RawWriteOwner): void {
  target.held--;
  if (!writeRawNow(target, data, recycled) && !target.closed) owner.rawWriteStalled(target);
}

/** Dispatches, in order, the writes held for a bare stream; call before ending it. */
export function flushRawHeld(target: RawTarget): void {
  if (target.held > 0) heldRaw.flushFor(target, target.held);
}
