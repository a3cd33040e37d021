/**
 * The compiled, immutable route table.
 *
 * Config is compiled once per load into per-port indexes, so a lookup never scans every route:
 * port → exact host → wildcard suffixes → routes without a host condition (CONVENTIONS.md, "Hot
 * path habits"). A reload builds a new table and swaps one reference; connections keep the table
 * they started with.
 */
import type { ActionConfig, Config, RouteConfig } from '../config/schema.ts';
import { TargetRegistry, type TargetState } from '../policy/target-state.ts';
import { IpMatcher } from './ip-matcher.ts';
import { expandPorts } from './ports.ts';

/** What a connection or request is matched on. */
export interface MatchContext {
  /** Local port the connection arrived on. */
  port: number;
  /** TLS SNI or HTTP Host (lower-case, no port), or null when there is none. */
  serverName: string | null;
  /** Client address (from a trusted PROXY header when present). */
  clientIp: string;
  /** True when the connection starts with a TLS ClientHello. */
  tls: boolean;
  /** HTTP request path without query, or null at layer 4. */
  path: string | null;
  /** HTTP request headers as a flat [name, value, ...] list, or null at layer 4. */
  headers: ReadonlyArray<string> | null;
  /** 4 while routing a connection, 7 while routing an HTTP request. */
  layer: 4 | 7;
}

/** Splits `"host:port"`, `"[v6]:port"` or `{ host, port }`. */
export function parseTarget(spec: string | { host: string; port: number }): { host: string; port: number } {
  if (typeof spec !== 'string') return spec;
  const colon = spec.lastIndexOf(':');
  let host = spec.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, port: Number(spec.slice(colon + 1)) };
}

/** Path condition: exact paths and prefixes (`/api/*`). */
class PathMatcher {
  readonly exact: Set<string>;
  readonly prefixes: string[];

  constructor(paths: ReadonlyArray<string>) {
    this.exact = new Set();
    this.prefixes = [];
    for (const p of paths) {
      if (p.endsWith('*')) this.prefixes.push(p.slice(0, -1));
      else this.exact.add(p);
    }
  }

  matches(path: string): boolean {
    if (this.exact.has(path)) return true;
    for (const prefix of this.prefixes) if (path.startsWith(prefix)) return true;
    return false;
  }
}

/** One route, compiled. */
export class CompiledRoute {
  readonly name: string;
  readonly priority: number;
  /** Position in the table's try order: lower ranks are tried first. */
  readonly rank: number;
  readonly ports: ReadonlyArray<number>;
  /** Host patterns as written (lower-cased), or null for any host. */
  readonly domains: ReadonlyArray<string> | null;
  readonly clientIps: IpMatcher | null;
  readonly paths: PathMatcher | null;
  /** Required headers as lower-case name and exact value pairs, or null. */
  readonly headers: ReadonlyArray<readonly [string, string]> | null;
  /** True when only TLS connections may take the route (TLS passthrough). */
  readonly requiresTls: boolean;
  /** 4 for TCP and TLS passthrough, 7 for HTTP actions. */
  readonly layer: 4 | 7;
  readonly action: ActionConfig;
  readonly targets: ReadonlyArray<TargetState>;
  /** Next target index for round-robin; per table, so it restarts at 0 after a reload. */
  cursor: number;

  constructor(config: RouteConfig, rank: number, registry: TargetRegistry) {
    this.name = config.name;
    this.priority = config.priority;
    this.rank = rank;
    const { match, action } = config;
    this.ports = expandPorts(match.ports);
    const domains = match.domains?.map((d) => d.toLowerCase()).filter((d) => d !== '*') ?? [];
    this.domains = domains.length > 0 ? domains : null;
    this.clientIps = match.clientIps ? new IpMatcher(match.clientIps) : null;
    this.paths = match.paths ? new PathMatcher(match.paths) : null;
    this.headers = match.headers
      ? Object.entries(match.headers).map(([name, value]) => [name.toLowerCase(), value] as const)
      : null;
    this.requiresTls = action.type === 'forward' && action.mode === 'tls-passthrough';
    this.layer = action.type === 'forward' && action.mode !== 'http' ? 4 : 7;
    this.action = action;
    this.targets =
      action.type === 'forward'
        ? action.targets.map((spec) => {
            const { host, port } = parseTarget(spec);
            return registry.get(host, port);
          })
        : [];
    this.cursor = 0;
  }

