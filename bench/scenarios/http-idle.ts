/**
 * Idle keep-alive client connections held by an HTTP reverse proxy: what each one costs in
 * memory. 20,000 connections each send one request, read the response and stay open; the
 * proxy's RSS is read before and after.
 */

import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Scenario, ScenarioContext } from '../lib/context.ts';
import { sampleMemory } from '../lib/memory.ts';
import { startNginxBackend, startNginxHttpProxy } from '../lib/nginx.ts';
import { hardNofileLimit, withNofile } from '../lib/nofile.ts';
import { LOOPBACK } from '../lib/ports.ts';
import type { ManagedProcess } from '../lib/processes.ts';
import type { ContenderResult, ContenderRole, ScenarioResult } from '../lib/results.ts';
import { startSwitchyardHttp } from '../lib/switchyard.ts';
import { runWrk, type WrkLoad } from '../lib/wrk.ts';

/** Connections held, the figure of issue 3, unless the machine's open-files limit is lower. */
const CONNECTIONS = 20_000;
/** Open-files limit wanted for the proxies and the client: client sockets plus upstream ones. */
const NOFILE = 65_536;
/** Descriptors kept free for upstream connections, listeners, logs and the runtime's own. */
const SPARE_FILES = 1000;
/** Time between the last response and the memory reading. */
const SETTLE_MS = 2000;
/** How long the connections are held after the reading, to see they were not closed. */
const HOLD_AFTER_MS = 2000;
const WARMUP: WrkLoad = { path: '/small', connections: 64, threads: 1 };
const GOAL_KIB_PER_CONNECTION = 8;
const CLIENT_SCRIPT = fileURLToPath(new URL('../tools/idle-clients.ts', import.meta.url));

/** How many connections, under which open-files limit, from which source addresses and ports. */
interface IdlePlan {
  readonly connections: number;
  readonly nofile: number;
  /** Local addresses the client binds, in turn (127.0.0.1 is left to other programs). */
  readonly sources: readonly string[];
  /** Source port range, below the ephemeral range so kernel-chosen ports never collide with it. */
  readonly sourcePorts: string;
}

/** Lowest port of the ephemeral range (kernel-chosen source ports). */
async function ephemeralLow(): Promise<number> {
  try {
    return Number((await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/)[0]);
  } catch {
    return 32_768; // Linux's default range, 32768-60999.
  }
}

/** First source port the idle client binds. */
const FIRST_SOURCE_PORT = 10_000;

/**
 * 20,000 connections with a 65,536 open-files limit where the hard limit allows; otherwise the
 * hard limit, and as many connections (in thousands) as fit under it with room to spare. Only
 * root with CAP_SYS_RESOURCE can raise the hard limit, and containers often drop it.
 */
async function plan(): Promise<IdlePlan> {
  const nofile = Math.min(NOFILE, await hardNofileLimit());
  const fit = Math.floor((nofile - SPARE_FILES) / 1000) * 1000;
  if (fit < 1000) throw new Error(`open-files hard limit ${nofile} is too low to hold idle connections`);
  const connections = Math.min(CONNECTIONS, fit);
  const lastPort = (await ephemeralLow()) - 1;
  // Half the range per address at most, leaving room for ports found in use.
  const perAddress = Math.max(1, Math.floor((lastPort - FIRST_SOURCE_PORT + 1) / 2));
  const addresses = Math.ceil(connections / perAddress);
  const sources = Array.from({ length: addresses }, (_, i) => `127.0.0.${i + 2}`);
  return { connections, nofile, sources, sourcePorts: `${FIRST_SOURCE_PORT}-${lastPort}` };
}

interface IdleContender {
  readonly name: string;
  readonly role: ContenderRole;
  readonly description: string;
  start(ctx: ScenarioContext, backendPort: number): Promise<{ port: number; process: ManagedProcess }>;
}

