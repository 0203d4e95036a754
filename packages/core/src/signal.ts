/**
 * RequestSignal: what an adapter holds behind `tsgi.signal`. Making an AbortController and
 * its AbortSignal costs microseconds per request, and most apps never read the key; so the
 * adapter aborts this object, the core listens through `onAbort`, and the AbortSignal is
 * made only when something reads `signal` (the app, through the lazy `tsgi.signal` key).
 * Once made, it follows this object: aborted already if this one was, aborted later with
 * the same reason.
 */
export class RequestSignal {
  private aborted_ = false;
  private reason_: unknown = undefined;
  private controller: AbortController | undefined = undefined;
  /** Listeners added through onAbort; undefined until the first, as most requests add none. */
  private listeners: Set<() => void> | undefined = undefined;

  /** RequestSignal.aborted: whether abort() was called. */
  get aborted(): boolean {
    return this.aborted_;
  }

  /** RequestSignal.reason: what abort() was called with (a DOMException AbortError by default). */
  get reason(): unknown {
    return this.reason_;
  }

  /** RequestSignal.signal: the AbortSignal, made on first read, in step with this object. */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.aborted_) this.controller.abort(this.reason_);
    }
    return this.controller.signal;
  }

  /**
   * RequestSignal.abort: fires once; later calls do nothing (as AbortController.abort).
   * Listeners run in the order they were added; one that throws does not stop the others.
   */
  abort(reason?: unknown): void {
    if (this.aborted_) return;
    this.aborted_ = true;
    this.reason_ =
      reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
    this.controller?.abort(this.reason_);
    const ls = this.listeners;
    if (ls === undefined) return;
    this.listeners = undefined;
    for (const fn of ls) {
      try {
        fn();
      } catch (e) {
        // As an EventTarget listener would: reported, not thrown into the adapter.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  /**
   * RequestSignal.onAbort: calls `fn` once when abort() is called (never if it already
   * was); returns the function that removes it.
   */
  onAbort(fn: () => void): () => void {
    if (this.aborted_) return noop;
    // A fresh wrapper per call, so adding the same function twice gives two calls and two
    // independent removers.
    const once = () => fn();
    this.listeners ??= new Set();
    this.listeners.add(once);
    return () => {
      this.listeners?.delete(once);
    };
  }
}

function noop(): void {}
