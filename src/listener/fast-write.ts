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
  /** A chunk to hand back to fast-read once written, or null. */
  recycled: Buffer | null;
}

interface StreamHandle {
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
  const socket = this.socket as InternalSocket;
  // libuv is done with the memory, whatever the status (a closed handle cancels its writes).
  if (this.recycled !== null) recycle(this.recycled);
  this.socket = null;
  this.buffer = null;
  this.recycled = null;
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

function newReq(handle: StreamHandle, socket: Socket, recycled: Buffer | null): WriteReq {
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
 * Held writes in order, four slots each: socket (null once dispatched), data, recycled, owner;
 * `heldLength` slots are in use. The two lists swap at each flush and keep their arrays: emptied
 * with `length = 0` instead, each pass regrew its list from nothing, about 200 B of garbage per
 * http-small exchange (sampling heap profile, docs/benchmarks.md).
 */
let held: unknown[] = [];
let heldLength = 0;
let spareHeld: unknown[] = [];
let flushScheduled = false;

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
  const list = held;
  const length = heldLength;
  held = spareHeld;
  heldLength = 0;
  for (let i = 0; i < length; i += 4) {
    const socket = list[i] as HoldingSocket | null;
    if (socket !== null)
      dispatchHeld(
        socket,
        list[i + 1] as Buffer | string,
        list[i + 2] as boolean,
        list[i + 3] as HeldWriteOwner | null,
      );
  }
  // Drop the references (sockets, data, owners) so the list keeps nothing alive until reused.
  list.fill(null, 0, length);
  spareHeld = list;
}

/** Dispatches, in order, the writes held for `socket`. Call before `end()` or `socket.write()`. */
export function flushHeld(socket: Socket): void {
  const s = socket as HoldingSocket;
  if (!s[kHeld]) return;
  for (let i = 0; i < heldLength && s[kHeld]! > 0; i += 4) {
    if (held[i] !== s) continue;
    held[i] = null;
    dispatchHeld(s, held[i + 1] as Buffer | string, held[i + 2] as boolean, held[i + 3] as HeldWriteOwner | null);
  }
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
  const i = heldLength;
  held[i] = s;
  held[i + 1] = data;
  held[i + 2] = recycled;
  held[i + 3] = owner;
  heldLength = i + 4;
  s[kHeld] = (s[kHeld] ?? 0) + 1;
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushAll);
  }
  return true;
}

/** Whether writes are waiting to complete, through either path ('drain' follows). */
export function needsDrain(socket: Socket): boolean {
  return socket.writableNeedDrain || ((socket as InternalSocket)[kPending] ?? 0) > 0;
}
