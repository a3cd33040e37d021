/**
 * Latency Switchyard's LLM gateway adds to a non-streaming chat completion, at concurrency 1 (one
 * request in flight: the gateway's own path, no queueing) and 32 (a busy gateway).
 */
import { type Contender, compare } from '../lib/compare.ts';
import type { Scenario, ScenarioContext } from '../lib/context.ts';
import { chatCheck, chatLoad, chatLoadFacts, goalNote, LLM_PEERS, llmCoreContenders } from '../lib/llm-gateways.ts';
import { startMockLlm } from '../lib/mock-llm.ts';
import type { ContenderResult, RatioResult, ScenarioResult } from '../lib/results.ts';

const CONCURRENCY = [1, 32] as const;

/** Issue 4's goal: added p50 latency at concurrency 1, in milliseconds. */
const ADDED_P50_GOAL_MS = 0.2;

function named(contender: Contender, suffix: string): Contender {
  return { ...contender, name: `${contender.name}-${suffix}` };
}

/** `subject`'s latency percentile minus `reference`'s, in milliseconds, or null. */
function addedMs(subject: ContenderResult | undefined, reference: ContenderResult | undefined, p: 'p50' | 'p99') {
  const s = subject?.error === null ? subject.summary : null;
  const r = reference?.error === null ? reference.summary : null;
  return s == null || r == null ? null : (s.latencyUs[p] - r.latencyUs[p]) / 1000;
}

function ms(value: number | null): string {
  return value === null ? 'not measured' : `${value >= 0 ? '+' : ''}${value.toFixed(2)} ms`;
}

/** Scenario `llm-latency`: added p50/p99 of Switchyard over direct calls at -c1 and -c32. */
export const llmLatency: Scenario = {
  name: 'llm-latency',
  description:
    'Latency added by the LLM gateway to a non-streaming chat completion, at concurrency 1 and 32 (Switchyard vs direct).',
  peers: LLM_PEERS,
  async run(ctx: ScenarioContext): Promise<ScenarioResult> {
    const mock = await startMockLlm(ctx);
    const contenders: ContenderResult[] = [];
    const ratios: RatioResult[] = [];
    const notes: string[] = [];
    for (const connections of CONCURRENCY) {
      const suffix = `c${connections}`;
      ctx.log(` concurrency ${connections}`);
      const result = await compare(ctx, {
        load: chatLoad(false, connections),
        contenders: llmCoreContenders(mock).map((c) => named(c, suffix)),
        ratios: [[`switchyard-${suffix}`, `direct-${suffix}`]],
        primary: 'requestsPerS',
        check: chatCheck(false),
      });
      const direct = result.contenders.find((c) => c.role === 'direct');
      const subject = result.contenders.find((c) => c.role === 'subject');
      const p50 = addedMs(subject, direct, 'p50');
      const p99 = addedMs(subject, direct, 'p99');
      for (const c of result.contenders) {
        contenders.push(
          c.role === 'subject'
            ? { ...c, extra: { ...c.extra, 'added p50 (ms)': round(p50), 'added p99 (ms)': round(p99) } }
            : c,
        );
      }
      ratios.push(...result.ratios);
      if (connections === 1) {
        notes.push(
          goalNote(
            'added p50 latency at concurrency 1 (switchyard p50 − direct p50)',
            `at most ${ADDED_P50_GOAL_MS} ms`,
            p50,
            p50 !== null && p50 <= ADDED_P50_GOAL_MS,
            ' ms',
          ),
        );
      }
      notes.push(`Added latency at concurrency ${connections}: p50 ${ms(p50)}, p99 ${ms(p99)}.`);
    }
    const base = chatLoadFacts(chatLoad(false, 1), false);
    return {
      name: this.name,
      description: this.description,
      load: { ...base, connections: CONCURRENCY.join(' and ') },
      primary: 'requestsPerS',
      contenders,
      ratios,
      notes,
    };
  },
};

function round(value: number | null): number | null {
  return value === null ? null : Math.round(value * 1000) / 1000;
}
