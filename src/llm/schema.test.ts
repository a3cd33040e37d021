import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { checkLlmConfig, type LlmConfigInput, LlmConfigSchema } from './schema.ts';

function parse(input: LlmConfigInput) {
  return LlmConfigSchema.parse(input);
}

test('defaults fill a minimal config', () => {
  const cfg = parse({ providers: { m: { type: 'mock' } } });
  const m = cfg.providers.m;
  assert.equal(m.authScheme, 'bearer');
  assert.deepEqual(m.retry.statuses, [429, 500, 502, 503, 504]);
  assert.equal(m.concurrency.adaptive, true);
  assert.equal(m.timeouts.totalMs, 600_000);
  assert.ok(m.type === 'mock' && m.mock.lineEnding === 'lf');
  assert.deepEqual(cfg.aliases, {});
  assert.equal(cfg.providerModels, true);
});

test('the schema refuses bad values with their path', () => {
  const bad = LlmConfigSchema.safeParse({
    providers: {
      a: { type: 'openai', baseUrl: 'ftp://x', authScheme: 'basic' },
      b: { type: 'nope' },
    },
  });
  assert.ok(!bad.success);
  const paths = bad.error.issues.map((i) => i.path.join('.'));
  assert.ok(paths.includes('providers.a.baseUrl'));
  assert.ok(paths.includes('providers.a.authScheme'));
  assert.ok(paths.some((p) => p.startsWith('providers.b')));
});

test('cross-checks: unknown provider, unknown or self fallback, loops, default alias, two key sources', () => {
  const cfg = parse({
    providers: { p: { type: 'mock', apiKeyEnv: 'A', apiKeyFile: '/k' } },
    aliases: {
      a: { provider: 'p', model: 'm', fallbacks: ['b'] },
      b: { provider: 'p', model: 'm', fallbacks: ['c'] },
      c: { provider: 'p', model: 'm', fallbacks: ['a', 'c', 'zz'] },
      d: { provider: 'nobody', model: 'm' },
    },
    defaultAlias: 'missing',
  });
  const problems = checkLlmConfig(cfg);
  assert.deepEqual(problems, [
    'llm.providers.p: set apiKeyEnv or apiKeyFile, not both',
    'llm.aliases."c".fallbacks[1]: an alias cannot fall back to itself',
    'llm.aliases."c".fallbacks[2]: unknown alias "zz"',
    'llm.aliases."d".provider: unknown provider "nobody" (known: p)',
    'llm.aliases."a".fallbacks: fallbacks loop: a -> b -> c -> a',
    'llm.defaultAlias: unknown alias "missing"',
  ]);
  assert.deepEqual(
    checkLlmConfig(
      parse({
        providers: { p: { type: 'mock' } },
        aliases: { a: { provider: 'p', model: 'm', fallbacks: ['b'] }, b: { provider: 'p', model: 'n' } },
        defaultAlias: 'a',
      }),
    ),
    [],
  );
});

test('every field carries a description (docs/config.md is generated from them)', () => {
  const missing: string[] = [];
  const visit = (schema: Record<string, unknown>, path: string): void => {
    const properties = schema.properties as Record<string, Record<string, unknown>> | undefined;
    if (properties !== undefined) {
      for (const [key, child] of Object.entries(properties)) {
        const childPath = `${path}.${key}`;
        if (typeof child.description !== 'string' || child.description === '') missing.push(childPath);
        visit(child, childPath);
      }
    }
    for (const key of ['anyOf', 'oneOf'] as const) {
      for (const alternative of (schema[key] as Record<string, unknown>[] | undefined) ?? []) visit(alternative, path);
    }
    if (schema.items !== undefined) visit(schema.items as Record<string, unknown>, `${path}[]`);
    if (typeof schema.additionalProperties === 'object') {
      visit(schema.additionalProperties as Record<string, unknown>, `${path}.*`);
    }
  };
  visit(z.toJSONSchema(LlmConfigSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>, 'llm');
  assert.deepEqual(missing, []);
});
