/**
 * The config schema: one source for validation, the TypeScript types and `docs/config.md`.
 *
 * Keys are camelCase in YAML and in the TypeScript API alike (one style everywhere, see
 * docs/config.md). Every field carries a description; `npm run docs` renders them.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { LlmConfigSchema } from '../llm/schema.ts';
import { parseCidr } from '../route/ip-matcher.ts';

const HOST_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;

/** True for a DNS name made of valid labels (no wildcard). */
function isHostname(value: string): boolean {
  if (value.length === 0 || value.length > 253) return false;
  return value.split('.').every((label) => HOST_LABEL.test(label));
}

/** True for `example.com`, `*.example.com` or `*`. */
function isDomainPattern(value: string): boolean {
  if (value === '*') return true;
  return isHostname(value.startsWith('*.') ? value.slice(2) : value);
}

/** True for an IPv4/IPv6 address or CIDR block, as the matcher compiles it (ip-matcher.ts). */
export function isCidr(value: string): boolean {
  return parseCidr(value) !== null;
}

const Port = z.number().int().min(1).max(65535);

const PortRange = z
  .string()
  .regex(/^\d{1,5}-\d{1,5}$/, 'expected a port range "LOW-HIGH"')
  .refine((s) => {
    const [lo, hi] = s.split('-').map(Number);
    return lo >= 1 && hi <= 65535 && lo <= hi;
  }, 'expected LOW-HIGH with 1 <= LOW <= HIGH <= 65535');

const PortSpec = z.union([Port, PortRange, z.array(z.union([Port, PortRange])).min(1)]);

const TargetString = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, 'expected "host:port" (IPv6 as "[::1]:port")');

const TargetObject = z.strictObject({
  host: z.string().min(1).describe('Target host name or IP address.'),
  port: Port.describe('Target TCP port.'),
});

const Target = z.union([TargetString, TargetObject]);

