/**
 * The HTTP load generator: wrk, with a Lua `done()` hook that prints its figures as JSON
 * (wrk-report.lua), so nothing depends on wrk's human-readable output.
 */
import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProcessSupervisor } from './processes.ts';

/** What load to apply: the request and how many connections send it. */
export interface WrkLoad {
  /** Request path, with query if any. */
  readonly path: string;
  /** Open keep-alive connections. */
  readonly connections: number;
  /** wrk threads (each drives connections / threads connections). */
  readonly threads: number;
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  /** A response slower than this counts as a timeout error. */
  readonly timeoutS?: number;
}

/** Error counts as wrk reports them. */
export interface WrkErrors {
  readonly connect: number;
  readonly read: number;
  readonly write: number;
  /** Responses with a status other than 2xx or 3xx. */
  readonly status: number;
  readonly timeout: number;
}

/** Latency distribution in microseconds (wrk measures per request, from send to complete response). */
export interface LatencyUs {
  readonly min: number;
  readonly mean: number;
  readonly stdev: number;
  readonly max: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
}

/** The figures of one wrk run. */
export interface WrkResult {
  readonly durationS: number;
  readonly requests: number;
  /** Response bytes read, headers included. */
  readonly bytes: number;
  readonly requestsPerS: number;
  /** Response bytes per second, in MiB. */
  readonly transferMiBps: number;
  readonly errors: WrkErrors;
  readonly latencyUs: LatencyUs;
}

/** Where and how to run one measurement. */
export interface WrkRun {
  readonly supervisor: ProcessSupervisor;
  /** Directory for the generated script and wrk's log. */
  readonly dir: string;
  /**
   * `http://host:port` of the service under test, or `https://host:port`: wrk then sends the
   * host as SNI (an IP literal included) and does not verify the certificate.
   */
  readonly origin: string;
  readonly load: WrkLoad;
  /** Whole seconds (wrk takes no fractions). */
  readonly durationS: number;
  /** CPU list for taskset, or null. */
  readonly cpus: string | null;
}

const REPORT_LUA = new URL('./wrk-report.lua', import.meta.url);
const MARKER = 'SYBENCH_JSON ';

function luaString(value: string): string {
  return JSON.stringify(value);
}

/** The Lua prelude that sets method, body and headers, followed by the report hook. */
async function script(load: WrkLoad): Promise<string> {
  const lines: string[] = [];
  if (load.method !== undefined) lines.push(`wrk.method = ${luaString(load.method)}`);
  if (load.body !== undefined) lines.push(`wrk.body = ${luaString(load.body)}`);
  for (const [name, value] of Object.entries(load.headers ?? {})) {
    lines.push(`wrk.headers[${luaString(name)}] = ${luaString(value)}`);
  }
  return `${lines.join('\n')}\n${await readFile(REPORT_LUA, 'utf8')}`;
}

/** Runs wrk once and returns its figures; throws when wrk fails or prints no report. */
export async function runWrk(run: WrkRun): Promise<WrkResult> {
  const { load } = run;
  const id = randomUUID().slice(0, 8);
  const scriptFile = join(run.dir, `wrk-${id}.lua`);
  await writeFile(scriptFile, await script(load));
  const durationS = Math.max(1, Math.round(run.durationS));
  const proc = await run.supervisor.spawn({
    name: 'wrk',
    command: 'wrk',
    args: [
      '-t',
      String(load.threads),
      '-c',
      String(load.connections),
      '-d',
      `${durationS}s`,
      '--timeout',
      `${load.timeoutS ?? 5}s`,
      '-s',
      scriptFile,
      `${run.origin}${load.path}`,
    ],
    logFile: join(run.dir, `wrk-${id}.log`),
    captureStdout: true,
    cpus: run.cpus,
  });
  const killer = setTimeout(() => void proc.stop(), (durationS + 30) * 1000);
  const exit = await proc.exited;
  clearTimeout(killer);
  const line = proc.stdout.split('\n').find((l) => l.startsWith(MARKER));
  if (exit.code !== 0 || line === undefined) {
    throw new Error(`wrk failed (${exit.signal ?? `code ${exit.code}`}):\n${proc.stdout}${await proc.logTail()}`);
  }
  const raw = JSON.parse(line.slice(MARKER.length)) as {
    durationUs: number;
    requests: number;
    bytes: number;
    errors: WrkErrors;
    latencyUs: LatencyUs;
  };
  const seconds = raw.durationUs / 1e6;
  return {
    durationS: seconds,
    requests: raw.requests,
    bytes: raw.bytes,
    requestsPerS: raw.requests / seconds,
    transferMiBps: raw.bytes / seconds / 2 ** 20,
    errors: raw.errors,
    latencyUs: raw.latencyUs,
  };
}
