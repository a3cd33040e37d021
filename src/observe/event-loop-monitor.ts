/**
 * Event-loop lag: the proxy's health signal (DESIGN.md: the loop must never block). Node's
 * sampling histogram runs in C++ at a fixed resolution, so watching costs the loop nothing.
 */
import { type ELDHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

/** Lag percentiles in milliseconds. */
export interface LagSummary {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Sampling interval of the histogram. */
const RESOLUTION_MS = 10;
const RESOLUTION_NS = RESOLUTION_MS * 1e6;

/**
 * Node's histogram records the time between samples, so an idle loop reads one resolution
 * (about 10 ms); the delay is what exceeds it.
 */
function delayNs(sampleNs: number): number {
  return Math.max(0, sampleNs - RESOLUTION_NS);
}

/** Watches event-loop delay for one proxy instance and exports it as a gauge. */
export class EventLoopMonitor {
  readonly #histogram: ELDHistogram;

  constructor(registry: Registry) {
    this.#histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.#histogram.enable();
    const histogram = this.#histogram;
    new Gauge({
      name: 'switchyard_event_loop_lag_seconds',
      help: 'Event-loop delay since start, by quantile (sampled every 10 ms).',
      labelNames: ['quantile'],
      registers: [registry],
      collect() {
        this.set({ quantile: '0.5' }, delayNs(histogram.percentile(50)) / 1e9);
        this.set({ quantile: '0.99' }, delayNs(histogram.percentile(99)) / 1e9);
        this.set({ quantile: '1' }, delayNs(histogram.max) / 1e9);
      },
    });
  }

  /** Percentiles since start (or the last reset). */
  summary(): LagSummary {
    const h = this.#histogram;
    const round = (ns: number): number => Math.round(delayNs(ns) / 1e4) / 100;
    return { p50Ms: round(h.percentile(50)), p99Ms: round(h.percentile(99)), maxMs: round(h.max) };
  }

  /** Starts a new measuring window (benchmarks call it after warm-up). */
  reset(): void {
    this.#histogram.reset();
  }

  close(): void {
    this.#histogram.disable();
  }
}
