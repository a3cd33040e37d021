/**
 * The programs Switchyard is measured beside (nginx, HAProxy) and the load generator (wrk):
 * found on PATH, or installed from Debian with `apt-get install -y` when missing.
 */
import { access } from 'node:fs/promises';
import { exec } from './exec.ts';

/** A program or module a scenario needs. */
export type PeerName = 'nginx' | 'nginx-stream' | 'haproxy' | 'wrk';

/** What was found, for starting peers and for the results file. */
export interface PeerInfo {
  /** Versions by program, as printed by the program (`nginx/1.22.1`). */
  readonly versions: Readonly<Record<string, string>>;
  /**
   * The `load_module` line nginx needs for the `stream` module when it is built as a dynamic
   * module (Debian), an empty string when it is built in, null when it was not asked for.
   */
  readonly nginxStreamLoadModule: string | null;
}

const PACKAGES: Record<PeerName, string> = {
  nginx: 'nginx',
  'nginx-stream': 'libnginx-mod-stream',
  haproxy: 'haproxy',
  wrk: 'wrk',
};

const BINARIES: Partial<Record<PeerName, string>> = { nginx: 'nginx', haproxy: 'haproxy', wrk: 'wrk' };

async function hasBinary(name: string): Promise<boolean> {
  const result = await exec('sh', ['-c', `command -v ${name}`]);
  return result.code === 0;
}

/** `nginx -V` output, or null when nginx is missing. */
async function nginxBuild(): Promise<string | null> {
  const result = await exec('nginx', ['-V']);
  return result.code === 0 ? result.stderr + result.stdout : null;
}

/** The load_module line for the stream module ('' when built in), or null when unavailable. */
async function streamModule(build: string): Promise<string | null> {
  if (/--with-stream(\s|$)/.test(build)) return '';
  if (!build.includes('--with-stream=dynamic')) return null;
  const modules = /--modules-path=(\S+)/.exec(build)?.[1] ?? '/usr/lib/nginx/modules';
  const file = `${modules}/ngx_stream_module.so`;
  try {
    await access(file);
    return `load_module ${file};`;
  } catch {
    return null;
  }
}

async function missingPeers(wanted: ReadonlySet<PeerName>): Promise<PeerName[]> {
  const missing: PeerName[] = [];
  for (const peer of wanted) {
    const binary = BINARIES[peer];
    if (binary !== undefined && !(await hasBinary(binary))) missing.push(peer);
  }
  if (wanted.has('nginx-stream') && !missing.includes('nginx')) {
    const build = await nginxBuild();
    if (build !== null && (await streamModule(build)) === null) missing.push('nginx-stream');
  }
  if (wanted.has('nginx-stream') && missing.includes('nginx')) missing.push('nginx-stream');
  return missing;
}

async function aptInstall(packages: readonly string[], log: (line: string) => void): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new Error(`missing ${packages.join(', ')}; run as root or: sudo apt-get install -y ${packages.join(' ')}`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = ['install', '-y', '--no-install-recommends', ...packages];
  log(`installing ${packages.join(' ')} with apt-get`);
  if ((await exec('apt-get', install, { env, inherit: true })).code === 0) return;
  // A fresh machine may have no package lists yet.
  await exec('apt-get', ['update'], { env, inherit: true });
  if ((await exec('apt-get', install, { env, inherit: true })).code !== 0) {
    throw new Error(`apt-get install ${packages.join(' ')} failed`);
  }
}

async function version(command: string, args: string[], pattern: RegExp): Promise<string> {
  const result = await exec(command, args);
  return pattern.exec(result.stdout + result.stderr)?.[0] ?? 'unknown';
}

/**
 * Makes sure every wanted peer is available, installing missing ones from Debian, and returns
 * their versions and what nginx needs to load the stream module.
 */
export async function ensurePeers(wanted: Iterable<PeerName>, log: (line: string) => void): Promise<PeerInfo> {
  const set = new Set(wanted);
  const missing = await missingPeers(set);
  if (missing.length > 0) await aptInstall([...new Set(missing.map((p) => PACKAGES[p]))], log);
  const still = await missingPeers(set);
  if (still.length > 0) throw new Error(`still missing after install: ${still.join(', ')}`);

  const versions: Record<string, string> = {};
  if (set.has('nginx') || set.has('nginx-stream')) versions.nginx = await version('nginx', ['-v'], /nginx\/\S+/);
  if (set.has('haproxy')) versions.haproxy = await version('haproxy', ['-v'], /HAProxy version \S+/);
  if (set.has('wrk')) versions.wrk = await version('wrk', ['-v'], /wrk \S+/);
  const build = set.has('nginx-stream') ? await nginxBuild() : null;
  return { versions, nginxStreamLoadModule: build === null ? null : await streamModule(build) };
}
