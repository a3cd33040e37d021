/**
 * Portkey's AI gateway (`@portkey-ai/gateway` from npm) as a peer of the LLM gateway: installed
 * on first use into a cache directory under the system temp directory, never into the
 * repository's dependencies, and run on the same pinned Node 24 as Switchyard.
 */
import { access, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ScenarioContext } from './context.ts';
import { exec } from './exec.ts';
import { freePort, LOOPBACK } from './ports.ts';
import type { ManagedProcess } from './processes.ts';
import { waitForPort } from './wait-for-port.ts';

/** The Portkey release measured. */
export const PORTKEY_VERSION = '1.15.2';

/** One way of installing Portkey: as npm resolves it, or with some dependencies pinned. */
export interface PortkeyBuild {
  /** Suffix of the cache directory, unique per set of overrides (`''` for none). */
  readonly id: string;
  /** npm `overrides` of the install (package name to exact version). */
  readonly overrides: Readonly<Record<string, string>>;
}

/** Portkey as `npm install @portkey-ai/gateway` (or `npx`) gives it. */
export const PORTKEY_AS_PUBLISHED: PortkeyBuild = { id: '', overrides: {} };

/**
 * Portkey with `@hono/node-server` pinned to 1.3.5, inside its declared `^1.3.3`. With the version
 * npm picks (1.19.x; 1.14.2 too), every streamed chat completion answers 500: node-server's
 * lightweight `Response` hands back the upstream fetch response's immutable `Headers`, and
 * Portkey's `updateHeaders` appends to them (`TypeError: immutable`; Portkey issues #1389, #1550).
 * 1.3.5's `Response` copies the headers instead (checked: 1.3.5 streams; 1.14.2 and 1.19.19 do not).
 */
export const PORTKEY_PINNED_NODE_SERVER: PortkeyBuild = {
  id: '-node-server-1.3.5',
  overrides: { '@hono/node-server': '1.3.5' },
};

/** An installed Portkey. */
export interface PortkeyInstall {
  readonly dir: string;
  /** Its `bin`: the Node server entry point. */
  readonly server: string;
  /** Versions of the packages that decide how it serves HTTP, for the results. */
  readonly versions: { readonly gateway: string; readonly nodeServer: string; readonly hono: string };
}

function cacheDir(build: PortkeyBuild): string {
  return join(tmpdir(), 'switchyard-bench-cache', `portkey-${PORTKEY_VERSION}${build.id}`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** The version of `name` as resolved from the gateway package (a nested copy first). */
async function resolvedVersion(dir: string, name: string): Promise<string> {
  for (const base of [join(dir, 'node_modules', '@portkey-ai', 'gateway'), dir]) {
    try {
      const manifest = JSON.parse(await readFile(join(base, 'node_modules', name, 'package.json'), 'utf8'));
      return String(manifest.version);
    } catch {
      // Not at this level; try the next.
    }
  }
  return 'unknown';
}

/**
 * Installs Portkey into its cache directory unless it is there already. The install goes to a
 * private directory first and is renamed into place, so an interrupted install is never used.
 * `--ignore-scripts`: the package's only script is `patch-package`, which has no patches to apply
 * in the published package.
 */
export async function ensurePortkey(build: PortkeyBuild, log: (line: string) => void): Promise<PortkeyInstall> {
  const dir = cacheDir(build);
  const entry = (root: string): string =>
    join(root, 'node_modules', '@portkey-ai', 'gateway', 'build', 'start-server.js');
  if (!(await exists(entry(dir)))) {
    const partial = `${dir}.partial-${process.pid}`;
    await rm(partial, { recursive: true, force: true });
    await mkdir(partial, { recursive: true });
    const manifest = {
      private: true,
      dependencies: { '@portkey-ai/gateway': PORTKEY_VERSION },
      overrides: build.overrides,
    };
    await writeFile(join(partial, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    log(`  installing @portkey-ai/gateway@${PORTKEY_VERSION} into ${dir}`);
    const result = await exec('npm', ['install', '--prefix', partial, '--no-audit', '--no-fund', '--ignore-scripts']);
    if (result.code !== 0 || !(await exists(entry(partial)))) {
      await rm(partial, { recursive: true, force: true });
      throw new Error(`npm install @portkey-ai/gateway@${PORTKEY_VERSION} failed: ${result.stderr.trim().slice(-500)}`);
    }
    try {
      await rename(partial, dir);
    } catch (error) {
      // Another run installed it meanwhile; use that one.
      await rm(partial, { recursive: true, force: true });
      if (!(await exists(entry(dir)))) throw error;
    }
  }
  return {
    dir,
    server: entry(dir),
    versions: {
      gateway: await resolvedVersion(dir, '@portkey-ai/gateway'),
      nodeServer: await resolvedVersion(dir, '@hono/node-server'),
      hono: await resolvedVersion(dir, 'hono'),
    },
  };
}

/** A started Portkey gateway. */
export interface PortkeyInstance {
  readonly port: number;
  readonly process: ManagedProcess;
}

/**
 * Starts Portkey's Node server (`start-server.js --port=N --headless`, the package's `bin`, what
 * `npx @portkey-ai/gateway` runs). It binds every interface; there is no option to restrict it.
 */
export async function startPortkey(
  ctx: ScenarioContext,
  name: string,
  install: PortkeyInstall,
): Promise<PortkeyInstance> {
  const port = await freePort();
  const proc = await ctx.spawn({
    name,
    command: ctx.options.nodeBinary,
    args: [install.server, `--port=${port}`, '--headless'],
    cwd: install.dir,
    role: 'proxy',
  });
  await waitForPort(LOOPBACK, port, proc);
  return { port, process: proc };
}
