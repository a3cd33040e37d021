/**
 * nginx as a backend (the origin every contender forwards to) and as a peer proxy, always with
 * one worker process, its files in the scenario directory, and in the foreground.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CpuRole, ScenarioContext } from './context.ts';
import { withNofile } from './nofile.ts';
import { freePort, LOOPBACK } from './ports.ts';
import type { ManagedProcess } from './processes.ts';
import type { CertFiles, SniRoute } from './tls.ts';
import { waitForPort } from './wait-for-port.ts';

/** A started nginx. */
export interface NginxInstance {
  readonly port: number;
  readonly process: ManagedProcess;
}

/** Main-context lines shared by every nginx the harness starts. */
function mainContext(dir: string, name: string, loadModule = '', workerConnections = 8192): string {
  return `${loadModule}
worker_processes 1;
daemon off;
pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, `${name}-error.log`)} warn;
events { worker_connections ${workerConnections}; }
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

/**
 * Body of the backend's `GET /small`: 100 bytes, answered from config like `/hello`, for the HTTP
 * scenarios' "small response" (the size of a typical small JSON API answer).
 */
export const SMALL_BODY = `${'0123456789'.repeat(9)}012345678\n`;

/** Files the backend serves, by URL path (`/1m.bin`), with their bytes. */
export type BackendFiles = Readonly<Record<string, Uint8Array>>;

/**
 * TLS lines of the backend's server block: TLS 1.3 only, and no session resumption (neither
 * tickets nor a session cache), so that every connection is a full handshake. wrk resumes when
 * it may: it keeps each connection's session across reconnects, and with nginx's defaults a
 * `Connection: close` run logged `$ssl_session_reused` `r` for all but the first handshake of each
 * connection, at twice the request rate.
 */
function backendTls(cert: CertFiles): string {
  return `    ssl_certificate ${cert.certFile};
    ssl_certificate_key ${cert.keyFile};
    ssl_protocols TLSv1.3;
    ssl_session_tickets off;
    ssl_session_cache off;`;
}

/**
 * The origin server: nginx, one worker, no access log, keep-alive effectively unlimited.
 * `GET /hello` answers `hello\n` from config (no file system); other paths are static files
 * from `files`, sent with sendfile. With `tls`, it speaks HTTPS only, with that certificate
 * (see {@link backendTls}).
 */
export async function startNginxBackend(
  ctx: ScenarioContext,
  files: BackendFiles = {},
  tls: CertFiles | null = null,
): Promise<NginxInstance> {
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
    listen ${LOOPBACK}:${port}${tls === null ? '' : ' ssl'} backlog=4096;
${tls === null ? '' : `${backendTls(tls)}\n`}    root ${root};
    location = /hello {
      default_type text/plain;
      return 200 "hello\\n";
    }
    location = /small {
      default_type text/plain;
      return 200 "${SMALL_BODY.replace('\n', '\\n')}";
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

/**
 * nginx `stream` proxy routing TLS by SNI without terminating it: one worker, `ssl_preread on`,
 * and a `map` from `$ssl_preread_server_name` to one `upstream` per route. A name no route
 * lists maps to nothing, and nginx closes the connection. The `ssl_preread` module ships inside
 * the stream module (Debian's is built with it).
 */
export async function startNginxStreamSni(ctx: ScenarioContext, routes: readonly SniRoute[]): Promise<NginxInstance> {
  const name = 'nginx-stream-sni';
  const loadModule = ctx.peers.nginxStreamLoadModule;
  if (loadModule === null) throw new Error('nginx stream module not available');
  const port = await freePort();
  const map = routes.map((r) => `    ${r.serverName} ${r.name};`).join('\n');
  const upstreams = routes.map((r) => `  upstream ${r.name} { server ${LOOPBACK}:${r.targetPort}; }`).join('\n');
  const conf = `${mainContext(ctx.dir, name, loadModule)}
stream {
  map $ssl_preread_server_name $sni_upstream {
${map}
  }
${upstreams}
  server {
    listen ${LOOPBACK}:${port} backlog=4096;
    ssl_preread on;
    proxy_pass $sni_upstream;
  }
}
`;
  return startNginx(ctx, name, conf, port, 'proxy');
}

/** Options of {@link startNginxHttpProxy}. */
export interface NginxHttpProxyOptions {
  /**
   * `worker_connections` (default 8192); the idle-connections scenario needs more, and a `nofile`
   * limit to match (nginx counts client and upstream connections alike).
   */
  readonly workerConnections?: number;
  /** Client keep-alive timeout in seconds (default 300, so no benchmark connection is closed). */
  readonly keepaliveTimeoutS?: number;
  /** Start through `bash -c 'ulimit -n N; exec nginx ...'` (the master needs the limit too). */
  readonly nofile?: number;
}

/**
 * nginx as an HTTP reverse proxy (`proxy_pass`): one worker, an `upstream` block with
 * `keepalive 64`, HTTP/1.1 upstream with the Connection header cleared, so upstream connections
 * are reused as in every other contender.
 */
export async function startNginxHttpProxy(
  ctx: ScenarioContext,
  targetPort: number,
  options: NginxHttpProxyOptions = {},
): Promise<NginxInstance> {
  const name = 'nginx-http';
  const port = await freePort();
  const conf = `${mainContext(ctx.dir, name, '', options.workerConnections)}
http {
  access_log off;
  keepalive_requests 1000000000;
  keepalive_timeout ${options.keepaliveTimeoutS ?? 300}s;
${tempPaths(ctx.dir, name)}
  upstream backend {
    server ${LOOPBACK}:${targetPort};
    keepalive 64;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
  }
  server {
    listen ${LOOPBACK}:${port} backlog=4096;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
  const file = join(ctx.dir, `${name}.conf`);
  await writeFile(file, conf);
  const args = ['-p', ctx.dir, '-e', join(ctx.dir, `${name}-error.log`), '-c', file];
  const proc = await ctx.spawn({ name, ...withNofile('nginx', args, options.nofile), role: 'proxy' });
  await waitForPort(LOOPBACK, port, proc);
  return { port, process: proc };
}
