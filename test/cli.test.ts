/**
 * The `switchyard` command as a user runs it: check, start, SIGHUP reload, SIGTERM drain, and
 * the quick start example from the README.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { assertNoLeaks, handleSnapshot } from './helpers/leaks.ts';
import { closed, type EchoPair, exchange, freePorts, readUntil, startEchoPair, waitFor } from './helpers/net.ts';

const root = new URL('../', import.meta.url).pathname;
const cli = join(root, 'src/cli/main.ts');
const run = promisify(execFile);
const baseline = handleSnapshot();
let echo: EchoPair;

before(async () => {
  echo = await startEchoPair('sy-cli-');
});

after(async () => {
  await echo.close();
  await assertNoLeaks(baseline);
});

/** Starts the CLI and resolves once it logged that it started. */
async function startCli(config: string): Promise<{ child: ChildProcess; lines: string[] }> {
  const child = spawn(process.execPath, [cli, 'start', '--config', config], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let buffer = '';
  const started = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let nl = buffer.indexOf('\n');
      while (nl !== -1) {
        lines.push(buffer.slice(0, nl));
        if (buffer.slice(0, nl).includes('switchyard started')) resolve();
        buffer = buffer.slice(nl + 1);
        nl = buffer.indexOf('\n');
      }
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code}`)));
  });
  child.stderr!.resume();
  await started;
  return { child, lines };
}

function yaml(port: number, target: number): string {
  return `bind: 127.0.0.1\nlog: { level: info }\nroutes:\n  - name: r\n    match: { ports: ${port} }\n    action: { type: forward, targets: ["127.0.0.1:${target}"] }\n`;
}

/** One TCP forward route per listen port, to the target port it maps to. */
function yamlRoutes(targets: Record<number, number>): string {
  const routes = Object.entries(targets).map(
    ([port, target]) =>
      `  - name: p${port}\n    match: { ports: ${port} }\n    action: { type: forward, targets: ["127.0.0.1:${target}"] }\n`,
  );
  return `bind: 127.0.0.1\nlog: { level: info }\nroutes:\n${routes.join('')}`;
}

test('check: exit 0 on a good file, 2 with the field path on a bad one', async () => {
  const good = join(echo.dir, 'good.yaml');
  await writeFile(good, yaml(1, 2));
  const ok = await run(process.execPath, [cli, 'check', '--config', good]);
  assert.match(ok.stdout, /ok \(1 routes on 1 ports\)/);
  const bad = join(echo.dir, 'bad.yaml');
  await writeFile(bad, yaml(1, 2).replace('ports: 1', 'ports: "x"'));
  const failed = await run(process.execPath, [cli, 'check', '--config', bad]).catch((e) => e);
  assert.equal(failed.code, 2);
  assert.match(failed.stderr, /SY_CFG_INVALID: invalid config .*bad\.yaml/);
  assert.match(failed.stderr, /routes\[0\]\.match\.ports/);
  const version = await run(process.execPath, [cli, 'version']);
  assert.match(version.stdout, /^switchyard \d+\.\d+\.\d+/);
});

test('start, SIGHUP reload (good then bad file), SIGTERM drains and exits 0', async () => {
  const [port] = await freePorts(1);
  const file = join(echo.dir, 'live.yaml');
  await writeFile(file, yaml(port, echo.a.port));
  const { child, lines } = await startCli(file);
  try {
    assert.equal((await exchange(port, 'one')).data, 'A:onebye');
    const open = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    open.write('held');
    await readUntil(open, 'A:held');

    await writeFile(file, yaml(port, echo.b.port));
    child.kill('SIGHUP');
    await waitFor(() => lines.some((l) => l.includes('route table updated')), 5000, 'log line "route table updated"');
    assert.equal((await exchange(port, 'two')).data, 'B:twobye');

    await writeFile(file, 'routes: [oops');
    child.kill('SIGHUP');
    await waitFor(() => lines.some((l) => l.includes('reload failed')), 5000, 'log line "reload failed"');
    assert.equal((await exchange(port, 'three')).data, 'B:threebye', 'a bad file keeps the running table');

    child.kill('SIGTERM');
    await waitFor(() => lines.some((l) => l.includes('draining connections')), 5000, 'log line "draining connections"');
    const got = readUntil(open, 'A:still');
    open.write('still');
    await got;
    open.end();
    await closed(open);
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test('SIGHUP opens the ports the file adds and closes the ones it removes', async () => {
  const [kept, removed, added] = await freePorts(3);
  const file = join(echo.dir, 'ports.yaml');
  await writeFile(file, yamlRoutes({ [kept]: echo.a.port, [removed]: echo.a.port }));
  const { child, lines } = await startCli(file);
  try {
    assert.equal((await exchange(removed, 'r')).data, 'A:rbye');
    const early = await exchange(added, 'a');
    assert.equal((early.error as NodeJS.ErrnoException | null)?.code, 'ECONNREFUSED', 'not listening yet');

    await writeFile(file, yamlRoutes({ [kept]: echo.a.port, [added]: echo.b.port }));
    child.kill('SIGHUP');
    await waitFor(() => lines.some((l) => l.includes('route table updated')), 5000, 'log line "route table updated"');
    assert.equal((await exchange(added, 'a')).data, 'B:abye', 'the added port accepts');
    assert.equal((await exchange(kept, 'k')).data, 'A:kbye', 'the kept port still serves');
    const refused = await exchange(removed, 'r');
    assert.equal(refused.data, '');
    assert.equal((refused.error as NodeJS.ErrnoException | null)?.code, 'ECONNREFUSED', 'the removed port is closed');

    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

/** GET over a fresh connection: status, headers and body. */
function httpGet(
  port: number,
  path: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    }).on('error', reject);
  });
}

test('the quick start config: hello through the HTTP engine, respond, redirect and the mock LLM', async () => {
  const { child } = await startCli(join(root, 'examples/quickstart.yaml'));
  try {
    const hello = await httpGet(8080, '/');
    assert.equal(hello.body, 'hello from switchyard\n');
    assert.match(String(hello.headers['x-request-id']), /^[0-9a-f]{12}-\w+$/);
    const about = await httpGet(8080, '/about');
    assert.match(about.body, /^Switchyard: /);
    const home = await httpGet(8080, '/home');
    assert.equal(home.status, 302);
    assert.equal(home.headers.location, 'http://127.0.0.1:8080/about');
    const models = JSON.parse((await httpGet(8080, '/v1/models')).body);
    assert.deepEqual(
      models.data.map((m: { id: string }) => m.id),
      ['chat', 'fast', 'embed'],
    );
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
});
