/**
 * Helpers for LLM gateway tests: a node:http front that adapts requests to the engine contract
 * (`LlmRequest`/`LlmResponse`), and an official `openai` client whose connections the test owns.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import OpenAI from 'openai';
import { Agent, fetch as undiciFetch } from 'undici';
import { clientGone, type LlmRequest, type LlmResponse } from '../../src/llm/types.ts';

/** Anything that handles LLM requests the way the engine will call it. */
export interface LlmHandler {
  handle(req: LlmRequest, res: LlmResponse): void;
}

/** A started front server. */
export interface LlmFront {
  /** Base URL for OpenAI clients, e.g. `http://127.0.0.1:1234/v1`. */
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** Joins repeated headers with `, ` (the contract's form), names already lower case. */
function flatHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/**
 * Serves `handler` on 127.0.0.1 port 0 through node:http: reads each whole body, and calls
 * clientGone when the client disconnects before the response finished.
 */
export async function startLlmFront(handler: LlmHandler): Promise<LlmFront> {
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => {
      const llmRequest: LlmRequest = {
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        headers: flatHeaders(req),
        body: Buffer.concat(chunks),
        clientAddress: req.socket.remoteAddress ?? '',
        gone: false,
        goneListener: null,
      };
      res.once('close', () => {
        if (!res.writableFinished) clientGone(llmRequest);
      });
      handler.handle(llmRequest, res);
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    server,
    async close() {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** An `openai` client on its own connection pool, so the test can close every socket it opened. */
export interface TestOpenAi {
  client: OpenAI;
  agent: Agent;
  close(): Promise<void>;
}

/** Creates an `openai` client for `baseURL` that never retries by itself. */
export function openAiClient(
  baseURL: string,
  options: { apiKey?: string; headers?: Record<string, string> } = {},
): TestOpenAi {
  const agent = new Agent({ keepAliveTimeout: 1000 });
  const client = new OpenAI({
    baseURL,
    apiKey: options.apiKey ?? 'sk-test-client',
    maxRetries: 0,
    defaultHeaders: options.headers,
    fetch: ((url: string, init: Record<string, unknown>) =>
      undiciFetch(url, { ...init, dispatcher: agent } as never)) as never,
  });
  return {
    client,
    agent,
    async close() {
      // destroy, not close: a test that failed halfway may leave a body unread, and close()
      // would wait for it forever.
      await agent.destroy();
    },
  };
}

/** A function tool for tool-call tests (OpenAI `tools` shape). */
export const weatherTool = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'Weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};
