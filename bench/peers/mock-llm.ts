/**
 * The mock LLM upstream of the `llm-*` benchmarks, in its own process: Switchyard's
 * `MockLlmServer` (an OpenAI-compatible server on node:http) listening on the given port, so
 * `direct` (wrk straight to it), Switchyard and Portkey all call the same upstream.
 *
 *   node bench/peers/mock-llm.ts --port 41000 [--host 127.0.0.1] [--chunk-size N] [--chunk-delay-ms N]
 *
 * Prints `mock-llm listening on <url>` once ready; stops cleanly on SIGTERM or SIGINT.
 */
import { parseArgs } from 'node:util';
import { MockLlmServer } from '../../src/llm/providers/mock-server.ts';
import type { MockConfigInput } from '../../src/llm/schema.ts';

function whole(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} expects a whole number, got ${text}`);
  return value;
}

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    'chunk-size': { type: 'string' },
    'chunk-delay-ms': { type: 'string' },
  },
});
const port = whole('port', values.port);
if (port === undefined) throw new Error('--port is required');
const config: MockConfigInput = {};
const chunkSize = whole('chunk-size', values['chunk-size']);
if (chunkSize !== undefined) config.chunkSize = chunkSize;
const chunkDelayMs = whole('chunk-delay-ms', values['chunk-delay-ms']);
if (chunkDelayMs !== undefined) config.chunkDelayMs = chunkDelayMs;

const server = new MockLlmServer(config);
const url = await server.listen(port, values.host);
process.stdout.write(`mock-llm listening on ${url}\n`);

function stop(): void {
  server.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
}
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
