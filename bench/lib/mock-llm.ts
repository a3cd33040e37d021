/**
 * The upstream of the LLM scenarios: Switchyard's mock OpenAI-compatible server in a process of
 * its own (bench/peers/mock-llm.ts), the one every contender calls, `direct` included.
 */
import { fileURLToPath } from 'node:url';
import type { ScenarioContext } from './context.ts';
import { freePort, LOOPBACK } from './ports.ts';
import type { ManagedProcess } from './processes.ts';
import { waitForPort } from './wait-for-port.ts';

const MOCK_SCRIPT = fileURLToPath(new URL('../peers/mock-llm.ts', import.meta.url));

/** A started mock upstream. */
export interface MockLlmInstance {
  readonly port: number;
  /** Base URL including `/v1`, as providers are configured with it. */
  readonly url: string;
  readonly process: ManagedProcess;
}

/**
 * Starts the mock with its defaults: replies echo the last user message, and a stream is written
 * one event per write with no pause between them.
 */
export async function startMockLlm(ctx: ScenarioContext): Promise<MockLlmInstance> {
  const port = await freePort();
  const proc = await ctx.spawn({
    name: 'mock-llm',
    command: ctx.options.nodeBinary,
    args: [MOCK_SCRIPT, '--port', String(port), '--host', LOOPBACK],
    role: 'backend',
  });
  await waitForPort(LOOPBACK, port, proc);
  return { port, url: `http://${LOOPBACK}:${port}/v1`, process: proc };
}