  /** Checks every condition except port and host, which the index already decided. */
  matchesRest(ctx: MatchContext): boolean {
    if (this.layer !== ctx.layer) return false;
    if (this.requiresTls && !ctx.tls) return false;
    if (this.clientIps !== null && !this.clientIps.matches(ctx.clientIp)) return false;
    if (this.paths !== null && (ctx.path === null || !this.paths.matches(ctx.path))) return false;
    if (this.headers !== null) {
      if (ctx.headers === null) return false;
      for (const [name, value] of this.headers) if (!hasHeader(ctx.headers, name, value)) return false;
    }
    return true;
  }
}

function hasHeader(headers: ReadonlyArray<string>, name: string, value: string): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i].length === name.length && headers[i].toLowerCase() === name && headers[i + 1] === value) return true;
  }
  return false;
}

/** First route of a rank-ordered list that passes the remaining conditions. */
function firstMatch(routes: ReadonlyArray<CompiledRoute> | undefined, ctx: MatchContext): CompiledRoute | null {
  if (routes === undefined) return null;
  for (const route of routes) if (route.matchesRest(ctx)) return route;
  return null;
}

function better(a: CompiledRoute | null, b: CompiledRoute | null): CompiledRoute | null {
  if (a === null) return b;
  if (b === null) return a;
  return a.rank <= b.rank ? a : b;
}

/** The routes of one listen port, indexed by host. */
export class PortIndex {
  readonly port: number;
  readonly exact: Map<string, CompiledRoute[]>;
  /** `*.example.com` routes under the key `example.com`. */
  readonly wildcards: Map<string, CompiledRoute[]>;
  /** Routes without a host condition. */
  readonly any: CompiledRoute[];
  /**
   * True when routing needs the first client bytes (an SNI to read, or TLS to detect). Ports
   * without such routes forward at once, so server-speaks-first protocols work there.
   */
  needsPeek: boolean;
  /** True when some route on the port is an HTTP route: plaintext goes to the HTTP engine. */
  hasHttp: boolean;

  constructor(port: number) {
    this.port = port;
    this.exact = new Map();
    this.wildcards = new Map();
    this.any = [];
    this.needsPeek = false;
    this.hasHttp = false;
  }

  add(route: CompiledRoute): void {
    if (route.domains === null) {
      this.any.push(route);
    } else {
      for (const domain of route.domains) {
        const wildcard = domain.startsWith('*.');
        const map = wildcard ? this.wildcards : this.exact;
        const key = wildcard ? domain.slice(2) : domain;
        const list = map.get(key);
        if (list === undefined) map.set(key, [route]);
        else if (!list.includes(route)) list.push(route);
      }
    }
    if (route.layer === 7) this.hasHttp = true;
    else if (route.domains !== null || route.requiresTls) this.needsPeek = true;
  }

  /** The best route for a context on this port, or null. */
  match(ctx: MatchContext): CompiledRoute | null {
    const name = ctx.serverName;
    let best: CompiledRoute | null = null;
    if (name !== null) {
      best = firstMatch(this.exact.get(name), ctx);
      if (this.wildcards.size > 0) {
        for (let dot = name.indexOf('.'); dot !== -1; dot = name.indexOf('.', dot + 1)) {
          best = better(best, firstMatch(this.wildcards.get(name.slice(dot + 1)), ctx));
        }
      }
    }
    return better(best, firstMatch(this.any, ctx));
  }
}

/** The whole compiled table: immutable once built. */
export class RouteTable {
  readonly config: Config;
  readonly routes: ReadonlyArray<CompiledRoute>;
  readonly ports: ReadonlyMap<number, PortIndex>;

  /** @param registry shared per-address state; a fresh one when absent (tests). */
  constructor(config: Config, registry: TargetRegistry = new TargetRegistry()) {
    this.config = config;
    // Try order: priority descending, then file order (Array.prototype.sort is stable).
    const ordered = config.routes
      .map((route, index) => ({ route, index }))
      .sort((a, b) => b.route.priority - a.route.priority || a.index - b.index);
    const routes = ordered.map(({ route }, rank) => new CompiledRoute(route, rank, registry));
    const ports = new Map<number, PortIndex>();
    for (const route of routes) {
      for (const port of route.ports) {
        let index = ports.get(port);
        if (index === undefined) ports.set(port, (index = new PortIndex(port)));
        index.add(route);
      }
    }
    this.routes = routes;
    this.ports = ports;
  }

  /** The best route for a context, or null when none matches. */
  match(ctx: MatchContext): CompiledRoute | null {
    const index = this.ports.get(ctx.port);
    return index === undefined ? null : index.match(ctx);
  }
}
