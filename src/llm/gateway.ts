/**
 * The LLM gateway: OpenAI-compatible endpoints in front of configured providers.
 *
 * The HTTP engine reads a request body and calls {@link LlmGateway.handle}; the gateway parses
 * the body once, resolves `model` to an alias (or `provider:model`), and hands the rest to an
 * {@link Exchange}. It owns every provider's pool and limiter, the built-in mock servers and one
 * coarse timer, and releases all of them in {@link LlmGateway.close}.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { SwitchyardError } from '../errors.ts';
import { ConnectionList } from '../runtime/connection-list.ts';
import type { LimiterStats } from './concurrency-limiter.ts';
import { DeadlineWheel } from './deadline-wheel.ts';
import { matchEndpoint } from './endpoint.ts';
import { Exchange, type ExchangeContext } from './exchange.ts';
import { ModelRouter } from './model-router.ts';
import { writeOpenAiError } from './openai-error.ts';
import { ProviderRuntime } from './provider-runtime.ts';
import { MockAdapter } from './providers/mock.ts';
import { MockLlmServer } from './providers/mock-server.ts';
import { OpenAiAdapter } from './providers/openai.ts';
import type { ProviderAdapter } from './providers/provider-adapter.ts';
import { checkLlmConfig, type LlmConfig, type LlmProviderConfig } from './schema.ts';
import type { LlmRequest, LlmResponse } from './types.ts';
import { type UsageCounter, UsageStats } from './usage-stats.ts';

/** Extra log paths blanked by the gateway's logger, on top of the process logger's. */
const REDACT_PATHS = [
  'upstreamHeaders.authorization',
  'upstreamHeaders["api-key"]',
  'upstreamHeaders["x-api-key"]',
  'headers["api-key"]',
  'headers.cookie',
  'apiKey',
  '*.apiKey',
];

/** Options of {@link LlmGateway}. */
export interface LlmGatewayOptions {
  /** Parent logger; the gateway logs through a child with `component: "llm"`. */
  logger: Logger;
  /** Resolution of the gateway's coarse timer (deadlines, queue waits, backoffs); default 50 ms. */
  timerResolutionMs?: number;
}

/** Counters for the metrics layer and the admin API. */
export interface LlmStats {
  /** Requests and tokens per alias and provider. */
  usage: UsageCounter[];
  /** Limiter state per provider. */
  providers: Array<LimiterStats & { id: string; available: boolean }>;
  /** Requests in progress. */
  inFlight: number;
}

const JSON_HEADERS = { 'content-type': 'application/json' } as const;

/** The gateway; see the file comment. */
export class LlmGateway {
  readonly config: LlmConfig;
  #logger: Logger;
  #ctx: ExchangeContext;
  #wheel: DeadlineWheel;
  #live = new ConnectionList<Exchange>();
  #usage = new UsageStats();
  #providers = new Map<string, ProviderRuntime>();
  #mocks = new Map<string, MockLlmServer>();
  #router: ModelRouter | null = null;
  #problems: SwitchyardError[] = [];
  #starting: Promise<void>;
  #closed = false;

