/**
 * nginx as a backend (the origin every contender forwards to) and as a peer proxy, always with
 * one worker process, its files in the scenario directory, and in the foreground.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CpuRole, ScenarioContext } from './context.ts';
import { freePort, LOOPBACK } from './ports.ts';
import type { ManagedProcess } from './processes.ts';
import { waitForPort } from './wait-for-port.ts';

/** A started nginx. */
export interface NginxInstance {
  readonly port: number;
  readonly process: ManagedProcess;
}

/** Main-context lines shared by every nginx the harness starts. */
function mainContext(dir: string, name: string, loadModule = ''): string {
  return `${loadModule}
worker_processes 1;
daemon off;
pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, `${name}-error.log`)} warn;
events { worker_connections 8192; }
`;
}

/** Temp paths inside the scenario directory, so nginx never writes under /var/lib/nginx. */
function tempPaths(dir: string, name: string): string {
  return ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((kind) => `  ${kind}_temp_path ${join(dir, `${name}-${kind}-temp`)};`)
    .join('\n');
}

/**
 * Starts nginx with `conf` as its whole config file and waits until `port` accepts connections.
 * `-e` keeps even the pre-config error log out of /var/log.
 */
export async function startNginx(
  ctx: ScenarioContext,
  name: string,
  conf: string,
  port: number,
  role: CpuRole,
): Promise<NginxInstance> {
  const file = join(ctx.dir, `${name}.conf`);
  await writeFile(file, conf);
  const proc = await ctx.spawn({
    name,
    command: 'nginx',
    args: ['-p', ctx.dir, '-e', join(ctx.dir, `${name}-error.log`), '-c', file],
    role,
  });
  await waitForPort(LOOPBACK, port, proc);
  return { port, process: proc };
}

/** Files the backend serves, by URL path (`/1m.bin`), with their bytes. */
export type BackendFiles = Readonly<Record<string, Uint8Array>>;

/**
 * The origin server: nginx, one worker, no access log, keep-alive effectively unlimited.
 * `GET /hello` answers `hello\n` from config (no file system); other paths are static files
 * from `files`, sent with sendfile.
 */
export async function startNginxBackend(ctx: ScenarioContext, files: BackendFiles = {}): Promise<NginxInstance> {
  const name = 'backend-nginx';
  const root = await ctx.subdir('www');
  for (const [path, bytes] of Object.entries(files)) await writeFile(join(root, path), bytes, { mode: 0o644 });
  const port = await freePort();
  const conf = `${mainContext(ctx.dir, name)}
http {
  access_log off;
  keepalive_requests 1000000000;
  keepalive_timeout 300s;
  sendfile on;
  tcp_nopush on;
  default_type application/octet-stream;
${tempPaths(ctx.dir, name)}
  server {
    listen ${LOOPBACK}:${port} backlog=4096;
    root ${root};
    location = /hello {
      default_type text/plain;
      return 200 "hello\\n";
    }
  }
}
`;
  return startNginx(ctx, name, conf, port, 'backend');
}

/**
 * nginx `stream` proxy: one worker, a plain TCP forward to `target`. Needs the stream module
 * (see `PeerInfo.nginxStreamLoadModule`).
 */
export async function startNginxStream(ctx: ScenarioContext, targetPort: number): Promise<NginxInstance> {
  const name = 'nginx-stream';
  const loadModule = ctx.peers.nginxStreamLoadModule;
  if (loadModule === null) throw new Error('nginx stream module not available');
  const port = await freePort();
  const conf = `${mainContext(ctx.dir, name, loadModule)}
stream {
  server {
    listen ${LOOPBACK}:${port} backlog=4096;
    proxy_pass ${LOOPBACK}:${targetPort};
  }
}
`;
  return startNginx(ctx, name, conf, port, 'proxy');
}