const HeaderName = z.string().regex(/^[!#$%&'*+.^_`|~0-9a-z-]+$/i, 'expected an HTTP header name');

/**
 * Names a route's header edits may not touch: the engine owns message framing and the connection
 * (an edited Content-Length or Transfer-Encoding would let a body run into the next message), and
 * Host has its own setting, `hostHeader`.
 */
const ENGINE_OWNED_HEADERS = new Set([
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  'host',
]);

/** A field value (RFC 9110 §5.5): visible characters, spaces and tabs; no CR, LF or NUL. */
const HeaderValue = z
  .string()
  .regex(/^[\t\x20-\x7e\x80-\xff]*$/, 'expected a header value without CR, LF or control characters');

const HeaderEdits = z
  .strictObject({
    set: z
      .record(HeaderName, HeaderValue)
      .optional()
      .describe('Headers set to these values (any existing field of the same name is replaced).'),
    add: z.record(HeaderName, HeaderValue).optional().describe('Headers appended, keeping existing fields.'),
    remove: z.array(HeaderName).optional().describe('Header names removed (case-insensitive).'),
  })
  .superRefine((edits, ctx) => {
    const refuse = (name: string, path: (string | number)[]) => {
      if (!ENGINE_OWNED_HEADERS.has(name.toLowerCase())) return;
      const instead = name.toLowerCase() === 'host' ? ' (use `hostHeader`)' : '';
      ctx.addIssue({ code: 'custom', path, message: `"${name}" is set by the engine itself${instead}` });
    };
    for (const [i, name] of (edits.remove ?? []).entries()) refuse(name, ['remove', i]);
    for (const name of Object.keys(edits.set ?? {})) refuse(name, ['set', name]);
    for (const name of Object.keys(edits.add ?? {})) refuse(name, ['add', name]);
  })
  .describe(
    'Header edits, applied in the order remove, set, add. Content-Length, Transfer-Encoding, Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade and Host are refused: the engine sets them.',
  );

const Pool = z
  .strictObject({
    maxConnections: z
      .number()
      .int()
      .positive()
      .default(256)
      .describe('Most connections open to one target (busy and idle together).'),
    idleTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(30_000)
      .describe('An idle keep-alive connection is closed after this long.'),
    queueSize: z
      .number()
      .int()
      .nonnegative()
      .default(1024)
      .describe('Requests that may wait for a connection when all are busy; one more is answered 503.'),
    queueTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(5000)
      .describe('Longest wait for a connection; past it the request is answered 503.'),
  })
  .describe(
    'Upstream keep-alive pool (HTTP mode). Pools are shared per target address across routes and ' +
      'survive reloads; the settings of the last route loaded for an address apply.',
  );

/** Pool settings of forward actions that set none (the schema's own defaults). */
export const POOL_DEFAULTS = Object.freeze(Pool.parse({}));

const ForwardAction = z
  .strictObject({
    type: z.literal('forward'),
    mode: z
      .enum(['tcp', 'tls-passthrough', 'http'])
      .default('tcp')
      .describe(
        'How the connection is forwarded. `tcp`: bytes as they come. `tls-passthrough`: the TLS ' +
          'stream is routed by its SNI and forwarded untouched (the target terminates TLS). `http`: ' +
          'HTTP/1.1 reverse proxying, request by request, with upstream keep-alive pools.',
      ),
    targets: z
      .array(Target)
      .min(1)
      .describe('Upstream addresses, `"host:port"` or `{ host, port }`. Several targets are balanced.'),
    loadBalancing: z
      .enum(['round-robin', 'least-connections', 'failover'])
      .default('round-robin')
      .describe(
        '`round-robin` starts each connection (or request) at the next target; `least-connections` at ' +
          'the target with the fewest in flight; `failover` always at the first. A target that refuses or ' +
          'times out is skipped for the next one.',
      ),
    connectTimeoutMs: z
      .number()
      .int()
      .positive()
      .optional()
      .describe(
        'Connect timeout per target attempt; defaults to `timeouts.connectMs`. With `engine: handles` ' +
          'it is checked by the 250 ms tunnel sweep: a connect gives up no earlier than this and at most 0.5 s later.',
      ),
    idleTimeoutMs: z
      .number()
      .int()
      .positive()
      .optional()
      .describe(
        'Close after this long without a byte either way; defaults to `timeouts.idleMs`. In HTTP mode ' +
          'it also bounds WebSocket and other upgraded tunnels. Checked by a 250 ms sweep: a tunnel ' +
          'closes no earlier than this and at most 0.5 s later.',
      ),
    engine: z
      .enum(['handles', 'sockets'])
      .default('handles')
      .describe(
        'TCP and TLS passthrough: what carries the bytes. `handles`: the libuv handles themselves, with no ' +
          'net.Socket (the SNI is read on the handle too), on a port with no HTTP route and no PROXY protocol ' +
          'whose routes all have `handles` and IP-address targets; about a third of the user CPU per connection ' +
          '(docs/benchmarks.md). Other connections, and every one with `sockets`, use net.Sockets.',
      ),
    responseTimeoutMs: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('HTTP: time allowed from the request being sent until the response head arrives (then 504).'),
    maxBodyBytes: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .describe('HTTP: largest request body accepted (413 past it); defaults to `http.maxBodyBytes`.'),
    hostHeader: z
      .string()
      .optional()
      .describe(
        "HTTP: the Host sent upstream. `preserve` (the default) keeps the client's, `target` uses the " +
          "target's `host:port`, anything else is sent as written.",
      ),
    requestHeaders: HeaderEdits.optional(),
    responseHeaders: HeaderEdits.optional(),
    pool: Pool.optional(),
  })
  .describe('Forward the connection (or, in HTTP mode, each request) to one of the targets.');

const RedirectAction = z
  .strictObject({
    type: z.literal('redirect'),
    to: z
      .string()
      .min(1)
      .describe(
        'Location to send. `{host}` (request host without port), `{port}` and `{path}` (path and query) ' +
          'are replaced. A bare origin such as `https://{host}` keeps the request path and query ' +
          '(http://a/b?c becomes https://a/b?c); a `to` with a path is sent as written.',
      ),
    status: z
      .union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)])
      .default(301)
      .describe('Redirect status.'),
  })
  .describe('HTTP: answer with a redirect.');