function contenders(versions: Readonly<Record<string, string>>, idle: IdlePlan): IdleContender[] {
  // nginx starts closing idle keep-alive connections once fewer than 1/16 of worker_connections
  // are free ("worker_connections are not enough, reusing connections"); leave it room. It may
  // exceed the open-files limit (nginx warns): only descriptors in use count against that.
  const workerConnections = idle.connections + Math.ceil(idle.connections / 8) + SPARE_FILES;
  return [
    {
      name: 'switchyard',
      role: 'subject',
      description: 'Switchyard, one process, route action `forward` mode `http`, `http.keepAliveTimeoutMs` 600 s',
      start: (ctx, backendPort) => startSwitchyardHttp(ctx, backendPort, { nofile: idle.nofile }),
    },
    {
      name: 'nginx',
      role: 'peer',
      description:
        `${versions.nginx ?? 'nginx'} \`proxy_pass\`, \`worker_processes 1\`, ` +
        `\`worker_connections ${workerConnections}\`, \`keepalive_timeout 600s\``,
      start: (ctx, backendPort) =>
        startNginxHttpProxy(ctx, backendPort, { workerConnections, keepaliveTimeoutS: 600, nofile: idle.nofile }),
    },
  ];
}

interface ClientLine {
  event: 'ready' | 'done';
  open: number;
  failed?: number;
  firstError?: string | null;
  closedEarly?: number;
  portsSkipped?: number;
  ms?: number;
}

/** Waits for the client's JSON line of `event`; fails if it exits first or takes too long. */
async function clientLine(client: ManagedProcess, event: ClientLine['event'], timeoutMs: number): Promise<ClientLine> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const line of client.stdout.split('\n')) {
      if (!line.startsWith('{')) continue;
      const parsed = JSON.parse(line) as ClientLine;
      if (parsed.event === event) return parsed;
    }
    if (client.exit !== null) break;
    await delay(100);
  }
  throw new Error(`idle client gave no "${event}" line:\n${client.stdout}${await client.logTail()}`);
}

async function measure(
  ctx: ScenarioContext,
  contender: IdleContender,
  backendPort: number,
  idle: IdlePlan,
): Promise<ContenderResult> {
  const base: ContenderResult = {
    name: contender.name,
    role: contender.role,
    description: contender.description,
    error: null,
    rounds: [],
    summary: null,
    memory: { idle: null, loaded: null },
    eventLoopLagP99Ms: null,
    extra: {},
  };
  let proxy: ManagedProcess | null = null;
  try {
    const started = await contender.start(ctx, backendPort);
    proxy = started.process;
    // A short load first, so code paths are compiled and the upstream pool exists before "before".
    await runWrk({
      supervisor: ctx.supervisor,
      dir: ctx.dir,
      origin: `http://${LOOPBACK}:${started.port}`,
      load: WARMUP,
      durationS: Math.max(1, ctx.options.warmupS),
      cpus: ctx.cpus('client'),
    });
    await delay(SETTLE_MS);
    const before = await sampleMemory([proxy.pid]);
    const args = [
      CLIENT_SCRIPT,
      '--port',
      String(started.port),
      '--count',
      String(idle.connections),
      '--path',
      WARMUP.path,
      // Requests in flight at once: under nginx's upstream `keepalive 64`, so no contender opens
      // (and nginx then closes) upstream connections beyond its pool while they are set up.
      '--sources',
      idle.sources.join(','),
      '--source-ports',
      idle.sourcePorts,
      '--concurrency',
      '50',
      '--hold-ms',
      String(SETTLE_MS + HOLD_AFTER_MS),
    ];
    const client = await ctx.spawn({
      name: `idle-clients-${contender.name}`,
      ...withNofile(ctx.options.nodeBinary, args, idle.nofile),
      captureStdout: true,
      role: 'client',
    });
    const ready = await clientLine(client, 'ready', 180_000);
    ctx.log(
      `  ${contender.name.padEnd(14)} ${ready.open} connections open (${ready.failed} failed) in ${ready.ms} ms` +
        (ready.portsSkipped ? `, ${ready.portsSkipped} source ports in use skipped` : '') +
        (ready.firstError ? `; first error: ${ready.firstError}` : ''),
    );
    await delay(SETTLE_MS);
    const after = await sampleMemory([proxy.pid]);
    const done = await clientLine(client, 'done', SETTLE_MS + HOLD_AFTER_MS + 30_000);
    await client.stop();
    const growthKiB =
      before === null || after === null || ready.open === 0 ? null : (after.rssKiB - before.rssKiB) / ready.open;
    ctx.log(
      `  ${contender.name.padEnd(14)} RSS ${((before?.rssKiB ?? 0) / 1024).toFixed(1)} -> ` +
        `${((after?.rssKiB ?? 0) / 1024).toFixed(1)} MiB, ${growthKiB?.toFixed(2)} KiB per connection, ` +
        `${done.closedEarly} closed during the hold`,
    );
    return {
      ...base,
      error:
        ready.failed === 0 && ready.open === idle.connections
          ? null
          : `${ready.failed} of ${idle.connections} connections failed (${ready.firstError})`,
      memory: { idle: before, loaded: after },
      extra: {
        'connections held': ready.open,
        'RSS growth per connection (KiB)': growthKiB === null ? null : Number(growthKiB.toFixed(2)),
        'closed by the proxy while held': done.closedEarly ?? null,
        'time to open all (ms)': ready.ms ?? null,
      },
    };
  } catch (error) {
    ctx.signal.throwIfAborted();
    const message = error instanceof Error ? error.message : String(error);
    ctx.log(`  ${contender.name}: ${message}`);
    return { ...base, error: message };
  } finally {
    // Frees 20,000 sockets before the next contender opens its own.
    await proxy?.stop();
  }
}

