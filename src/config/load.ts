/**
 * Loading and validating config: from a YAML file or from an object given to the library API.
 * Errors name the source, the field path, the bad value and what was expected.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { SwitchyardError } from '../errors.ts';
import { checkLlmConfig } from '../llm/schema.ts';
import { expandPorts } from '../route/ports.ts';
import { type Config, ConfigSchema } from './schema.ts';

/** Renders a field path like `routes[0].match.ports`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out === '' ? '(root)' : out;
}

/** Short, single-line rendering of a bad value. */
function formatValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** One line per problem: `path: reason (got value)`. */
function describeIssues(issues: ReadonlyArray<z.core.$ZodIssue>): string[] {
  return issues.map((issue) => {
    const where = formatPath(issue.path);
    let input = 'input' in issue ? issue.input : undefined;
    // Discriminator issues carry the whole object; the bad value is its tagged field.
    const last = issue.path[issue.path.length - 1];
    if (input !== null && typeof input === 'object' && typeof last === 'string' && last in input) {
      input = (input as Record<string, unknown>)[last];
    }
    const got = 'input' in issue ? `, got ${formatValue(input)}` : '';
    return `${where}: ${issue.message}${got}`;
  });
}

/** Most distinct listen ports one config may use. */
export const MAX_PORTS = 4096;

/** Checks that the schema alone cannot express; returns problems as `path: reason` lines. */
const HTTP_ONLY_FORWARD_KEYS = [
  'responseTimeoutMs',
  'maxBodyBytes',
  'hostHeader',
  'requestHeaders',
  'responseHeaders',
  'pool',
];

function crossCheck(config: Config): string[] {
  const problems: string[] = [];
  const names = new Map<string, number>();
  const ports = new Set<number>();
  config.routes.forEach((route, i) => {
    const first = names.get(route.name);
    if (first !== undefined) {
      problems.push(
        `routes[${i}].name: duplicate route name ${formatValue(route.name)} (first used by routes[${first}])`,
      );
    } else {
      names.set(route.name, i);
    }
    const { match, action } = route;
    for (const port of expandPorts(match.ports)) ports.add(port);
    if (action.type === 'llm' && config.llm === undefined) {
      problems.push(`routes[${i}].action: an "llm" route needs the top-level llm block (providers and aliases)`);
    }
    const http = action.type !== 'forward' || action.mode === 'http';
    if (!http) {
      for (const key of ['paths', 'headers'] as const) {
        if (match[key] !== undefined) {
          problems.push(
            `routes[${i}].match.${key}: needs an HTTP route, but action.mode is ${formatValue(action.mode)}`,
          );
        }
      }
      for (const key of HTTP_ONLY_FORWARD_KEYS) {
        if ((action as Record<string, unknown>)[key] !== undefined) {
          problems.push(
            `routes[${i}].action.${key}: only applies to mode "http", but action.mode is ${formatValue(action.mode)}`,
          );
        }
      }
    }
  });
  if (config.llm !== undefined) problems.push(...checkLlmConfig(config.llm));
  // Each port is a listening socket; a typo like "1-65535" should fail here, not exhaust fds.
  if (ports.size > MAX_PORTS) {
    problems.push(`routes: ${ports.size} distinct listen ports, at most ${MAX_PORTS} are supported`);
  }
  return problems;
}

/**
 * Validates a config object (from YAML or the library API) and applies defaults.
 * @param source names the origin in error messages (a file path or "library config").
 * @throws SwitchyardError SY_CFG_INVALID listing every problem found.
 */
export function validateConfig(raw: unknown, source = 'library config'): Config {
  const result = ConfigSchema.safeParse(raw, { reportInput: true });
  const problems = result.success ? crossCheck(result.data) : describeIssues(result.error.issues);
  if (problems.length > 0 || !result.success) {
    const error = new SwitchyardError('SY_CFG_INVALID', {
      source,
      detail: `\n  ${problems.join('\n  ')}`,
    });
    (error as SwitchyardError & { problems: string[] }).problems = problems;
    throw error;
  }
  return result.data;
}

/**
 * Reads, parses and validates a YAML config file.
 * @throws SwitchyardError SY_CFG_READ, SY_CFG_PARSE or SY_CFG_INVALID.
 */
export async function loadConfigFile(file: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new SwitchyardError('SY_CFG_READ', { file, detail: (cause as Error).message }, { cause });
  }
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true });
  } catch (cause) {
    const detail = cause instanceof YAMLParseError ? cause.message : String(cause);
    throw new SwitchyardError('SY_CFG_PARSE', { file, detail }, { cause });
  }
  return validateConfig(raw, file);
}