const RespondAction = z
  .strictObject({
    type: z.literal('respond'),
    status: z.number().int().min(200).max(599).default(200).describe('Response status.'),
    headers: z.record(HeaderName, z.string()).default({}).describe('Response headers.'),
    body: z.string().default('').describe('Response body (UTF-8).'),
  })
  .describe('HTTP: answer with a fixed response.');

const LlmAction = z
  .strictObject({
    type: z.literal('llm'),
    maxBodyBytes: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .describe('Largest request body accepted (413 past it); defaults to `http.maxBodyBytes`.'),
  })
  .describe(
    'HTTP: serve the OpenAI-compatible LLM gateway (`/v1/chat/completions`, `/v1/completions`, ' +
      '`/v1/embeddings`, `/v1/models`) with the providers and aliases of the `llm` block.',
  );

const Action = z
  .discriminatedUnion('type', [ForwardAction, RedirectAction, RespondAction, LlmAction])
  .describe('What to do with a matched connection (or HTTP request).');

const Match = z
  .strictObject({
    ports: PortSpec.describe('Listen ports: a port, a `"LOW-HIGH"` range, or a list of either.'),
    domains: z
      .array(z.string().refine(isDomainPattern, 'expected a host name, "*.example.com" or "*"'))
      .min(1)
      .optional()
      .describe(
        'SNI (TLS) or Host (HTTP) names: exact, or `*.example.com` for any subdomain at any depth ' +
          '(not the apex). Case-insensitive. Absent: any name, including none.',
      ),
    paths: z
      .array(z.string().startsWith('/', 'expected a path starting with "/"'))
      .min(1)
      .optional()
      .describe('HTTP request paths: exact, or a prefix ending in `*` (`/api/*`). HTTP routes only.'),
    headers: z
      .record(z.string().min(1), z.string())
      .optional()
      .describe('HTTP request headers that must be present with these exact values. HTTP routes only.'),
    clientIps: z
      .array(z.string().refine(isCidr, 'expected an IP address or CIDR block'))
      .min(1)
      .optional()
      .describe(
        'Client addresses (CIDR or single IP, IPv4 or IPv6). IPv4-mapped IPv6 addresses match as IPv4, ' +
          'and a mapped entry such as `::ffff:10.0.0.0/104` is the IPv4 block `10.0.0.0/8`. ' +
          'With a trusted PROXY header, the address it carries is the one matched.',
      ),
  })
  .describe('Which connections the route takes. Every present condition must hold.');

const Route = z
  .strictObject({
    name: z.string().min(1).describe('Unique route name, used in logs and metrics.'),
    priority: z
      .number()
      .int()
      .default(0)
      .describe('Higher priority routes are tried first; equal priorities keep file order.'),
    match: Match,
    action: Action,
  })
  .describe('One entry of the route table.');

const ProxyProtocol = z
  .strictObject({
    trustedCidrs: z
      .array(z.string().refine(isCidr, 'expected an IP address or CIDR block'))
      .default([])
      .describe(
        'Peers allowed to send a PROXY protocol v1/v2 header; they may also connect without one. When ' +
          'set, every connection on every port waits for the client to speak first, so server-speaks-first ' +
          'protocols (SMTP, FTP, MySQL) get nothing until `timeouts.classifyMs` closes them, and a header ' +
          'from any other peer closes the connection. When empty, no peer is trusted: a port whose routes ' +
          'all forward plain TCP passes the bytes through untouched, a `PROXY ` line included (as HAProxy ' +
          'does without `accept-proxy`); an HTTP port answers it 400; a port that reads the TLS ' +
          'ClientHello refuses it and closes the connection.',
      ),
  })
  .describe('PROXY protocol (v1 and v2) on every listener.');

