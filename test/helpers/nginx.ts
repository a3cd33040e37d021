/**
 * A real nginx (Debian's /usr/sbin/nginx) as a test peer: one worker, no daemon, every path in a
 * temp dir, stopped and removed by `close()`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** A running nginx. */
export interface TestNginx {
  port: number;
  /** The temp dir: nginx.conf, logs, and the document root `www/`. */
  dir: string;
  close(): Promise<void>;
}

/** Path of the nginx binary: `$NGINX`, else Debian's location. */
export const NGINX_BIN = process.env.NGINX ?? '/usr/sbin/nginx';

/**
 * Starts nginx with `serverBody` inside `server { listen 127.0.0.1:port; root <dir>/www; ... }`.
 * `prepare(dir)` may write files under `<dir>/www` first. `{dir}` in `serverBody` is replaced.
 */
export async function startNginx(
  port: number,
  serverBody: string,
  prepare: (www: string) => Promise<void> = async () => {},
): Promise<TestNginx> {
  const dir = await mkdtemp(join(tmpdir(), 'sy-nginx-'));
  const www = join(dir, 'www');
  await mkdir(www);
  await prepare(www);
  // Workers run as `nobody` when nginx starts as root; they must be able to read the doc root.
  await chmod(dir, 0o755);
  await chmod(www, 0o755);
  const conf = `
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 100000;
  keepalive_timeout 60s;
  default_type text/plain;
  server {
    listen 127.0.0.1:${port};
    root ${www};
${serverBody.replaceAll('{dir}', dir)}
  }
}
`;
  const confFile = join(dir, 'nginx.conf');
  await writeFile(confFile, conf);
  const child: ChildProcess = spawn(NGINX_BIN, ['-c', confFile, '-p', dir, '-e', join(dir, 'error.log')], {
    stdio: 'ignore',
  });
  const exited = once(child, 'exit');
  const deadline = Date.now() + 5000;
  for (;;) {
    if (child.exitCode !== null) {
      const log = await readFile(join(dir, 'error.log'), 'utf8').catch(() => '');
      throw new Error(`nginx exited with ${child.exitCode}: ${log}`);
    }
    if (await canConnect(port)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('nginx did not start listening within 5 s');
    }
    await sleep(20);
  }
  return {
    port,
    dir,
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}
