/**
 * Idle timeouts of L4 tunnels, enforced by one coarse interval rather than a timer per socket.
 *
 * `socket.setTimeout` refreshes its timer on every read and every write: on a tunnel that is four
 * refreshes per exchange (read the client, write the upstream, read the upstream, write the
 * client), about 0.2 µs each on the 2-core bench VM, some 5% of the proxy's CPU per exchange on
 * tcp-small. Here a tunnel only counts its activity (one increment per read or 'drain'), and the
 * sweep closes a tunnel whose count has not moved for its idle timeout. A timeout fires no
 * earlier than configured and at most two sweep intervals late. The HTTP engine does the same
 * for its deadlines (http-engine.ts).
 */

/** What the sweep needs of a tunnel (tunnel.ts, raw-tunnel.ts). */
export interface SweptTunnel {
  activity: number;
  sweptActivity: number;
  idleSince: number;
  readonly options: { readonly idleTimeoutMs: number };
  /** When the connect attempt in progress gives up (ms since epoch), or 0 for none. */
  readonly connectDeadline: number;
  connectTimeout(): void;
  idleTimeout(): void;
  finish(): void;
}

/** Sweep interval, as the HTTP engine's. */
const SWEEP_MS = 250;

/** The tunnels of one proxy with their idle timeouts; the runtime owns it and closes it. */
export class TunnelSweeper {
  readonly tunnels: Set<SweptTunnel>;
  #timer: NodeJS.Timeout | null;

  constructor() {
    this.tunnels = new Set();
    this.#timer = null;
  }

  /** Starts watching a tunnel: joined (tunnel.ts), or from accept on (raw-tunnel.ts). */
  add(tunnel: SweptTunnel): void {
    tunnel.idleSince = Date.now();
    this.tunnels.add(tunnel);
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.sweep(Date.now()), SWEEP_MS);
      this.#timer.unref();
    }
  }

  /** Stops watching a tunnel (it finished); the timer stops with the last one. */
  delete(tunnel: SweptTunnel): void {
    this.tunnels.delete(tunnel);
    if (this.tunnels.size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  /** Ends every tunnel idle for its timeout at `now`. */
  sweep(now: number): void {
    for (const tunnel of this.tunnels) {
      if (tunnel.connectDeadline !== 0) {
        if (now >= tunnel.connectDeadline) tunnel.connectTimeout();
      } else if (tunnel.activity !== tunnel.sweptActivity) {
        tunnel.sweptActivity = tunnel.activity;
        tunnel.idleSince = now;
      } else if (now - tunnel.idleSince >= tunnel.options.idleTimeoutMs) {
        tunnel.idleTimeout();
      }
    }
  }

  /**
   * Closes both sides of every tunnel still open and records its byte counts, then stops the
   * timer. Shutdown calls it at the drain deadline: destroying a client only ends its upstream,
   * and an upstream that never answers that FIN would otherwise stay open for good.
   */
  close(): void {
    for (const tunnel of this.tunnels) tunnel.finish();
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.tunnels.clear();
  }
}
