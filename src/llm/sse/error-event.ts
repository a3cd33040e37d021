/**
 * The event that ends a stream the upstream broke: OpenAI's stream error shape, which the
 * official clients raise as an `APIError`. Never followed by `[DONE]`: the stream did not finish.
 */
import type { SwitchyardError } from '../../errors.ts';
import { openAiErrorBody } from '../openai-error.ts';

/** `data: {"error":{...}}` followed by the blank line that dispatches it. */
export function sseErrorEvent(error: SwitchyardError): string {
  return `data: ${openAiErrorBody(error)}\n\n`;
}
