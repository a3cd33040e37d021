/**
 * One call to a provider: the undici dispatch handler of a single attempt. Callbacks go to the
 * owning {@link Exchange} tagged with the attempt, so a late callback of an attempt the exchange
 * has already given up on is recognised and ignored.
 */
import type { Dispatcher } from 'undici';
/** Response headers as undici reports them: lower-case names. */
export type UpstreamHeaders = Record<string, string | string[] | undefined>;

/** What an attempt reports to; implemented by the exchange. */
export interface AttemptOwner {
  onUpstreamStart(attempt: UpstreamAttempt, status: number, headers: UpstreamHeaders): void;
  onUpstreamData(attempt: UpstreamAttempt, chunk: Buffer): void;
  onUpstreamEnd(attempt: UpstreamAttempt): void;
  onUpstreamError(attempt: UpstreamAttempt, error: Error): void;
}

/** An undici handler (new callback API) for one attempt; see the file comment. */
export class UpstreamAttempt implements Dispatcher.DispatchHandler {
  readonly owner: AttemptOwner;
  /** Set once the request reached a connection; null while undici still connects or queues. */
  controller: Dispatcher.DispatchController | null = null;
  /** Why the owner aborted before undici handed over a controller. */
  abortReason: Error | null = null;
  /** True once undici reported the end or an error. */
  settled = false;

  constructor(owner: AttemptOwner) {
    this.owner = owner;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    if (this.abortReason !== null) controller.abort(this.abortReason);
    else this.controller = controller;
  }

  onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: UpstreamHeaders): void {
    this.owner.onUpstreamStart(this, status, headers);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.owner.onUpstreamData(this, chunk);
  }

  onResponseEnd(): void {
    this.settled = true;
    this.owner.onUpstreamEnd(this);
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    this.settled = true;
    this.owner.onUpstreamError(this, error);
  }

  /** Cancels the call now, or as soon as undici hands over the request if it is still connecting. */
  abort(reason: Error): void {
    if (this.settled) return;
    if (this.controller === null) this.abortReason = reason;
    else this.controller.abort(reason);
  }

  /** Stops reading the upstream body (the client is slow). */
  pause(): void {
    this.controller?.pause();
  }

  /** Reads the upstream body again. */
  resume(): void {
    this.controller?.resume();
  }
}
