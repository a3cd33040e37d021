/**
 * The event that ends a stream the upstream broke: OpenAI's stream error shape, which the
 * official clients raise as an `APIError`. Never followed by `[DONE]`: the stream did not finish.
 */
import type { SwitchyardError } from '../../errors.ts';
import { openAiErrorBody } from '../openai-error.ts';

/**
 * `data: {"error":{...}}` followed by the blank line that dispatches it, with the stream's own
 * line ending (`\n` when it is not known yet).
 */
export function sseErrorEvent(error: SwitchyardError, lineEnd = '\n'): string {
  return `data: ${openAiErrorBody(error)}${lineEnd}${lineEnd}`;
}
