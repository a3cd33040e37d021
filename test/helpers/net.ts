/**
 * Socket helpers for integration tests: free ports, small servers, and clients that collect
 * what they receive.
 */
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** A port that was free a moment ago (bound on port 0, then released). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  server.listen(0, host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/** Several distinct free ports. */
export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/** A started server plus the sockets it accepted, closed together by `close()`. */
export interface TestServer {
  server: Server;
  port: number;
  sockets: Set<Socket>;
  close(): Promise<void>;
}

/** Starts a net server on 127.0.0.1 port 0 that tracks its sockets. */
export async function startServer(
  onConnection: (socket: Socket) => void,
  options: { allowHalfOpen?: boolean; host?: string } = {},
): Promise<TestServer> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: options.allowHalfOpen ?? false }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onConnection(socket);
  });
  server.listen(0, options.host ?? '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    server,
    port,
    sockets,
    async close() {
      for (const s of sockets) s.destroy();
      if (server.listening) {
        server.close();
        await once(server, 'close');
      }
    },
  };
}

/** An echo server that answers `name:` + data, and on FIN writes `bye` and ends (half-close). */
export function namedEcho(name: string): (socket: Socket) => void {
  return (socket) => {
    socket.on('data', (chunk) => socket.write(`${name}:${chunk.toString()}`));
    socket.on('end', () => socket.end('bye'));
  };
}

/** Connects, optionally writes and half-closes, and collects everything until the peer closes. */
export async function exchange(
  port: number,
  payload: string | Buffer | null,
  options: { end?: boolean; localAddress?: string; host?: string } = {},
): Promise<{ data: string; error: Error | null }> {
  const socket = connect({
    port,
    host: options.host ?? '127.0.0.1',
    localAddress: options.localAddress,
    allowHalfOpen: true,
  });
  const chunks: Buffer[] = [];
  let error: Error | null = null;
  socket.on('data', (c) => chunks.push(c));
  socket.on('error', (e) => {
    error = e;
  });
  socket.on('end', () => socket.end());
  const done = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await once(socket, 'connect').catch(() => {});
  if (payload !== null && !socket.destroyed) socket.write(payload);
  if ((options.end ?? true) && !socket.destroyed) socket.end();
  await done;
  return { data: Buffer.concat(chunks).toString(), error };
}

/** Waits until `socket` received `text` (accumulated), or rejects after `timeoutMs`. */
export function readUntil(socket: Socket, text: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const timer = setTimeout(() => {
      socket.removeListener('data', onData);
      reject(new Error(`timed out waiting for ${JSON.stringify(text)}; got ${JSON.stringify(got)}`));
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      got += chunk.toString();
      if (got.includes(text)) {
        clearTimeout(timer);
        socket.removeListener('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
  });
}

/** Resolves when the socket closes, or rejects after `timeoutMs`. */
export function closed(socket: Socket, timeoutMs = 3000): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('socket still open')), timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Two named echo servers, `A` and `B` (half-close allowed), and a temporary directory for config files. */
export interface EchoPair {
  a: TestServer;
  b: TestServer;
  dir: string;
  close(): Promise<void>;
}

/** Starts an {@link EchoPair}; its directory is made under the system temp directory with `prefix`. */
export async function startEchoPair(prefix: string): Promise<EchoPair> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const a = await startServer(namedEcho('A'), { allowHalfOpen: true });
  const b = await startServer(namedEcho('B'), { allowHalfOpen: true });
  return {
    a,
    b,
    dir,
    async close() {
      await a.close();
      await b.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves once `condition` holds, checked every 5 ms; throws, naming `what`, after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`${what}: not met within ${timeoutMs} ms`);
    await sleep(5);
  }
}
