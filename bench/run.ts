/**
 * `npm run bench`: runs Switchyard beside its peers on this machine, in one run, and writes the
 * figures to bench/results/ and docs/benchmarks.md. See `--help` and docs/benchmarks.md.
 */
import { access, chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Cleanup } from './lib/cleanup.ts';
import { type RunOptions, type Scenario, ScenarioContext } from './lib/context.ts';
import { exec } from './lib/exec.ts';
import { machineInfo } from './lib/machine.ts';
import { ensurePeers } from './lib/peers.ts';
import { ProcessSupervisor } from './lib/processes.ts';
import { QUIET_STEAL_PERCENT, quietRoundRatios } from './lib/quiet-rounds.ts';
import { writeResultsSection } from './lib/render.ts';
import type { RunResults, ScenarioResult } from './lib/results.ts';
import { SCENARIOS } from './scenarios/index.ts';

const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url));
const REPO_ROOT = resolve(BENCH_DIR, '..');
const LATEST = join(BENCH_DIR, 'results', 'latest.json');
const SCRATCH = join(BENCH_DIR, 'results', 'scratch.json');
const DOC = join(REPO_ROOT, 'docs', 'benchmarks.md');

// Many short rounds rather than one long run per contender: load from other users of a shared
// machine comes in bursts, and rotating short rounds spreads a burst over all contenders. Measured
// on the 2-core dev VM: one 10 s run per contender gave switchyard/haproxy anywhere from 0.45x to
// 0.73x depending on the round; the median of 3 rotated rounds is what docs/benchmarks.md quotes
// (9 for tcp-small, http-small and http-close, whose goals lie within that spread: GOAL_ROUNDS in
// compare.ts).
const DEFAULT_DURATION_S = 5;
const DEFAULT_ROUNDS = 3;

const HELP = `Usage: npm run bench -- [options]

Runs every scenario (or those given with --only) against Switchyard and its peers on loopback,
writes the figures as JSON and renders them into docs/benchmarks.md.

Options:
  --quick              smoke run (~30 s): 3 s measured, 1 s warm-up, 1 round
  --duration S         seconds of each measured run (default 5)
  --warmup S           seconds of warm-up before each measured run (default 1)
  --rounds N           measured runs per contender, in rotated order (default 3, and 9 for
                       tcp-small, http-small and http-close; 1 with --quick)
  --only NAME[,NAME]   run only these scenarios (${SCENARIOS.map((s) => s.name).join(', ')})
  --pin                taskset: load generator and backend on CPU 0, proxy under test on CPU 1
  --switchyard DIR     Switchyard checkout to measure (default: this repository)
  --out FILE           results file (default bench/results/latest.json for a full default run,
                       bench/results/scratch.json otherwise)
  --render / --no-render
                       render docs/benchmarks.md (default: only for a full run written to latest.json)
  --keep-temp          keep the temp directory with configs and logs
  --list               list scenarios and exit
  -h, --help           this help
`;

interface Cli {
  readonly options: RunOptions;
  readonly scenarios: readonly Scenario[];
  readonly out: string;
  readonly render: boolean;
  readonly keepTemp: boolean;
  readonly command: string;
}

function positive(name: string, text: string | undefined, fallback: number, allowZero = false): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new Error(`--${name} expects a whole number${allowZero ? '' : ' above 0'}, got ${JSON.stringify(text)}`);
  }
  return value;
}

async function nodeBinary(): Promise<string> {
  const pinned = join(REPO_ROOT, 'node_modules', '.bin', 'node');
  try {
    await access(pinned);
    return pinned;
  } catch {
    return process.execPath;
  }
}

async function parseCli(argv: string[]): Promise<Cli | null> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: 'boolean' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      only: { type: 'string' },
      pin: { type: 'boolean' },
      switchyard: { type: 'string' },
      out: { type: 'string' },
      render: { type: 'boolean' },
      'no-render': { type: 'boolean' },
      'keep-temp': { type: 'boolean' },
      list: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return null;
  }
  if (values.list) {
    for (const s of SCENARIOS) process.stdout.write(`${s.name.padEnd(16)} ${s.description}\n`);
    return null;
  }
  const quick = values.quick === true;
  let scenarios = SCENARIOS;
  if (values.only !== undefined) {
    const names = values.only.split(',').map((n) => n.trim());
    const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n));
    if (unknown.length > 0) {
      throw new Error(`unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`);
    }
    scenarios = SCENARIOS.filter((s) => names.includes(s.name));
  }
  const full = !quick && values.only === undefined;
  const out = values.out !== undefined ? resolve(values.out) : full ? LATEST : SCRATCH;
  return {
    options: {
      durationS: positive('duration', values.duration, quick ? 3 : DEFAULT_DURATION_S),
      warmupS: positive('warmup', values.warmup, 1, true),
      rounds: positive('rounds', values.rounds, quick ? 1 : DEFAULT_ROUNDS),
      roundsExplicit: quick || values.rounds !== undefined,
      pin: values.pin === true,
      switchyardRoot: resolve(values.switchyard ?? REPO_ROOT),
      nodeBinary: await nodeBinary(),
    },
    scenarios,
    out,
    render: values['no-render'] ? false : (values.render ?? out === LATEST),
    keepTemp: values['keep-temp'] === true,
    command: `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`,
  };
}

