/**
 * The contenders of the HTTP reverse-proxy scenarios — no proxy, Switchyard's HTTP engine, nginx
 * `proxy_pass`, HAProxy `mode http`, node `http-proxy` and fastify `@fastify/reply-from` — all
 * forwarding to the same nginx backend with upstream keep-alive, and the run shared by the
 * scenarios that put wrk load through them.
 */
import { type Comparison, type Contender, compare, loopbackEndpoint } from './compare.ts';
import type { ScenarioContext } from './context.ts';
import { withEventLoopLag } from './event-loop-lag.ts';
import { startHaproxyHttp } from './haproxy.ts';
import { type BackendFiles, startNginxBackend, startNginxHttpProxy } from './nginx.ts';
import { startNodePeer } from './node-peers.ts';
import type { PeerName } from './peers.ts';
import type { ContenderResult, RatioResult, ScenarioResult } from './results.ts';
import { startSwitchyardHttp } from './switchyard.ts';
import type { WrkLoad } from './wrk.ts';

/** Peers the HTTP contenders need (the backend is nginx, the load wrk). */
export const HTTP_PROXY_PEERS: readonly PeerName[] = ['nginx', 'haproxy', 'wrk'];

/** Ratios reported by the HTTP scenarios: Switchyard over each other contender. */
export const HTTP_PROXY_RATIOS: ReadonlyArray<readonly [string, string]> = [
  ['switchyard', 'nginx'],
  ['switchyard', 'haproxy'],
  ['switchyard', 'http-proxy'],
  ['switchyard', 'reply-from'],
  ['switchyard', 'direct'],
];

/** Contenders forwarding HTTP to `backendPort`, in the order they are measured in round one. */
export function httpProxyContenders(backendPort: number, versions: Readonly<Record<string, string>>): Contender[] {
  return [
    {
      name: 'direct',
      role: 'direct',
      description: 'wrk straight to the backend, no proxy',
      start: async () => loopbackEndpoint(backendPort, []),
    },
    {
      name: 'switchyard',
      role: 'subject',
      description: 'Switchyard, one process, route action `forward` mode `http` (default upstream pool)',
      start: async (ctx) => {
        const { port, process } = await startSwitchyardHttp(ctx, backendPort);
        return loopbackEndpoint(port, [process.pid]);
      },
    },
    {
      name: 'nginx',
      role: 'peer',
      description:
        `${versions.nginx ?? 'nginx'} \`proxy_pass\`, \`worker_processes 1\`, upstream \`keepalive 64\`, ` +
        '`proxy_http_version 1.1`',
      start: async (ctx) => {
        const { port, process } = await startNginxHttpProxy(ctx, backendPort);
        return loopbackEndpoint(port, [process.pid]);
      },
    },
    {
      name: 'haproxy',
      role: 'peer',
      description: `${versions.haproxy ?? 'HAProxy'}, \`mode http\`, \`nbthread 1\`, \`http-reuse always\``,
      start: async (ctx) => {
        const { port, process } = await startHaproxyHttp(ctx, backendPort);
        return loopbackEndpoint(port, [process.pid]);
      },
    },
    {
      name: 'http-proxy',
      role: 'peer',
      description:
        '`node:http` server with `http-proxy` 1.18 and a keep-alive `http.Agent` (bench/peers/http-proxy.ts)',
      start: async (ctx) => {
        const { port, process } = await startNodePeer(ctx, 'http-proxy', backendPort);
        return loopbackEndpoint(port, [process.pid]);
      },
    },
    {
      name: 'reply-from',
      role: 'peer',
      description: 'fastify 5 with `@fastify/reply-from` 12 (undici agent, keep-alive) (bench/peers/reply-from.ts)',
      start: async (ctx) => {
        const { port, process } = await startNodePeer(ctx, 'reply-from', backendPort);
        return loopbackEndpoint(port, [process.pid]);
      },
    },
  ];
}

/** A target from issue 3 that a ratio or a figure is judged against. */
export interface Goal {
  readonly label: string;
  /** The figure: a ratio `[subject, reference, metric]`, or the event-loop lag p99. */
  readonly figure: readonly [string, string, 'requestsPerS' | 'p99'] | 'eventLoopLagP99Ms';
  readonly atLeast?: number;
  readonly atMost?: number;
}

/** Issue 3's goal for Switchyard's event-loop lag under load. */
export const LAG_GOAL: Goal = { label: 'event-loop lag p99 under load', figure: 'eventLoopLagP99Ms', atMost: 10 };

