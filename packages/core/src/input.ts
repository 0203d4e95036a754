import { Buffer } from 'node:buffer';
import { TsgiError } from './errors.js';
import type { ByteSource, InputStream } from './types.js';

const EMPTY = Buffer.alloc(0);
const RESOLVED: Promise<unknown> = Promise.resolve();
/** Frozen, so that a bug can never share bytes between requests through it. */
const NO_CHUNKS = Object.freeze([]) as unknown as Buffer[];

/**
 * Input: `tsgi.input`. Wraps an adapter's ByteSource so that (SPEC rules 2.1-2.10):
 * - reads never go past CONTENT_LENGTH (WSGI 1.0 amendment: a read past it returns an
 *   empty chunk instead of blocking on a socket that has nothing more to give);
 * - with no CONTENT_LENGTH, reads go to the end of the source (the server dechunked);
 * - an empty chunk means end of input, forever after (`tsgi.input_terminated`);
 * - `read()` with no size returns all that remains; `readline(size)` honours size;
 * - a body that ends before CONTENT_LENGTH is an error, not a short read passed off
 *   as complete.
 * Nothing is pulled from the source until the application asks, so an adapter that
 * pauses its socket until `pull()` is called gets backpressure.
 */
export class Input implements InputStream {
  /** Buffered chunks; a shared empty array until the first chunk arrives (most requests have none). */
  private chunks: Buffer[] = NO_CHUNKS;
  private buffered = 0;
  /** Bytes the source may still deliver (CONTENT_LENGTH minus what was pulled). */
  private remaining: number;
  private eof: boolean;
  private failure: Error | undefined;
  private queue: Promise<unknown> = RESOLVED;
  /** Input.received: bytes pulled from the source so far. */
  received = 0;

  constructor(
    private readonly source: ByteSource | null,
    /** Input.contentLength: CONTENT_LENGTH as a number, or undefined when absent. */
    readonly contentLength: number | undefined,
  ) {
    this.remaining = contentLength ?? Number.POSITIVE_INFINITY;
    this.eof = source === null || this.remaining === 0;
  }

  /** Input.exhausted: true when the body has been pulled to its end. */
  get exhausted(): boolean {
    return this.eof;
  }

  read(size?: number): Promise<Uint8Array> {
    return this.serial(() => this.doRead(size));
  }

  readline(size?: number): Promise<Uint8Array> {
    return this.serial(() => this.doReadline(size));
  }