const interrupt = new AbortController();

/** Progress on stderr; silent once interrupted, while everything is being torn down. */
function log(line: string): void {
  if (!interrupt.signal.aborted) process.stderr.write(`${line}\n`);
}

async function gitCommit(root: string): Promise<string | null> {
  const head = await exec('git', ['-C', root, 'rev-parse', '--short', 'HEAD']);
  if (head.code !== 0) return null;
  const dirty = await exec('git', ['-C', root, 'status', '--porcelain', '--', 'src']);
  return `${head.stdout.trim()}${dirty.stdout.trim() === '' ? '' : '+dirty'}`;
}

function failedScenario(scenario: Scenario, error: unknown): ScenarioResult {
  return {
    name: scenario.name,
    description: scenario.description,
    load: {},
    primary: 'requestsPerS',
    contenders: [],
    ratios: [],
    notes: [],
    error: error instanceof Error ? error.message : String(error),
  };
}

function anyFailure(results: RunResults): boolean {
  return results.scenarios.some((s) => s.error || s.contenders.some((c) => c.error !== null));
}

/** Debian installs nginx and haproxy in /usr/sbin, which a non-root PATH often lacks. */
function addSbinToPath(): void {
  const dirs = (process.env.PATH ?? '').split(':').filter((d) => d !== '');
  for (const dir of ['/usr/sbin', '/sbin']) if (!dirs.includes(dir)) dirs.push(dir);
  process.env.PATH = dirs.join(':');
}

async function main(): Promise<number> {
  const cli = await parseCli(process.argv.slice(2));
  if (cli === null) return 0;
  addSbinToPath();
  const root = new Cleanup();
  const supervisor = new ProcessSupervisor();
  root.add('stop processes', () => supervisor.close());

  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupt.signal.aborted) process.exit(130);
    log(`\nbench: ${signal}, stopping everything`);
    interrupt.abort();
    void root.run().finally(() => process.exit(130));
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);

  try {
    const runDir = await mkdtemp(join(tmpdir(), 'switchyard-bench-'));
    // nginx workers run as nobody when started by root; they must reach the files served.
    await chmod(runDir, 0o755);
    if (cli.keepTemp) log(`bench: temp directory ${runDir} is kept`);
    else root.add('remove temp directory', () => rm(runDir, { recursive: true, force: true }));

    const peers = await ensurePeers(
      cli.scenarios.flatMap((s) => s.peers),
      log,
    );
    const startedAt = new Date().toISOString();
    const loadAverage = loadavg();
    const machine = await machineInfo();
    if (cli.options.pin && machine.cpus < 2) throw new Error('--pin needs at least 2 CPUs');
    const switchyardCommit = await gitCommit(cli.options.switchyardRoot);

    const scenarios: ScenarioResult[] = [];
    for (const scenario of cli.scenarios) {
      interrupt.signal.throwIfAborted();
      log(`bench: ${scenario.name}: ${scenario.description}`);
      const dir = join(runDir, scenario.name);
      await mkdir(dir, { mode: 0o755 });
      const cleanup = new Cleanup();
      root.add(`scenario ${scenario.name}`, () => cleanup.run());
      const ctx = new ScenarioContext({
        options: cli.options,
        dir,
        peers,
        supervisor,
        cleanup,
        signal: interrupt.signal,
        log,
      });
      try {
        scenarios.push(await scenario.run(ctx));
      } catch (error) {
        interrupt.signal.throwIfAborted();
        log(`bench: ${scenario.name} failed: ${(error as Error).message}`);
        scenarios.push(failedScenario(scenario, error));
      } finally {
        await cleanup.run();
      }
    }

    const results: RunResults = {
      schemaVersion: 1,
      command: cli.command,
      startedAt,
      finishedAt: new Date().toISOString(),
      machine,
      loadAverage,
      peers: peers.versions,
      switchyardCommit,
      options: {
        durationS: cli.options.durationS,
        warmupS: cli.options.warmupS,
        rounds: cli.options.rounds,
        pin: cli.options.pin,
      },
      scenarios,
    };
    await mkdir(dirname(cli.out), { recursive: true });
    await writeFile(cli.out, `${JSON.stringify(results, null, 2)}\n`);
    log(`bench: wrote ${relative(process.cwd(), cli.out)}`);
    if (cli.render) {
      await writeResultsSection(DOC, results);
      log(`bench: rendered ${relative(process.cwd(), DOC)}`);
    }
    for (const s of scenarios) {
      for (const r of s.ratios) {
        const value = r[s.primary];
        const q = s.primary === 'requestsPerS' ? quietRoundRatios(s.contenders, r.subject, r.reference) : null;
        const quiet =
          q === null || q.requestsPerS === null
            ? ''
            : ` (${q.requestsPerS.toFixed(2)}x in the ${q.rounds} of ${q.recorded} rounds with under ${QUIET_STEAL_PERCENT}% steal)`;
        log(`bench: ${s.name} ${r.subject}/${r.reference} ${value === null ? 'n/a' : `${value.toFixed(2)}x`}${quiet}`);
      }
    }
    return anyFailure(results) ? 1 : 0;
  } finally {
    await root.run();
  }
}

try {
  process.exitCode = await main();
} catch (error) {
  log(`bench: ${(error as Error).message}`);
  process.exitCode = 1;
}
