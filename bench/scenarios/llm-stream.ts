/**
 * Streaming chat completions through an LLM gateway: the same request with `"stream": true`, so
 * the gateway relays a chunked `text/event-stream` of several events per request.
 */
import type { Scenario, ScenarioContext } from '../lib/context.ts';
import { LLM_PEERS, runLlmScenario } from '../lib/llm-gateways.ts';
import type { ScenarioResult } from '../lib/results.ts';

/** Scenario `llm-stream`: 64 keep-alive connections reading whole streamed chat completions. */
export const llmStream: Scenario = {
  name: 'llm-stream',
  description:
    'Streaming `POST /v1/chat/completions` (SSE, 10 events) through an LLM gateway to a mock OpenAI upstream.',
  peers: LLM_PEERS,
  run(ctx: ScenarioContext): Promise<ScenarioResult> {
    return runLlmScenario(ctx, {
      name: this.name,
      description: this.description,
      stream: true,
      goal: { label: 'streaming switchyard / direct requests/s', atLeast: 0.7 },
      notes: [
        'Portkey holds the first event of every stream for 25 ms (`setTimeout(25)` in the stream ' +
          'reader of its `build/start-server.js`), so each of its streams takes at least 25 ms.',
      ],
    });
  },
};
