/**
 * L4 forward tests run once on each forward engine: bare libuv handles (src/l4/raw-tunnel.ts) and
 * net.Sockets (src/l4/tunnel.ts). {@link both} registers the two runs; the test reads which one
 * is running from {@link engine}.
 */
import { test } from 'node:test';

/** The `engine` of the forwards of the test running now. */
export const engine: { name: 'handles' | 'sockets' } = { name: 'handles' };

/** Registers `fn` as two tests, one per engine, named after it. */
export function both(name: string, fn: () => Promise<void>): void {
  for (const which of ['handles', 'sockets'] as const) {
    test(`${name} (${which === 'handles' ? 'bare handles' : 'sockets'})`, async () => {
      engine.name = which;
      await fn();
    });
  }
}