/** Scenario `http-idle`: 20,000 idle keep-alive connections held by Switchyard and by nginx. */
export const httpIdle: Scenario = {
  name: 'http-idle',
  description: `${CONNECTIONS.toLocaleString('en-US')} idle keep-alive client connections held by an HTTP reverse proxy (fewer where the open-files hard limit is lower).`,
  peers: ['nginx', 'wrk'],
  async run(ctx: ScenarioContext): Promise<ScenarioResult> {
    const idle = await plan();
    if (idle.connections < CONNECTIONS) {
      ctx.log(`  open-files hard limit ${idle.nofile}: holding ${idle.connections} connections, not ${CONNECTIONS}`);
    }
    const backend = await startNginxBackend(ctx);
    const results: ContenderResult[] = [];
    for (const contender of contenders(ctx.peers.versions, idle)) {
      ctx.signal.throwIfAborted();
      results.push(await measure(ctx, contender, backend.port, idle));
    }
    const growth = (name: string): number | null => {
      const value = results.find((c) => c.name === name)?.extra['RSS growth per connection (KiB)'];
      return typeof value === 'number' ? value : null;
    };
    const ours = growth('switchyard');
    const nginx = growth('nginx');
    const notes = [
      ...(idle.connections < CONNECTIONS
        ? [
            `${idle.connections.toLocaleString('en-US')} connections rather than ${CONNECTIONS.toLocaleString('en-US')}: ` +
              `the open-files hard limit here is ${idle.nofile} (\`ulimit -Hn\`) and cannot be raised without ` +
              'CAP_SYS_RESOURCE, and one proxy process must hold every client socket plus its upstream ones.',
          ]
        : []),
      `RSS before: after a ${Math.max(1, ctx.options.warmupS)} s wrk warm-up (64 connections) and ${SETTLE_MS / 1000} s ` +
        `of rest; after: ${SETTLE_MS / 1000} s after the last of the ${idle.connections.toLocaleString('en-US')} ` +
        'responses, with every connection still open. Growth per connection is (after - before) / connections held.',
      ours === null
        ? `Goal (issue 3): RSS growth at most ${GOAL_KIB_PER_CONNECTION} KiB per idle connection; not measured in this run.`
        : `Goal (issue 3): RSS growth at most ${GOAL_KIB_PER_CONNECTION} KiB per idle connection; this run ` +
          `${ours.toFixed(2)} KiB, **${ours <= GOAL_KIB_PER_CONNECTION ? 'met' : 'not met'}**` +
          (nginx === null || nginx <= 0 ? '.' : ` (${(ours / nginx).toFixed(2)}x nginx's ${nginx.toFixed(2)} KiB).`),
    ];
    return {
      name: this.name,
      description: this.description,
      load: {
        tool: 'node bench/tools/idle-clients.ts',
        request: `GET ${WARMUP.path} once per connection, then idle`,
        connections: idle.connections,
        'source addresses': `${idle.sources.join(', ')}, ports from ${idle.sourcePorts}`,
        backend: 'nginx, 1 worker',
      },
      primary: 'requestsPerS',
      contenders: results,
      ratios: [],
      notes,
    };
  },
};
