/**
 * The contenders and load of the LLM gateway scenarios: OpenAI-style chat completions sent
 * straight to the mock upstream (`direct`), through Switchyard's LLM gateway, and through
 * Portkey's gateway, all to the same mock process.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Contender, compare, loopbackEndpoint } from './compare.ts';
import type { ScenarioContext } from './context.ts';
import { withEventLoopLag } from './event-loop-lag.ts';
import { type MockLlmInstance, startMockLlm } from './mock-llm.ts';
import type { PeerName } from './peers.ts';
import {
  ensurePortkey,
  PORTKEY_AS_PUBLISHED,
  PORTKEY_PINNED_NODE_SERVER,
  type PortkeyBuild,
  type PortkeyInstall,
  startPortkey,
} from './portkey.ts';
import type { ContenderResult, RatioResult, ScenarioResult } from './results.ts';
import { startSwitchyardLlm } from './switchyard-llm.ts';
import type { WrkLoad } from './wrk.ts';

/** Peers the LLM scenarios need from Debian (Portkey comes from npm, the mock from this repo). */
export const LLM_PEERS: readonly PeerName[] = ['wrk'];

/** Model named in every request: an alias in Switchyard, passed through as is by the others. */
export const MODEL = 'mock-chat';
/** The user message: the mock's reply echoes it, one stream event per word. */
const USER_TEXT = 'hello there, how are you today?';
/** What every contender must answer: the mock's echo of {@link USER_TEXT}. */
const REPLY = `echo: ${USER_TEXT}`;

/** The request body of the chat scenarios. */
export function chatBody(stream: boolean): string {
  const body: Record<string, unknown> = { model: MODEL, messages: [{ role: 'user', content: USER_TEXT }] };
  if (stream) body.stream = true;
  return JSON.stringify(body);
}

/** `POST /v1/chat/completions` on `connections` keep-alive connections, one wrk thread. */
export function chatLoad(stream: boolean, connections: number): WrkLoad {
  return {
    path: '/v1/chat/completions',
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: chatBody(stream),
    connections,
    threads: 1,
  };
}

/** The facts of a chat load for the results, beside the wrk figures. */
export function chatLoadFacts(load: WrkLoad, stream: boolean): Record<string, string | number> {
  return {
    tool: 'wrk',
    request: `POST ${load.path}, ${Buffer.byteLength(load.body ?? '')}-byte JSON body${stream ? ' with `"stream": true`' : ''}`,
    response: stream
      ? '200 `text/event-stream`, chunked: 10 events (role, 7 words, finish, `[DONE]`), about 2 KiB, written back to back'
      : '200 JSON chat completion, 326 bytes',
    connections: load.connections,
    threads: load.threads,
    backend: 'Switchyard mock OpenAI server (bench/peers/mock-llm.ts, node:http), its own process',
  };
}

