/**
 * Schema of the top-level `llm:` config block: providers, model aliases ("slots") and the
 * default alias. Keys are camelCase like the rest of the config; every field carries the doc
 * line that `docs/config.md` is generated from.
 *
 * Checks that span fields (an alias names an existing provider, fallbacks name existing aliases
 * and do not loop) live in {@link checkLlmConfig}, which the config loader runs after parsing.
 */
import { z } from 'zod';

const PositiveMs = z.number().int().positive();
const HeaderName = z.string().regex(/^[!#$%&'*+.^_`|~0-9a-z-]+$/i, 'expected an HTTP header name');

const Timeouts = z
  .strictObject({
    connectMs: PositiveMs.default(5000).describe('Time allowed to open a connection (TCP and TLS) to the provider.'),
    firstByteMs: PositiveMs.default(120_000).describe(
      'Time allowed from sending a request until the response headers arrive. Reasoning models can ' +
        'take long before their first byte; raise it for them.',
    ),
    idleMs: PositiveMs.default(60_000).describe(
      'Longest gap allowed between two body chunks of a response, streams included.',
    ),
    totalMs: PositiveMs.default(600_000).describe(
      'Deadline of the whole request: queueing, every retry and fallback, and the full stream.',
    ),
  })
  .describe('Layered timeouts of calls to this provider.');

const Pool = z
  .strictObject({
    connections: z
      .number()
      .int()
      .positive()
      .default(64)
      .describe('Most connections kept to the provider (HTTP/1.1); with HTTP/2, the most sessions.'),
    allowH2: z.boolean().default(false).describe('Offer HTTP/2 by ALPN on TLS connections and use it when agreed.'),
    keepAliveMs: PositiveMs.default(10_000).describe(
      'How long an idle connection is kept for reuse (shorter when the provider says so).',
    ),
  })
  .describe('The connection pool to this provider (one undici Pool, created once).');

const Concurrency = z
  .strictObject({
    max: z
      .number()
      .int()
      .positive()
      .default(16)
      .describe('Most requests in flight to this provider at once, streams counted until their last byte.'),
    queue: z
      .number()
      .int()
      .nonnegative()
      .default(64)
      .describe('Most requests waiting for a free slot; one more is answered 429 with Retry-After at once.'),
    maxWaitMs: PositiveMs.default(30_000).describe(
      'Longest a request waits in the queue; past it the request is answered 429 with Retry-After.',
    ),
    adaptive: z
      .boolean()
      .default(true)
      .describe(
        'Adapt the limit to the provider: halve it when the provider answers 429, add one after a ' +
          'full window of successes, always between 1 and `max`.',
      ),
  })
  .describe('Per-provider concurrency limit with a bounded queue.');

const Retry = z
  .strictObject({
    maxRetries: z
      .number()
      .int()
      .nonnegative()
      .default(2)
      .describe('Retries on the same provider before moving to the next fallback (0: none).'),
    statuses: z
      .array(z.number().int().min(400).max(599))
      .default([429, 500, 502, 503, 504])
      .describe('Upstream statuses that are retried (and then fall back); any other status goes to the client.'),
    onTimeout: z
      .boolean()
      .default(true)
      .describe('Retry when no response headers arrived within `timeouts.firstByteMs`.'),
    baseDelayMs: PositiveMs.default(250).describe('Backoff before the first retry; doubles for each further one.'),
    maxDelayMs: PositiveMs.default(8000).describe('Upper bound of the exponential backoff (before jitter).'),
    maxRetryAfterMs: PositiveMs.default(30_000).describe(
      'Longest `Retry-After` honoured by waiting; a longer one skips to the next fallback at once.',
    ),
  })
  .describe(
    'Retries, only before the first byte reaches the client: on connect errors and on `statuses`, ' +
      'with exponential backoff and jitter, honouring `Retry-After`, within `timeouts.totalMs`.',
  );

const Transform = z
  .union([
    z
      .enum(['to-boolean', 'to-string', 'to-number'])
      .describe(
        '`to-boolean`: true for any truthy value, objects included. `to-string`: strings stay, anything ' +
          'else becomes its JSON. `to-number`: numeric strings become numbers.',
      ),
    z.strictObject({
      clamp: z
        .strictObject({
          min: z.number().optional().describe('Smallest value passed; smaller numbers are raised to it.'),
          max: z.number().optional().describe('Largest value passed; larger numbers are lowered to it.'),
        })
        .describe('Keep a number within bounds.'),
    }),
  ])
  .describe('A value transform: `to-boolean`, `to-string`, `to-number` or `{ clamp: { min, max } }`.');

const FieldPolicy = z
  .strictObject({
    allow: z
      .array(z.string().min(1))
      .optional()
      .describe(
        'Only these top-level request fields are sent (plus `model`, `messages`, `prompt`, `input` and ' +
          '`stream`, always kept). Absent: every field passes.',
      ),
    deny: z.array(z.string().min(1)).optional().describe('Top-level request fields that are never sent.'),
    rename: z
      .record(z.string().min(1), z.string().min(1))
      .optional()
      .describe('Fields sent under another name, e.g. `{ max_tokens: max_completion_tokens }`.'),
    transform: z
      .record(z.string().min(1), Transform)
      .optional()
      .describe('Values changed before sending, by field name, e.g. `{ cache: to-boolean }`.'),
  })
  .describe(
    'What happens to request fields on the way to the provider. Keys name fields as the caller sends ' +
      'them; `allow`/`deny` apply first, then `transform`, then `rename`. Dropped, transformed and ' +
      'renamed fields are reported to the caller in `x-switchyard-*-fields` response headers.',
  );

const ModelOverrides = z
  .strictObject({
    fields: FieldPolicy.optional().describe(
      'Field policy for this model, merged over the provider one: lists add up, renames and transforms override.',
    ),
  })
  .describe('Settings of one upstream model.');

const MockFault = z
  .enum(['429', '500', '400', '401', '503', 'cut', 'slow-first-byte', 'stall'])
  .describe(
    '`429`: rate limited with `Retry-After`. `400`, `401`, `500`, `503`: that status with an OpenAI ' +
      'error body. `cut`: the connection is dropped after `cutAfterEvents` stream events (or half ' +
      'a JSON body). `slow-first-byte`: headers wait `firstByteDelayMs` (1000 if 0). `stall`: ' +
      'headers and one event, then silence.',
  );

const Mock = z
  .strictObject({
    chunkSize: z
      .number()
      .int()
      .positive()
      .optional()
      .describe(
        'Write streams in pieces of this many bytes, cutting through events and multi-byte UTF-8 ' +
          'characters; absent: one write per event.',
      ),
    chunkDelayMs: z.number().int().nonnegative().default(0).describe('Pause between two stream writes.'),
    firstByteDelayMs: z.number().int().nonnegative().default(0).describe('Pause before the response headers.'),
    fault: MockFault.optional().describe('A fault applied to every request (a request header can pick another).'),
    retryAfterS: z.number().int().nonnegative().default(1).describe('`Retry-After` seconds sent with a 429 or 503.'),
    cutAfterEvents: z
      .number()
      .int()
      .nonnegative()
      .default(2)
      .describe('Stream events sent before a `cut` fault drops the connection.'),
    lineEnding: z.enum(['lf', 'crlf']).default('lf').describe('Line ending of the SSE framing.'),
    embeddingDimensions: z
      .number()
      .int()
      .positive()
      .default(8)
      .describe('Length of embedding vectors (a request `dimensions` overrides).'),
    reply: z.string().optional().describe('Fixed reply text; absent: the reply echoes the last user message.'),
  })
  .describe('Behaviour of the built-in mock provider.');

const providerCommon = {
  apiKeyEnv: z
    .string()
    .min(1)
    .optional()
    .describe('Environment variable holding the API key. Read once at start; never logged.'),
  apiKeyFile: z
    .string()
    .min(1)
    .optional()
    .describe('File holding the API key (trailing whitespace trimmed). Read once at start; never logged.'),
  authScheme: z
    .string()
    .regex(/^(bearer|none|header:[!#$%&'*+.^_`|~0-9a-z-]+)$/i, 'expected "bearer", "none" or "header:<name>"')
    .default('bearer')
    .describe(
      'How the key is sent: `bearer` as `Authorization: Bearer <key>`, `header:<name>` as `<name>: <key>` ' +
        '(e.g. `header:api-key`), `none` not at all.',
    ),
  headers: z
    .record(HeaderName, z.string())
    .default({})
    .describe('Extra headers sent with every request to the provider.'),
  forwardHeaders: z
    .array(HeaderName)
    .default([])
    .describe(
      'Client request headers passed on to the provider (names, case-insensitive). Nothing else the ' +
        'client sends is forwarded.',
    ),
  timeouts: Timeouts.prefault({}),
  pool: Pool.prefault({}),
  concurrency: Concurrency.prefault({}),
  retry: Retry.prefault({}),
  fields: FieldPolicy.optional(),
  models: z
    .record(z.string().min(1), ModelOverrides)
    .default({})
    .describe('Per-model settings, by the upstream model name.'),
};

const OpenAiProvider = z
  .strictObject({
    type: z.literal('openai').describe('A generic OpenAI-compatible API.'),
    baseUrl: z
      .url({ protocol: /^https?$/ })
      .describe('Base URL up to and including the version, e.g. `https://api.openai.com/v1`.'),
    ...providerCommon,
  })
  .describe('An OpenAI-compatible provider.');

const MockProvider = z
  .strictObject({
    type: z
      .literal('mock')
      .describe('The built-in mock: a local OpenAI-compatible server the gateway starts and stops.'),
    mock: Mock.prefault({}),
    ...providerCommon,
  })
  .describe('The built-in mock provider, for the quick start and tests.');

const Provider = z.discriminatedUnion('type', [OpenAiProvider, MockProvider]).describe('One LLM provider.');

const Alias = z
  .strictObject({
    provider: z.string().min(1).describe('Id of the provider that serves this alias.'),
    model: z.string().min(1).describe('Model name sent to the provider.'),
    params: z
      .record(z.string().min(1), z.unknown())
      .optional()
      .describe('Default request parameters (e.g. `temperature`), used where the request sets none.'),
    fallbacks: z
      .array(z.string().min(1))
      .optional()
      .describe(
        'Aliases tried in order when this one fails with a retryable error after its retries ' +
          '(their own fallbacks follow theirs).',
      ),
  })
  .describe('A model alias ("slot"): the name clients send as `model`.');

/** The `llm:` block of the config file. */
export const LlmConfigSchema = z
  .strictObject({
    providers: z
      .record(z.string().regex(/^[a-z0-9][a-z0-9_.-]*$/i, 'expected a provider id like "openai-eu"'), Provider)
      .describe('LLM providers by id.'),
    aliases: z
      .record(z.string().min(1), Alias)
      .default({})
      .describe('Model aliases by the name clients send as `model`; `GET /v1/models` lists them.'),
    defaultAlias: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Alias used for a `model` that is neither an alias nor `provider:model`; absent: such a request gets 400.',
      ),
    providerModels: z
      .boolean()
      .default(true)
      .describe('Accept `provider:model` as `model`, for configured providers only.'),
  })
  .describe('The LLM gateway: OpenAI-compatible model routing to providers.');

/** The `llm:` block as written by a user. */
export type LlmConfigInput = z.input<typeof LlmConfigSchema>;
/** The `llm:` block after validation, defaults applied. */
export type LlmConfig = z.output<typeof LlmConfigSchema>;
/** One validated provider. */
export type LlmProviderConfig = LlmConfig['providers'][string];
/** One validated alias. */
export type LlmAliasConfig = LlmConfig['aliases'][string];
/** A validated field policy. */
export type FieldPolicyConfig = z.output<typeof FieldPolicy>;
/** One validated value transform. */
export type FieldTransformConfig = z.output<typeof Transform>;
/** Validated mock provider settings. */
export type MockConfig = z.output<typeof Mock>;
/** Input form of the mock settings (defaults optional), as `MockLlmServer` takes them. */
export type MockConfigInput = z.input<typeof Mock>;
/** A fault the mock can inject. */
export type MockFault = z.output<typeof MockFault>;
/** Validated retry settings. */
export type RetryConfig = z.output<typeof Retry>;
/** Validated concurrency settings. */
export type ConcurrencyConfig = z.output<typeof Concurrency>;

/** Parses mock settings given to `MockLlmServer` directly, applying defaults. */
export function parseMockConfig(input: MockConfigInput = {}): MockConfig {
  return Mock.parse(input);
}

/**
 * Checks the schema cannot express: aliases name existing providers, fallbacks and the default
 * alias name existing aliases, fallbacks do not loop, a key comes from one source at most.
 * @param prefix path of the block in the whole config, for messages.
 * @returns one `path: reason` line per problem; empty when the block is consistent.
 */
export function checkLlmConfig(cfg: LlmConfig, prefix = 'llm'): string[] {
  const problems: string[] = [];
  const providerIds = Object.keys(cfg.providers);
  for (const [id, provider] of Object.entries(cfg.providers)) {
    if (provider.apiKeyEnv !== undefined && provider.apiKeyFile !== undefined) {
      problems.push(`${prefix}.providers.${id}: set apiKeyEnv or apiKeyFile, not both`);
    }
  }
  for (const [slot, alias] of Object.entries(cfg.aliases)) {
    const at = `${prefix}.aliases.${JSON.stringify(slot)}`;
    if (!Object.hasOwn(cfg.providers, alias.provider)) {
      problems.push(
        `${at}.provider: unknown provider ${JSON.stringify(alias.provider)} (known: ${providerIds.join(', ') || 'none'})`,
      );
    }
    alias.fallbacks?.forEach((next, i) => {
      if (next === slot) problems.push(`${at}.fallbacks[${i}]: an alias cannot fall back to itself`);
      else if (!Object.hasOwn(cfg.aliases, next)) {
        problems.push(`${at}.fallbacks[${i}]: unknown alias ${JSON.stringify(next)}`);
      }
    });
  }
  const cycle = findFallbackCycle(cfg.aliases);
  if (cycle !== null) {
    problems.push(`${prefix}.aliases.${JSON.stringify(cycle[0])}.fallbacks: fallbacks loop: ${cycle.join(' -> ')}`);
  }
  if (cfg.defaultAlias !== undefined && !Object.hasOwn(cfg.aliases, cfg.defaultAlias)) {
    problems.push(`${prefix}.defaultAlias: unknown alias ${JSON.stringify(cfg.defaultAlias)}`);
  }
  return problems;
}

/** The first fallback loop found (longer than a self-reference), as the slots along it, or null. */
function findFallbackCycle(aliases: LlmConfig['aliases']): string[] | null {
  const done = new Set<string>();
  const path: string[] = [];
  const onPath = new Set<string>();
  const visit = (slot: string): string[] | null => {
    if (onPath.has(slot)) return [...path.slice(path.indexOf(slot)), slot];
    if (done.has(slot) || !Object.hasOwn(aliases, slot)) return null;
    path.push(slot);
    onPath.add(slot);
    for (const next of aliases[slot].fallbacks ?? []) {
      if (next === slot) continue;
      const found = visit(next);
      if (found !== null) return found;
    }
    path.pop();
    onPath.delete(slot);
    done.add(slot);
    return null;
  };
  for (const slot of Object.keys(aliases)) {
    const found = visit(slot);
    if (found !== null) return found;
  }
  return null;
}
