/** Readiness probe: a service is up once its port accepts a TCP connection. */
import { connect } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { ManagedProcess } from './processes.ts';

function tryConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.setTimeout(500, () => done(false));
  });
}

/**
 * Waits until `host:port` accepts a connection. Fails after `timeoutMs`, or at once when `proc`
 * exits first, with the tail of its log in the message.
 */
export async function waitForPort(
  host: string,
  port: number,
  proc: ManagedProcess | null,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc?.exit) {
      const { code, signal } = proc.exit;
      throw new Error(`${proc.name} exited (${signal ?? `code ${code}`}) before listening:\n${await proc.logTail()}`);
    }
    if (await tryConnect(host, port)) return;
    await delay(50);
  }
  const tail = proc ? `:\n${await proc.logTail()}` : '';
  throw new Error(`${proc?.name ?? `${host}:${port}`} not listening on ${host}:${port} after ${timeoutMs} ms${tail}`);
}