  /**
   * Starts the gateway: providers whose key comes from a file and mock servers become ready
   * asynchronously; requests that arrive before wait for them ({@link ready}).
   * @param config the `llm` block, parsed by `LlmConfigSchema`.
   * @throws SwitchyardError SY_CFG_INVALID when `checkLlmConfig` finds problems.
   */
  constructor(config: LlmConfig, options: LlmGatewayOptions) {
    const problems = checkLlmConfig(config);
    if (problems.length > 0) {
      throw new SwitchyardError('SY_CFG_INVALID', { source: 'llm', detail: `\n  ${problems.join('\n  ')}` });
    }
    this.config = config;
    this.#logger = options.logger.child(
      { component: 'llm' },
      { redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    );
    this.#wheel = new DeadlineWheel(options.timerResolutionMs ?? 50);
    this.#ctx = {
      logger: this.#logger,
      logRequests: this.#logger.isLevelEnabled('info'),
      logDebug: this.#logger.isLevelEnabled('debug'),
      wheel: this.#wheel,
      live: this.#live,
      arrivals: [],
      arming: null,
    };
    for (const [id, provider] of Object.entries(config.providers)) {
      if (provider.type === 'mock') this.#mocks.set(id, new MockLlmServer(provider.mock));
    }
    this.#starting = this.#start();
    // Observed by ready() and handle(); this keeps an unexpected failure from also being an
    // unhandled rejection when nobody called ready().
    this.#starting.catch(() => {});
  }

  async #start(): Promise<void> {
    await Promise.all(
      Object.entries(this.config.providers).map(async ([id, provider]) => {
        let adapter: ProviderAdapter | null = null;
        let problem: SwitchyardError | null = null;
        try {
          adapter = await this.#adapter(id, provider);
        } catch (error) {
          const cause = error instanceof SwitchyardError ? error : null;
          this.#problems.push(
            cause ?? new SwitchyardError('SY_LLM_PROVIDER_UNAVAILABLE', { provider: id, detail: String(error) }),
          );
          problem = new SwitchyardError(
            'SY_LLM_PROVIDER_UNAVAILABLE',
            { provider: id, detail: cause?.message ?? (error as Error).message },
            { cause: error },
          );
          this.#logger.error(
            { provider: id, code: cause?.code ?? problem.code, err: problem.message },
            'llm provider unavailable',
          );
        }
        this.#providers.set(id, new ProviderRuntime(id, provider, adapter, problem, this.#wheel));
      }),
    );
    if (this.#closed) return;
    this.#router = new ModelRouter(this.config, this.#providers, this.#usage);
    this.#logger.debug(
      { providers: [...this.#providers.keys()], aliases: Object.keys(this.config.aliases) },
      'llm gateway ready',
    );
  }

  async #adapter(id: string, provider: LlmProviderConfig): Promise<ProviderAdapter> {
    const key = await this.#apiKey(id, provider);
    if (provider.type === 'mock') {
      const server = this.#mocks.get(id)!;
      return new MockAdapter(id, provider, key, await server.listen(0, '127.0.0.1'));
    }
    return new OpenAiAdapter(id, provider, key, provider.baseUrl);
  }

  async #apiKey(id: string, provider: LlmProviderConfig): Promise<string | null> {
    if (provider.apiKeyEnv !== undefined) {
      const key = process.env[provider.apiKeyEnv];
      if (key === undefined || key === '') {
        throw new SwitchyardError('SY_LLM_API_KEY', {
          provider: id,
          detail: `environment variable ${provider.apiKeyEnv} is not set`,
        });
      }
      return key;
    }
    if (provider.apiKeyFile !== undefined) {
      let text: string;
      try {
        text = await readFile(provider.apiKeyFile, 'utf8');
      } catch (cause) {
        throw new SwitchyardError(
          'SY_LLM_API_KEY',
          { provider: id, detail: `cannot read ${provider.apiKeyFile}: ${(cause as NodeJS.ErrnoException).code}` },
          { cause },
        );
      }
      const key = text.trim();
      if (key === '')
        throw new SwitchyardError('SY_LLM_API_KEY', { provider: id, detail: `${provider.apiKeyFile} is empty` });
      return key;
    }
    return null;
  }

  /**
   * Resolves once every provider is set up (mock servers listening, key files read).
   * @throws AggregateError of the providers that could not be set up; the gateway still serves
   * the others, and requests for the broken ones fail over to their fallbacks or get 503.
   */
  async ready(): Promise<void> {
    await this.#starting;
    if (this.#problems.length > 0) {
      throw new AggregateError(this.#problems, this.#problems.map((p) => p.message).join('; '));
    }
  }

  /** The built-in mock server of provider `id` (listening after {@link ready}), for tests and the quick start. */
  mockServer(id: string): MockLlmServer | undefined {
    return this.#mocks.get(id);
  }

  /** Handles one request whose body the engine has fully read. Never throws; always answers or ends. */
  handle(req: LlmRequest, res: LlmResponse): void {
    if (this.#closed) {
      writeOpenAiError(res, new SwitchyardError('SY_ADMIN_SHUTDOWN'));
      return;
    }
    const router = this.#router;
    if (router === null) {
      this.#starting.then(
        () => this.handle(req, res),
        (error: Error) => {
          const detail = `the gateway failed to start: ${error.message}`;
          writeOpenAiError(res, new SwitchyardError('SY_LLM_PROVIDER_UNAVAILABLE', { provider: '*', detail }));
        },
      );
      return;
    }
    if (req.gone) return;
    const q = req.url.indexOf('?');
    const path = q === -1 ? req.url : req.url.slice(0, q);
    const endpoint = matchEndpoint(path);
    if (endpoint === null) {
      this.#reject(req, res, new SwitchyardError('SY_LLM_NOT_FOUND', { path }), null);
      return;
    }
    if (endpoint === 'models') {
      if (req.method !== 'GET') {
        this.#reject(req, res, new SwitchyardError('SY_LLM_METHOD_NOT_ALLOWED', { method: req.method, path }), null);
        return;
      }
      res.writeHead(200, { ...JSON_HEADERS, 'content-length': String(router.modelsBody.length) });
      res.end(router.modelsBody);
      return;
    }
    if (req.method !== 'POST') {
      this.#reject(req, res, new SwitchyardError('SY_LLM_METHOD_NOT_ALLOWED', { method: req.method, path }), null);
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(req.body.toString('utf8'));
    } catch (cause) {
      const detail = `body is not valid JSON (${(cause as Error).message})`;
      this.#reject(req, res, new SwitchyardError('SY_LLM_BAD_REQUEST', { detail }), null);
      return;
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      this.#reject(req, res, new SwitchyardError('SY_LLM_BAD_REQUEST', { detail: 'body must be a JSON object' }), null);
      return;
    }
    const request = body as Record<string, unknown>;
    const model = request.model;
    if (typeof model !== 'string' || model === '') {
      const detail = '`model` must be a non-empty string';
      this.#reject(req, res, new SwitchyardError('SY_LLM_BAD_REQUEST', { detail }), 'model');
      return;
    }
    const route = router.resolve(model);
    if (route === null) {
      this.#reject(req, res, new SwitchyardError('SY_LLM_UNKNOWN_MODEL', { model: JSON.stringify(model) }), 'model');
      return;
    }
    new Exchange(this.#ctx, req, res, endpoint, route, request).start();
  }

  /** Answers a request that is refused before routing, and logs it like any other. */
  #reject(req: LlmRequest, res: LlmResponse, error: SwitchyardError, param: string | null): void {
    writeOpenAiError(res, error, param);
    if (this.#ctx.logRequests) {
      this.#logger.info(
        { method: req.method, url: req.url, status: error.status, code: error.code, client: req.clientAddress },
        'llm request rejected',
      );
    }
  }

  /** Counters for metrics: usage per alias and provider, limiter state per provider. */
  stats(): LlmStats {
    const providers: LlmStats['providers'] = [];
    for (const runtime of this.#providers.values()) {
      providers.push({ id: runtime.id, available: runtime.unavailable === null, ...runtime.limiter.stats() });
    }
    return { usage: this.#usage.rows(), providers, inFlight: this.#live.size };
  }

  /**
   * Ends requests in progress (503 if nothing was sent yet, an error event mid-stream), then
   * closes every pool, mock server and timer. Graceful draining is the caller's part: stop
   * routing new requests here and wait for {@link LlmStats.inFlight} to reach 0 first.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#starting.catch(() => {});
    // Over a copy, skipping exchanges an earlier shutdown already ended.
    this.#live.forEach((exchange) => {
      exchange.shutdown();
    });
    if (this.#ctx.arming !== null) clearImmediate(this.#ctx.arming);
    this.#ctx.arming = null;
    this.#ctx.arrivals.length = 0;
    this.#wheel.close();
    await Promise.all([
      ...Array.from(this.#providers.values(), (p) => p.close()),
      ...Array.from(this.#mocks.values(), (m) => m.close()),
    ]);
  }
}