/** Issue 3's goal against `@fastify/reply-from`, stated for every HTTP load scenario. */
export const REPLY_FROM_GOAL: Goal = {
  label: 'switchyard / reply-from req/s',
  figure: ['switchyard', 'reply-from', 'requestsPerS'],
  atLeast: 2.5,
};

/** Issue 3's goals on small keep-alive exchanges. */
export const SMALL_KEEPALIVE_GOALS: readonly Goal[] = [
  { label: 'switchyard / nginx req/s', figure: ['switchyard', 'nginx', 'requestsPerS'], atLeast: 0.8 },
  { label: 'switchyard / nginx p99 latency', figure: ['switchyard', 'nginx', 'p99'], atMost: 1.5 },
  REPLY_FROM_GOAL,
  LAG_GOAL,
];

function goalValue(goal: Goal, ratios: readonly RatioResult[], contenders: readonly ContenderResult[]): number | null {
  if (goal.figure === 'eventLoopLagP99Ms') {
    return contenders.find((c) => c.role === 'subject')?.eventLoopLagP99Ms ?? null;
  }
  const [subject, reference, metric] = goal.figure;
  return ratios.find((r) => r.subject === subject && r.reference === reference)?.[metric] ?? null;
}

/** One line per goal: the target, the figure of this run, and whether it was met. */
export function goalNotes(
  goals: readonly Goal[],
  ratios: readonly RatioResult[],
  contenders: readonly ContenderResult[],
): string[] {
  return goals.map((goal) => {
    const unit = goal.figure === 'eventLoopLagP99Ms' ? ' ms' : 'x';
    const bound = goal.atLeast !== undefined ? `at least ${goal.atLeast}${unit}` : `at most ${goal.atMost}${unit}`;
    const value = goalValue(goal, ratios, contenders);
    if (value === null) return `Goal (issue 3): ${goal.label} ${bound}; not measured in this run.`;
    const met =
      (goal.atLeast === undefined || value >= goal.atLeast) && (goal.atMost === undefined || value <= goal.atMost);
    const shown = goal.figure === 'eventLoopLagP99Ms' ? value.toFixed(1) : value.toFixed(2);
    return `Goal (issue 3): ${goal.label} ${bound}; this run ${shown}${unit}, **${met ? 'met' : 'not met'}**.`;
  });
}

/** What differs between the HTTP load scenarios. */
export interface HttpScenarioSpec {
  readonly name: string;
  readonly description: string;
  readonly load: WrkLoad;
  /** Static files the backend serves (`/hello` and `/small` are always there). */
  readonly files?: BackendFiles;
  /** The response, for the docs. */
  readonly response: string;
  readonly goals: readonly Goal[];
  /** See {@link Comparison.goalRounds}. */
  readonly goalRounds?: number;
}

/**
 * Runs an HTTP load scenario: the backend, the rotated comparison of all contenders, then one
 * more loaded run on a fresh Switchyard for its event-loop lag (see event-loop-lag.ts), and the
 * goals of issue 3 checked against the figures.
 */
export async function runHttpScenario(ctx: ScenarioContext, spec: HttpScenarioSpec): Promise<ScenarioResult> {
  const backend = await startNginxBackend(ctx, spec.files);
  const comparison: Comparison = {
    load: spec.load,
    contenders: httpProxyContenders(backend.port, ctx.peers.versions),
    ratios: HTTP_PROXY_RATIOS,
    primary: 'requestsPerS',
    goalRounds: spec.goalRounds,
  };
  const result = await compare(ctx, comparison);
  const notes: string[] = [];
  const contenders = await withEventLoopLag(
    ctx,
    result.contenders,
    () => startSwitchyardHttp(ctx, backend.port, { name: 'switchyard-lag', logLevel: 'info' }),
    spec.load,
    'lag run (req/s)',
    notes,
  );
  notes.push(...goalNotes(spec.goals, result.ratios, contenders));
  return {
    name: spec.name,
    description: spec.description,
    load: {
      tool: 'wrk',
      request: `GET ${spec.load.path}${Object.entries(spec.load.headers ?? {})
        .map(([k, v]) => `, \`${k}: ${v}\``)
        .join('')}`,
      response: spec.response,
      connections: spec.load.connections,
      threads: spec.load.threads,
      backend: 'nginx, 1 worker',
    },
    ...result,
    contenders,
    notes,
  };
}
