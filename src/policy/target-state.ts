/**
 * Shared state of one upstream address, kept across reloads: the same `host:port` in an old and
 * a new route table is one TargetState, so in-flight counts and the HTTP keep-alive pool carry on
 * (DESIGN.md, "the shape"; caddy's per-address host state).
 */

/** Anything a target may own that needs closing (the HTTP pool). */
export interface Closable {
  close(): void;
}

/** Per-address state. */
export class TargetState {
  readonly host: string;
  readonly port: number;
  /** `host:port`, the registry key. */
  readonly key: string;
  /** Connections (L4) or requests (HTTP) in flight to this target, for least-connections. */
  active: number;
  /** The HTTP engine's keep-alive pool for this address, created on first use. */
  pool: Closable | null;

  constructor(host: string, port: number, key: string) {
    this.host = host;
    this.port = port;
    this.key = key;
    this.active = 0;
    this.pool = null;
  }
}

/** Every TargetState of one proxy, by address. */
export class TargetRegistry {
  readonly #targets = new Map<string, TargetState>();

  /** The state for an address, created on first use. */
  get(host: string, port: number): TargetState {
    const key = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    let state = this.#targets.get(key);
    if (state === undefined) {
      state = new TargetState(host, port, key);
      this.#targets.set(key, state);
    }
    return state;
  }

  /** Drops state no route uses any more (after a reload), closing its pool. */
  retain(used: ReadonlySet<TargetState>): void {
    for (const [key, state] of this.#targets) {
      if (!used.has(state)) {
        this.#targets.delete(key);
        state.pool?.close();
      }
    }
  }

  /** Closes every pool. */
  close(): void {
    for (const state of this.#targets.values()) state.pool?.close();
    this.#targets.clear();
  }
}