function shown(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/** The text of a chat completion stream's deltas, or null when it does not end with `[DONE]`. */
function streamedContent(text: string): string | null {
  if (!text.endsWith('data: [DONE]\n\n')) return null;
  let content = '';
  for (const event of text.split('\n\n')) {
    if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
    const delta = JSON.parse(event.slice('data: '.length))?.choices?.[0]?.delta?.content;
    if (typeof delta === 'string') content += delta;
  }
  return content;
}

/**
 * The comparison's `check`: one request as wrk sends it, which must get a 200 carrying the mock's
 * reply (for a stream: every event, ending with `data: [DONE]`).
 */
export function chatCheck(stream: boolean): (origin: string, load: WrkLoad) => Promise<void> {
  return async (origin, load) => {
    const response = await fetch(`${origin}${load.path}`, {
      method: load.method,
      headers: load.headers,
      body: load.body,
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${shown(text)}`);
    let content: unknown;
    try {
      content = stream ? streamedContent(text) : JSON.parse(text)?.choices?.[0]?.message?.content;
    } catch (error) {
      throw new Error(`unreadable reply (${(error as Error).message}): ${shown(text)}`);
    }
    if (content !== REPLY) throw new Error(`HTTP 200 without the expected reply: ${shown(text)}`);
  };
}

/** Headers that make Portkey route a request to the mock as an OpenAI-compatible provider. */
function portkeyHeaders(mock: MockLlmInstance): Record<string, string> {
  return {
    'x-portkey-provider': 'openai',
    'x-portkey-custom-host': mock.url,
    // The mock ignores it; Portkey sends it on as an OpenAI client would.
    authorization: 'Bearer sk-bench-unused',
  };
}

function portkeyContender(
  name: string,
  how: string,
  install: PortkeyInstall | Error,
  mock: MockLlmInstance,
): Contender {
  const description =
    install instanceof Error
      ? `\`@portkey-ai/gateway\` ${how}`
      : `\`@portkey-ai/gateway\` ${install.versions.gateway} ${how} (\`@hono/node-server\` ` +
        `${install.versions.nodeServer}, \`hono\` ${install.versions.hono}), Node server on Node 24, ` +
        'provider `openai` with `x-portkey-custom-host` set to the mock';
  return {
    name,
    role: 'peer',
    description,
    start: async (ctx) => {
      if (install instanceof Error) throw install;
      const { port, process } = await startPortkey(ctx, name, install);
      return { ...loopbackEndpoint(port, [process.pid]), headers: portkeyHeaders(mock) };
    },
  };
}

async function tryInstall(build: PortkeyBuild, ctx: ScenarioContext): Promise<PortkeyInstall | Error> {
  try {
    return await ensurePortkey(build, (line) => ctx.log(line));
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** `direct` and `switchyard`, both calling `mock`. */
export function llmCoreContenders(mock: MockLlmInstance): Contender[] {
  return [
    {
      name: 'direct',
      role: 'direct',
      description: 'wrk straight to the mock upstream, no gateway',
      start: async () => loopbackEndpoint(mock.port, []),
    },
    {
      name: 'switchyard',
      role: 'subject',
      description:
        'Switchyard, one process, route action `llm`, alias to an `openai` provider at the mock ' +
        '(`authScheme: none`, pool 128 connections, concurrency max 1024 non-adaptive, log level warn)',
      start: async (ctx) => {
        const { port, process } = await startSwitchyardLlm(ctx, mock.url, MODEL);
        return loopbackEndpoint(port, [process.pid]);
      },
    },
  ];
}

/**
 * Every contender: `direct`, `switchyard`, `portkey` as npm installs it, and `portkey-pinned`
 * with the dependency pin that lets it stream (see {@link PORTKEY_PINNED_NODE_SERVER}).
 */
export async function llmContenders(ctx: ScenarioContext, mock: MockLlmInstance): Promise<Contender[]> {
  return [
    ...llmCoreContenders(mock),
    portkeyContender('portkey', 'as npm installs it', await tryInstall(PORTKEY_AS_PUBLISHED, ctx), mock),
    portkeyContender(
      'portkey-pinned',
      'with `@hono/node-server` pinned to 1.3.5 by npm `overrides`, within its declared range',
      await tryInstall(PORTKEY_PINNED_NODE_SERVER, ctx),
      mock,
    ),
  ];
}

/** Ratios of the throughput scenarios. */
export const LLM_RATIOS: ReadonlyArray<readonly [string, string]> = [
  ['switchyard', 'direct'],
  ['switchyard', 'portkey'],
  ['switchyard', 'portkey-pinned'],
];

/** One goal line: `label bound; this run X, met|not met` (or not measured). */
export function goalNote(label: string, bound: string, value: number | null, met: boolean, unit: string): string {
  if (value === null) return `Goal (issue 4): ${label} ${bound}; not measured in this run.`;
  return `Goal (issue 4): ${label} ${bound}; this run ${value.toFixed(2)}${unit}, **${met ? 'met' : 'not met'}**.`;
}

/** The goal on Switchyard's requests/s over `direct`'s. */
export function throughputGoal(label: string, atLeast: number, ratios: readonly RatioResult[]): string {
  const value = ratios.find((r) => r.subject === 'switchyard' && r.reference === 'direct')?.requestsPerS ?? null;
  return goalNote(label, `at least ${atLeast}x`, value, value !== null && value >= atLeast, 'x');
}

/**
 * For each failed peer, the first error its own log gives (a gateway's 500 says little), so the
 * cause is on the page next to the failure.
 */
async function peerFailureNotes(ctx: ScenarioContext, contenders: readonly ContenderResult[]): Promise<string[]> {
  const notes: string[] = [];
  for (const c of contenders) {
    if (c.role !== 'peer' || c.error === null) continue;
    let log = '';
    try {
      log = await readFile(join(ctx.dir, `${c.name}.log`), 'utf8');
    } catch {
      continue;
    }
    const line = log.split('\n').find((l) => /error/i.test(l));
    if (line !== undefined) notes.push(`\`${c.name}\` logged: \`${line.trim().slice(0, 200)}\`.`);
  }
  return notes;
}

/** What differs between the LLM throughput scenarios. */
export interface LlmScenarioSpec {
  readonly name: string;
  readonly description: string;
  readonly stream: boolean;
  /** Issue 4's goal for switchyard / direct requests/s. */
  readonly goal: { readonly label: string; readonly atLeast: number };
  readonly notes?: readonly string[];
}

/**
 * Runs an LLM throughput scenario: the mock upstream, the rotated comparison of every contender
 * on 64 connections, then one more loaded run on a fresh Switchyard logging at `info` for its
 * event-loop lag (see event-loop-lag.ts), and the goal checked against the figures.
 */
export async function runLlmScenario(ctx: ScenarioContext, spec: LlmScenarioSpec): Promise<ScenarioResult> {
  const load = chatLoad(spec.stream, 64);
  const mock = await startMockLlm(ctx);
  const result = await compare(ctx, {
    load,
    contenders: await llmContenders(ctx, mock),
    ratios: LLM_RATIOS,
    primary: 'requestsPerS',
    check: chatCheck(spec.stream),
  });
  const notes = [
    throughputGoal(spec.goal.label, spec.goal.atLeast, result.ratios),
    ...(spec.notes ?? []),
    ...(await peerFailureNotes(ctx, result.contenders)),
  ];
  const contenders = await withEventLoopLag(
    ctx,
    result.contenders,
    () => startSwitchyardLlm(ctx, mock.url, MODEL, { name: 'switchyard-lag', logLevel: 'info' }),
    load,
    'lag run at log level info, one line per request (req/s)',
    notes,
  );
  return {
    name: spec.name,
    description: spec.description,
    load: chatLoadFacts(load, spec.stream),
    ...result,
    contenders,
    notes,
  };
}
