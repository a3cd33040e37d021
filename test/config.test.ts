/**
 * Config loading and validation: errors carry the file, the field path, the bad value and what
 * was expected; the docs are generated from the schema and registry and must be current.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { renderConfigDoc, renderErrorsDoc } from '../src/config/docs.ts';
import { loadConfigFile, validateConfig } from '../src/config/load.ts';
import { SwitchyardError } from '../src/errors.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sy-config-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function problemsOf(raw: unknown): string[] {
  try {
    validateConfig(raw);
  } catch (error) {
    assert.ok(error instanceof SwitchyardError);
    assert.equal(error.code, 'SY_CFG_INVALID');
    return (error as SwitchyardError & { problems: string[] }).problems;
  }
  assert.fail('expected the config to be rejected');
}

test('the quick start example is valid', async () => {
  const config = await loadConfigFile(new URL('../examples/quickstart.yaml', import.meta.url).pathname);
  assert.equal(config.bind, '127.0.0.1');
  assert.ok(config.routes.length > 0);
});

test('defaults are applied', () => {
  const config = validateConfig({ routes: [] });
  assert.equal(config.bind, '0.0.0.0');
  assert.equal(config.timeouts.connectMs, 5000);
  assert.deepEqual(config.proxyProtocol.trustedCidrs, []);
});

test('errors name the field path, the bad value and what was expected', () => {
  const problems = problemsOf({
    routes: [
      { name: 'a', match: { ports: 70000 }, action: { type: 'forward', targets: ['127.0.0.1:1'] } },
      { name: 'b', match: { ports: '90-80' }, action: { type: 'forward', targets: ['no-port'] } },
      {
        name: 'c',
        match: { ports: 1, domains: ['bad domain'], clientIps: ['10.0.0.0/33'] },
        action: { type: 'teleport' },
      },
    ],
  });
  const text = problems.join('\n');
  assert.match(text, /routes\[0\]\.match\.ports: .*65535.*got 70000/);
  assert.match(text, /routes\[1\]\.match\.ports: .*LOW <= HIGH.*got "90-80"/);
  assert.match(text, /routes\[1\]\.action\.targets\[0\]: expected "host:port".*got "no-port"/);
  assert.match(text, /routes\[2\]\.match\.domains\[0\]: expected a host name.*got "bad domain"/);
  assert.match(text, /routes\[2\]\.match\.clientIps\[0\]: expected an IP address or CIDR block, got "10.0.0.0\/33"/);
  assert.match(text, /routes\[2\]\.action\.type: .*forward.*got "teleport"/);
});

test('unknown keys are errors, so typos never pass silently', () => {
  const problems = problemsOf({ routes: [], bnid: '127.0.0.1' });
  assert.match(problems.join('\n'), /bnid/);
});

test('cross-field checks: duplicate names, HTTP-only conditions on L4 routes, too many ports', () => {
  const route = { match: { ports: 1 }, action: { type: 'forward', targets: ['127.0.0.1:1'] } };
  assert.match(
    problemsOf({
      routes: [
        { name: 'x', ...route },
        { name: 'x', ...route },
      ],
    }).join(),
    /routes\[1\]\.name: duplicate/,
  );
  assert.match(
    problemsOf({ routes: [{ name: 'x', match: { ports: 1, paths: ['/a'] }, action: route.action }] }).join(),
    /routes\[0\]\.match\.paths: needs an HTTP route/,
  );
  assert.match(
    problemsOf({ routes: [{ name: 'x', match: { ports: '1-65535' }, action: route.action }] }).join(),
    /at most 4096/,
  );
});

test('header edits may not touch framing or connection headers, nor carry CR/LF in values', () => {
  const route = (requestHeaders: unknown) => ({
    routes: [
      {
        name: 'x',
        match: { ports: 1 },
        action: { type: 'forward', mode: 'http', targets: ['127.0.0.1:1'], requestHeaders },
      },
    ],
  });
  assert.match(
    problemsOf(route({ remove: ['Content-Length'] })).join(),
    /routes\[0\]\.action\.requestHeaders\.remove\[0\]: "Content-Length" is set by the engine itself/,
  );
  assert.match(
    problemsOf(route({ set: { 'transfer-encoding': 'chunked' } })).join(),
    /requestHeaders\.set\.transfer-encoding: /,
  );
  assert.match(problemsOf(route({ add: { Host: 'a' } })).join(), /requestHeaders\.add\.Host: .*hostHeader/);
  assert.match(problemsOf(route({ add: { 'x-a': 'v\r\nx-b: w' } })).join(), /without CR, LF/);
  validateConfig(route({ set: { 'x-a': 'tab\tand ünïcode' }, remove: ['x-powered-by'] }));
});
test('a YAML file: syntax errors and schema errors both name the file', async () => {
  const broken = join(dir, 'broken.yaml');
  await writeFile(broken, 'routes: [\n  - name: x\n');
  await assert.rejects(
    loadConfigFile(broken),
    (e: SwitchyardError) => e.code === 'SY_CFG_PARSE' && e.message.includes(broken),
  );
  const invalid = join(dir, 'invalid.yaml');
  await writeFile(
    invalid,
    'routes:\n  - name: x\n    match: { ports: 0 }\n    action: { type: forward, targets: ["127.0.0.1:1"] }\n',
  );
  await assert.rejects(
    loadConfigFile(invalid),
    (e: SwitchyardError) =>
      e.code === 'SY_CFG_INVALID' && e.message.includes(invalid) && /routes\[0\]\.match\.ports/.test(e.message),
  );
  await assert.rejects(loadConfigFile(join(dir, 'missing.yaml')), (e: SwitchyardError) => e.code === 'SY_CFG_READ');
});

test('docs/config.md and docs/errors.md are generated from the schema and registry (npm run docs)', async () => {
  const root = new URL('../', import.meta.url);
  assert.equal(await readFile(new URL('docs/config.md', root), 'utf8'), renderConfigDoc(), 'run `npm run docs`');
  assert.equal(await readFile(new URL('docs/errors.md', root), 'utf8'), renderErrorsDoc(), 'run `npm run docs`');
});

test('every SY_* code the source uses is in the registry', async () => {
  const { ERRORS } = await import('../src/errors.ts');
  const { readdir } = await import('node:fs/promises');
  const root = new URL('../src/', import.meta.url);
  const files = (await readdir(root, { recursive: true })).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
  const missing = new Set<string>();
  for (const file of files) {
    const text = await readFile(new URL(file, root), 'utf8');
    for (const [, code] of text.matchAll(/'(SY_[A-Z0-9]+_[A-Z0-9_]*[A-Z0-9])'/g))
      if (!(code in ERRORS)) missing.add(`${code} (${file})`);
  }
  assert.deepEqual([...missing], []);
});
