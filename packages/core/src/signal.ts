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
  /**
   * Listeners: the first in a field, more in an array; most requests have none or one
   * (the core's, while an async app runs), and a Set per request was measurable garbage.
   */
  private first: (() => void) | undefined = undefined;
  private more: Array<() => void> | undefined = undefined;

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
    const first = this.first;
    const more = this.more;
    this.first = undefined;
    this.more = undefined;
    if (first !== undefined) call(first);
    if (more !== undefined) for (const fn of more) call(fn);
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
    this.addAbortListener(once);
    return () => this.removeAbortListener(once);
  }

  /**
   * RequestSignal.addAbortListener: calls `fn` once when abort() is called (never if it
   * already was). Unlike `onAbort` it allocates nothing for the first listener; remove it
   * with `removeAbortListener(fn)` (the same function: add a function once).
   */
  addAbortListener(fn: () => void): void {
    if (this.aborted_) return;
    // The field only while nothing waits in the array, so listeners run in the order added.
    if (this.first === undefined && this.more === undefined) this.first = fn;
    else (this.more ??= []).push(fn);
  }

  /** RequestSignal.removeAbortListener: removes `fn` added with `addAbortListener`. */
  removeAbortListener(fn: () => void): void {
    if (this.first === fn) {
      this.first = undefined;
      return;
    }
    const more = this.more;
    if (more === undefined) return;
    const i = more.indexOf(fn);
    if (i >= 0) more.splice(i, 1);
  }
}

/** Runs a listener; one that throws is reported as an EventTarget listener's would be, not thrown into the adapter. */
function call(fn: () => void): void {
  try {
    fn();
  } catch (e) {
    queueMicrotask(() => {
      throw e;
    });
  }
}

function noop(): void {}