  readlines(hint?: number): Promise<Uint8Array[]> {
    return this.serial(async () => {
      const lines: Uint8Array[] = [];
      let total = 0;
      for (;;) {
        const line = await this.doReadline();
        if (line.length === 0) return lines;
        lines.push(line);
        total += line.length;
        if (hint !== undefined && hint > 0 && total >= hint) return lines;
      }
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: () =>
        this.serial(async () => {
          // A source may deliver empty chunks; they do not end the input.
          while (this.buffered === 0 && !this.eof) await this.fill();
          if (this.buffered === 0) {
            if (this.failure) throw this.failure;
            return { done: true, value: undefined };
          }
          return { done: false, value: this.take(this.buffered) };
        }) as Promise<IteratorResult<Uint8Array>>,
      return: async () => ({ done: true, value: undefined }),
    };
  }

  /**
   * Input.drain: reads and discards what the application left unread, up to `maxBytes`.
   * Resolves true when the body was consumed to its end (the connection may be reused),
   * false when the bound was hit or the source failed (close the connection instead).
   */
  drain(maxBytes: number): Promise<boolean> {
    return this.serial(async () => {
      // A source that failed (truncated body, reset) leaves the connection unusable.
      if (this.failure) return false;
      this.chunks = NO_CHUNKS;
      let discarded = this.buffered;
      this.buffered = 0;
      try {
        while (!this.eof) {
          if (discarded > maxBytes) return false;
          await this.fill();
          discarded += this.buffered;
          this.chunks = NO_CHUNKS;
          this.buffered = 0;
        }
      } catch {
        return false;
      }
      return true;
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    // Reads are queued rather than refused: an app that starts two reads at once still
    // gets the bytes in order, each exactly once.
    const p = this.queue.then(fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private async doRead(size?: number): Promise<Uint8Array> {
    if (size === undefined || size === null || size < 0) {
      while (!this.eof) await this.fill();
      // A truncated or failed body stays an error: never pass a part off as the end.
      if (this.failure) throw this.failure;
      return this.take(this.buffered);
    }
    if (!Number.isInteger(size)) {
      throw new TsgiError(
        'ERR_CORE_BAD_READ_SIZE',
        `core: tsgi.input.read size must be an integer, got ${size}`,
      );
    }
    while (this.buffered < size && !this.eof) await this.fill();
    if (this.buffered < size && this.failure) throw this.failure;
    return this.take(Math.min(size, this.buffered));
  }

  private async doReadline(size?: number): Promise<Uint8Array> {
    const limit = size === undefined || size === null || size < 0 ? Number.POSITIVE_INFINITY : size;
    if (limit === 0) return EMPTY;
    let scanned = 0;
    for (;;) {
      // Look for LF only in bytes not scanned yet: linear in the line length.
      let offset = 0;
      for (const c of this.chunks) {
        if (offset + c.length > scanned) {
          const from = Math.max(0, scanned - offset);
          const i = c.indexOf(0x0a, from);
          if (i >= 0 && offset + i < limit) return this.take(offset + i + 1);
        }
        offset += c.length;
      }
      scanned = this.buffered;
      if (this.buffered >= limit) return this.take(limit);
      if (this.eof) {
        if (this.failure) throw this.failure;
        return this.take(this.buffered);
      }
      await this.fill();
    }
  }

  /** Pulls one chunk from the source, cut at CONTENT_LENGTH. */
  private async fill(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.eof) return;
    let chunk: Uint8Array | null;
    try {
      chunk = await this.source!.pull();
    } catch (e) {
      this.failure = e instanceof Error ? e : new Error(String(e));
      this.eof = true;
      throw this.failure;
    }
    if (chunk === null) {
      this.eof = true;
      if (this.contentLength !== undefined && this.remaining > 0) {
        this.failure = new TsgiError(
          'ERR_CORE_INPUT_TRUNCATED',
          `core: request body ended after ${this.received} of ${this.contentLength} bytes (CONTENT_LENGTH); the client or server went away`,
          { status: 400 },
        );
        throw this.failure;
      }
      return;
    }
    if (chunk.length === 0) return;
    let b = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (b.length >= this.remaining) {
      // Never read past CONTENT_LENGTH; whatever follows is not this request's body.
      b = b.subarray(0, this.remaining);
      this.eof = true;
    }
    this.remaining -= b.length;
    this.received += b.length;
    if (this.chunks === NO_CHUNKS) this.chunks = [];
    this.chunks.push(b);
    this.buffered += b.length;
  }

  /** Removes and returns the first n buffered bytes (n <= buffered). */
  private take(n: number): Buffer {
    if (n === 0) return EMPTY;
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    while (o < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - o);
      c.copy(out, o, 0, k);
      o += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}

/** createInput: a `tsgi.input` over a ByteSource bounded by CONTENT_LENGTH. */
export function createInput(source: ByteSource | null, contentLength: number | undefined): Input {
  return new Input(source, contentLength);
}

/**
 * sourceFromIterable: a ByteSource over a sync or async iterable of byte chunks (used by
 * the in-memory transport, tests and the CGI adapter's stdin).
 */
export function sourceFromIterable(
  chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
): ByteSource {
  const it =
    Symbol.asyncIterator in chunks
      ? (chunks as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]()
      : (chunks as Iterable<Uint8Array>)[Symbol.iterator]();
  return {
    async pull() {
      const r = await it.next();
      return r.done ? null : r.value;
    },
  };
}

/**
 * drainInput: `environ['tsgi.input'].drain(maxBytes)` for adapters (see Input.drain). A
 * wrapper that forwards `drain` (the validator's) works too; anything else resolves false.
 */
export function drainInput(input: unknown, maxBytes: number): Promise<boolean> {
  if (input instanceof Input) return input.drain(maxBytes);
  const drain = (input as { drain?: unknown } | null | undefined)?.drain;
  return typeof drain === 'function'
    ? Promise.resolve(drain.call(input, maxBytes)).then((ok) => ok === true)
    : Promise.resolve(false);
}
