/** Every scenario, in the order a full run executes them. Add new scenarios here. */
import type { Scenario } from '../lib/context.ts';
import { http64k } from './http-64k.ts';
import { httpClose } from './http-close.ts';
import { httpIdle } from './http-idle.ts';
import { httpSmall } from './http-small.ts';
import { llmChat } from './llm-chat.ts';
import { llmLatency } from './llm-latency.ts';
import { llmStream } from './llm-stream.ts';
import { tcpBulk } from './tcp-bulk.ts';
import { tcpClose } from './tcp-close.ts';
import { tcpSmall } from './tcp-small.ts';
import { tlsPassClose } from './tls-pass-close.ts';
import { tlsPassSmall } from './tls-pass-small.ts';

/** All scenarios of `npm run bench`. */
export const SCENARIOS: readonly Scenario[] = [
  tcpSmall,
  tcpBulk,
  tcpClose,
  tlsPassSmall,
  tlsPassClose,
  httpSmall,
  http64k,
  httpClose,
  httpIdle,
  llmChat,
  llmStream,
  llmLatency,
];
