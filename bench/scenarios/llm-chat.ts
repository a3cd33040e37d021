/**
 * Non-streaming chat completions through an LLM gateway: the per-request cost of parsing the
 * body, resolving the model, calling the provider and relaying its JSON answer.
 */
import type { Scenario, ScenarioContext } from '../lib/context.ts';
import { LLM_PEERS, runLlmScenario } from '../lib/llm-gateways.ts';
import type { ScenarioResult } from '../lib/results.ts';

/** Scenario `llm-chat`: 64 keep-alive connections posting small chat completions. */
export const llmChat: Scenario = {
  name: 'llm-chat',
  description: 'Non-streaming `POST /v1/chat/completions` through an LLM gateway to a mock OpenAI upstream.',
  peers: LLM_PEERS,
  run(ctx: ScenarioContext): Promise<ScenarioResult> {
    return runLlmScenario(ctx, {
      name: this.name,
      description: this.description,
      stream: false,
      goal: { label: 'non-streaming switchyard / direct requests/s', atLeast: 0.3 },
    });
  },
};
