/**
 * Writing sockets on the forwarding hot path without Node's Writable machinery, and knowing when
 * the kernel has the bytes so that recycled read buffers (fast-read.ts) can be reused.
 *
 * `socket.write()` goes through Writable.write, _write, Socket._writeGeneric and writeGeneric
 * (cork/uncork through clearBuffer and _writev) before it reaches the handle's writeBuffer or
 * writev, and it tells the caller nothing about when the memory is free again. When the Writable
 * holds nothing, {@link writeFast} and {@link writeHeadAndBody} call the handle directly, as
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
 * The WriteWrap constructor comes from `process.binding('stream_wrap')`, which is in Node's
 * allow-list (DEP0111 is documentation-only unless `--pending-deprecation`). If it is ever
 * missing, every write takes the public path and nothing is recycled.
 */
import type { Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { recycle } from './fast-read.ts';

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
  try {
    const b = (process as unknown as { binding(name: string): Partial<StreamWrapBinding> }).binding('stream_wrap');
    if (typeof b.WriteWrap !== 'function' || !(b.streamBaseState instanceof Int32Array)) return null;
    if (typeof b.kLastWriteWasAsync !== 'number') return null;
    return b as StreamWrapBinding;
  } catch {
    return null;
  }
}

const binding = loadBinding();
const WriteWrap = binding?.WriteWrap;
const state = binding?.streamBaseState;
const kAsync = binding?.kLastWriteWasAsync ?? 0;

const kPending = Symbol('switchyard.pendingWrites');

interface InternalSocket extends Socket {
  _handle: StreamHandle | null;
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
  socket._unrefTimer();
  if (socket[kPending] === 0 && !socket.writableNeedDrain) socket.emit('drain');
}

/** The socket's handle when the Writable has nothing of its own in flight, else null. */
function idleHandle(socket: InternalSocket): StreamHandle | null {
  if (WriteWrap === undefined) return null;
  const handle = socket._handle;
  if (handle === null || handle === undefined) return null;
  if (socket.writableLength !== 0 || socket.writableCorked !== 0 || socket.connecting) return null;
  if (socket.writableEnded || socket.destroyed) return null;
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

/** After a dispatched write: fail the socket on error; track a write left pending. */
function dispatched(socket: InternalSocket, req: WriteReq, err: number, data: unknown): boolean {
  socket._unrefTimer();
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
 * Writes a Buffer, or a string as latin1, like `socket.write(data)` would. Returns false when the
 * caller should wait for 'drain' before writing more. With `recycled`, `data` is a chunk read
 * through fast-read (or a view of one) that the caller keeps no reference to: it is handed back
 * for reuse once written.
 */
export function writeFast(socket: Socket, data: Buffer | string, recycled = false): boolean {
  const s = socket as InternalSocket;
  const handle = idleHandle(s);
  if (handle === null) return typeof data === 'string' ? socket.write(data, 'latin1') : socket.write(data);
  const req = newReq(handle, socket, recycled && typeof data !== 'string' ? data : null);
  const err = typeof data === 'string' ? handle.writeLatin1String(req, data) : handle.writeBuffer(req, data);
  return dispatched(s, req, err, data);
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
 * as for {@link writeFast}, handed back once the kernel (or the copy) has its bytes.
 */
export function writeGathered(
  socket: Socket,
  head: string | Buffer | null,
  chunks: Buffer[],
  recycled = false,
): boolean {
  const s = socket as InternalSocket;
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

/** Whether writes are waiting to complete, through either path ('drain' follows). */
export function needsDrain(socket: Socket): boolean {
  return socket.writableNeedDrain || ((socket as InternalSocket)[kPending] ?? 0) > 0;
}
