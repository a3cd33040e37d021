/**
 * Regression: an IPv4-mapped CIDR such as `::ffff:10.0.0.0/104` passed the schema, but the matcher
 * turned its address into IPv4 and kept prefix 104, so the proxy threw a RangeError at start while
 * `switchyard check` said ok; and a reload that hit it had already opened ports and swapped the
 * table before it threw. Mapped blocks are now the IPv4 blocks they map, the schema and the matcher
 * share one parser, and an update builds everything before it changes anything.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import type { ConfigInput } from '../../src/config/schema.ts';
import { encodeProxyV1 } from '../../src/listener/proxy-protocol.ts';
import { Switchyard } from '../../src/runtime/switchyard.ts';
import { assertNoLeaks, handleSnapshot } from '../helpers/leaks.ts';
import { type EchoPair, exchange, freePorts, startEchoPair, startServer, type TestServer } from '../helpers/net.ts';

const cli = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const run = promisify(execFile);
const baseline = handleSnapshot();
let echo: EchoPair;

before(async () => {
  echo = await startEchoPair('sy-mapped-');
});

after(async () => {
  await echo.close();
  await assertNoLeaks(baseline);
});

function yaml(port: number, clientIp: string, trusted: string): string {
  return [
    'bind: 127.0.0.1',
    'log: { level: silent }',
    `proxyProtocol: { trustedCidrs: ["${trusted}"] }`,
    'routes:',
    '  - name: loopback',
    '    priority: 10',
    `    match: { ports: ${port}, clientIps: ["${clientIp}"] }`,
    `    action: { type: forward, targets: ["127.0.0.1:${echo.a.port}"] }`,
    '  - name: rest',
    `    match: { ports: ${port} }`,
    `    action: { type: forward, targets: ["127.0.0.1:${echo.b.port}"] }`,
    '',
  ].join('\n');
}

test('check accepts mapped blocks, and refuses a bad one with its field path', async () => {
  const good = join(echo.dir, 'good.yaml');
  await writeFile(good, yaml(1, '::ffff:127.0.0.0/104', '::ffff:127.0.0.1'));
  assert.match((await run(process.execPath, [cli, 'check', '--config', good])).stdout, /ok \(2 routes on \d+ ports\)/);
  const bad = join(echo.dir, 'bad.yaml');
  await writeFile(bad, yaml(1, '::ffff:127.0.0.0/129', '::ffff:127.0.0.1/129'));
  const failed = await run(process.execPath, [cli, 'check', '--config', bad]).catch((e) => e);
  assert.equal(failed.code, 2);
  assert.match(failed.stderr, /proxyProtocol\.trustedCidrs\[0\]: expected an IP address or CIDR block/);
  assert.match(failed.stderr, /routes\[0\]\.match\.clientIps\[0\]: expected an IP address or CIDR block/);
});

test('a proxy started from mapped blocks matches plain IPv4 and IPv4-mapped clients', async () => {
  const [port] = await freePorts(1);
  const file = join(echo.dir, 'live.yaml');
  await writeFile(file, yaml(port, '::ffff:127.0.0.0/104', '::ffff:127.0.0.1/128'));
  const proxy = await Switchyard.startFile(file);
  try {
    assert.equal((await exchange(port, 'x')).data, 'A:xbye');
    // Trusted through the mapped entry: the header's address is the one routed on.
    const header = encodeProxyV1({
      family: 'tcp4',
      sourceAddress: '203.0.113.7',
      sourcePort: 4000,
      destAddress: '127.0.0.1',
      destPort: port,
    });
    assert.equal((await exchange(port, Buffer.concat([header, Buffer.from('y')]))).data, 'B:ybye');
  } finally {
    await proxy.close();
  }
  // A dual-stack listener sees IPv4 peers as ::ffff:127.0.0.1.
  await writeFile(file, yaml(port, '::ffff:127.0.0.0/104', '::ffff:127.0.0.1/128').replace('127.0.0.1\n', '"::"\n'));
  const dual = await Switchyard.startFile(file);
  try {
    assert.equal(dual.config.bind, '::');
    assert.equal((await exchange(port, 'm')).data, 'A:mbye');
    assert.equal((await exchange(port, 'v6', { host: '::1' })).data, 'B:v6bye');
  } finally {
    await dual.close();
  }
});

function forward(ports: number[], target: TestServer, extra: Partial<ConfigInput> = {}): ConfigInput {
  return {
    bind: '127.0.0.1',
    log: { level: 'silent' },
    routes: ports.map((port) => ({
      name: `r${port}`,
      match: { ports: port },
      action: { type: 'forward' as const, targets: [`127.0.0.1:${target.port}`] },
    })),
    ...extra,
  };
}

test('an update with a mapped trusted block and a new port applies whole', async () => {
  const [p1, p2] = await freePorts(2);
  const proxy = await Switchyard.start(forward([p1], echo.a));
  try {
    await proxy.update(forward([p2], echo.b, { proxyProtocol: { trustedCidrs: ['::ffff:127.0.0.0/104'] } }));
    assert.deepEqual(proxy.ports, [p2]);
    assert.deepEqual(proxy.config.proxyProtocol.trustedCidrs, ['::ffff:127.0.0.0/104']);
    assert.ok(proxy.ctx.trustedProxies?.matches('127.0.0.1'));
    assert.equal((await exchange(p2, 'n')).data, 'B:nbye');
  } finally {
    await proxy.close();
  }
});

test('a failed update changes nothing: ports, table, trusted peers and LLM gateway stay', async () => {
  const [p1, p2, p3] = await freePorts(3);
  const taken = await startServer(() => {});
  const proxy = await Switchyard.start(forward([p1], echo.a));
  try {
    const next = forward([p2, taken.port, p3], echo.b, {
      proxyProtocol: { trustedCidrs: ['127.0.0.0/8'] },
      llm: {
        providers: { m: { type: 'mock' } },
        aliases: { chat: { provider: 'm', model: 'mock-chat' } },
      },
    });
    await assert.rejects(proxy.update(next), { code: 'SY_LSN_BIND' });
    assert.deepEqual(proxy.ports, [p1]);
    assert.deepEqual(
      proxy.config.routes.map((r) => r.name),
      [`r${p1}`],
    );
    assert.equal(proxy.ctx.trustedProxies, null);
    assert.equal(proxy.llm, null);
    assert.equal((await exchange(p1, 'z')).data, 'A:zbye');
    // The port bound before the failure was released again.
    const refused = await exchange(p2, 'z');
    assert.equal((refused.error as NodeJS.ErrnoException | null)?.code, 'ECONNREFUSED');
  } finally {
    await proxy.close();
    await taken.close();
  }
});