const Timeouts = z
  .strictObject({
    classifyMs: z
      .number()
      .int()
      .positive()
      .default(5000)
      .describe(
        'Time allowed for a PROXY header or a complete TLS ClientHello to arrive, counted from accept: ' +
          'bytes arriving meanwhile do not extend it.',
      ),
    connectMs: z.number().int().positive().default(5000).describe('Default upstream connect timeout.'),
    idleMs: z.number().int().positive().default(300_000).describe('Default idle timeout of a forwarded connection.'),
    shutdownMs: z
      .number()
      .int()
      .nonnegative()
      .default(10_000)
      .describe('On shutdown, how long live connections may finish before they are closed.'),
  })
  .describe('Default timeouts.');

const HelloServer = z
  .strictObject({
    host: z.string().default('127.0.0.1').describe('Address of the built-in hello server.'),
    port: Port.default(8081).describe('Port of the built-in hello server.'),
  })
  .describe('A tiny built-in HTTP server answering "hello from switchyard", for the quick start and tests.');

const Http = z
  .strictObject({
    maxHeaderBytes: z
      .number()
      .int()
      .min(1024)
      .default(16_384)
      .describe('Largest request head (request line and fields); past it the client gets 431.'),
    maxHeaders: z.number().int().positive().default(100).describe('Most header fields in a request (431 past it).'),
    maxUriBytes: z.number().int().positive().default(8192).describe('Longest request target (414 past it).'),
    maxBodyBytes: z
      .number()
      .int()
      .nonnegative()
      .default(1_073_741_824)
      .describe('Default largest request body (413 past it); routes may override. 0 means no limit.'),
    headTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(10_000)
      .describe('Time allowed for a whole request head once its first byte arrived (408 past it; slowloris).'),
    keepAliveTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(60_000)
      .describe('An idle client connection between requests is closed after this long.'),
    requestIdHeader: z
      .string()
      .default('x-request-id')
      .describe('Header carrying a request ID: passed through when the client sent one, generated otherwise.'),
    trustedProxies: z
      .array(z.string().refine(isCidr, 'expected an IP address or CIDR block'))
      .default([])
      .describe('Peers whose X-Forwarded-* headers are kept and appended to; from anyone else they are replaced.'),
    forwardedHeader: z
      .boolean()
      .default(false)
      .describe('Also send the standard `Forwarded` header (RFC 7239) upstream.'),
  })
  .describe('HTTP engine limits and behaviour, for all HTTP routes.');

const Log = z
  .strictObject({
    level: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info')
      .describe('Minimum level written (JSON lines on stdout).'),
  })
  .describe('Logging.');

/** The whole config file. */
export const ConfigSchema = z
  .strictObject({
    bind: z
      .string()
      .refine((s) => isIP(s) !== 0, 'expected an IP address')
      .default('0.0.0.0')
      .describe('Address every route port listens on (`127.0.0.1` for loopback only, `::` for all IPv6).'),
    proxyProtocol: ProxyProtocol.prefault({}),
    timeouts: Timeouts.prefault({}),
    http: Http.prefault({}),
    log: Log.prefault({}),
    helloServer: HelloServer.optional(),
    llm: LlmConfigSchema.optional(),
    routes: z.array(Route).describe('The route table, tried in priority order.'),
  })
  .describe('Switchyard config.');

/** Config as written by a user (optional fields may be absent). */
export type ConfigInput = z.input<typeof ConfigSchema>;
/** Config after validation, with defaults applied. */
export type Config = z.output<typeof ConfigSchema>;
/** One validated route. */
export type RouteConfig = Config['routes'][number];
/** One validated action. */
export type ActionConfig = RouteConfig['action'];
/** The validated `http` block. */
export type HttpConfig = Config['http'];
/** One validated forward action. */
export type ForwardActionConfig = Extract<ActionConfig, { type: 'forward' }>;
/** One validated match block. */
export type MatchConfig = RouteConfig['match'];
