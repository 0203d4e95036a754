import { Buffer } from 'node:buffer';
import { read, writeSync } from 'node:fs';
import { type ByteSource, TsgiError } from '@tsgi/core';

/** CgiWritable: the part of a Node Writable (process.stdout, a socket, a file stream) the adapter uses. */
export interface CgiWritable {
  write(chunk: Uint8Array, callback: (err?: Error | null) => void): boolean;
  once(event: string, listener: (...args: any[]) => void): unknown;
  on(event: string, listener: (...args: any[]) => void): unknown;
  removeListener(event: string, listener: (...args: any[]) => void): unknown;
}

/** CgiReadable: the part of a Node Readable (process.stdin, a pipe, a file stream) the adapter uses. */
export interface CgiReadable extends AsyncIterable<Uint8Array | string> {
  destroy?(error?: Error): unknown;
}

/**
 * FdTarget: a file descriptor used directly (`fs.writeSync` / `fs.read`), with the Node
 * stream for the same descriptor as the fallback once the descriptor turns out to be
 * non-blocking (EAGAIN). Creating `process.stdout` or `process.stdin` for a pipe loads
 * `net` and the stream machinery, a few milliseconds a CGI script pays on every request;
 * the descriptor needs none of it.
 */
export interface FdTarget<S> {
  fd: number;
  stream: () => S;
}

const isFdTarget = <S>(t: FdTarget<S> | S): t is FdTarget<S> =>
  typeof (t as FdTarget<S>).fd === 'number' && typeof (t as FdTarget<S>).stream === 'function';

const errCode = (e: unknown): string | undefined => (e as { code?: string } | null)?.code;

/**
 * Output: stdout with backpressure and an end-to-end flush.
 *
 * On a descriptor, writes are synchronous `write(2)` calls: a blocking pipe (mod_cgi,
 * lighttpd and fcgiwrap give the script one) blocks until the server reads, which is
 * backpressure, and nothing is left queued at exit. EAGAIN means the descriptor is
 * non-blocking (a Node stream was opened on it, or the server set O_NONBLOCK; mod_cgid
 * hands the script one socket as both stdin and stdout): from then on the Node stream
 * carries the rest, in order. On a stream, `write` resolves at once below the high-water
 * mark and waits for `drain` above it; `flush` resolves when every byte was handed to the
 * kernel, so the process may exit without losing the tail of the response.
 */
export class Output {
  private fd: number | undefined;
  private stream: CgiWritable | undefined;
  private readonly openStream: (() => CgiWritable) | undefined;
  private pending = 0;
  private idle: Array<() => void> = [];
  /** Output.failure: the first write error (EPIPE when the server closed the pipe). */
  failure: Error | undefined;
  /** Output.bytes: bytes accepted by write() so far. */
  bytes = 0;

  constructor(
    target: CgiWritable | FdTarget<CgiWritable>,
    private readonly onFailure: (err: Error) => void,
  ) {
    if (isFdTarget(target)) {
      this.fd = target.fd;
      this.openStream = target.stream;
    } else {
      this.useStream(target);
    }
  }

  private useStream(stream: CgiWritable): void {
    this.fd = undefined;
    this.stream = stream;
    // Without a listener an EPIPE would be an uncaught exception.
    stream.on('error', (err: Error) => this.fail(err));
  }

  private fail(err: Error): void {
    if (this.failure !== undefined) return;
    this.failure = new TsgiError(
      'ERR_CGI_STDOUT',
      `cgi: writing the response to stdout failed: ${err.message}`,
      { cause: err },
    );
    this.onFailure(this.failure);
    this.wake();
  }

  private wake(): void {
    const w = this.idle;
    this.idle = [];
    for (const f of w) f();
  }

  /** Output.write: queues `chunk`; a returned Promise means "wait before writing more". */
  write(chunk: Uint8Array): Promise<void> | undefined {
    if (this.failure) return Promise.reject(this.failure);
    this.bytes += chunk.length;
    if (this.fd !== undefined) {
      let off = 0;
      while (off < chunk.length) {
        try {
          off += writeSync(this.fd, chunk, off, chunk.length - off);
        } catch (e) {
          const code = errCode(e);
          if (code === 'EINTR') continue;
          if (code === 'EAGAIN' && this.openStream !== undefined) {
            this.useStream(this.openStream());
            return this.writeStream(chunk.subarray(off));
          }
          this.fail(e instanceof Error ? e : new Error(String(e)));
          return Promise.reject(this.failure);
        }
      }
      return undefined;
    }
    return this.writeStream(chunk);
  }

  private writeStream(chunk: Uint8Array): Promise<void> | undefined {
    const stream = this.stream!;
    this.pending++;
    let ok: boolean;
    try {
      ok = stream.write(chunk, (err) => {
        this.pending--;
        if (err) this.fail(err);
        if (this.pending === 0) this.wake();
      });
    } catch (e) {
      this.pending--;
      this.fail(e instanceof Error ? e : new Error(String(e)));
      return Promise.reject(this.failure);
    }
    // Below the high-water mark: no promise at all, so a small response costs no extra ticks.
    if (ok) return undefined;
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        stream.removeListener('drain', done);
        stream.removeListener('close', done);
        const i = this.idle.indexOf(done);
        if (i >= 0) this.idle.splice(i, 1);
        if (this.failure) reject(this.failure);
        else resolve();
      };
      stream.once('drain', done);
      stream.once('close', done);
      // A failure (or everything flushed) wakes the idle waiters: never hang on drain.
      this.idle.push(done);
    });
  }

  /** Output.flush: resolves once every byte was handed to the kernel; rejects if a write failed. */
  flush(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.idle.push(() => {
        if (this.failure) reject(this.failure);
        else if (this.pending === 0) resolve();
        else this.flush().then(resolve, reject);
      });
    });
  }
}

const CHUNK = 64 * 1024;

/**
 * Stdin: a ByteSource over stdin that touches nothing until the first `pull()`: most
 * requests (GET, CONTENT_LENGTH 0) never read a body. On a descriptor it reads with
 * `fs.read` (libuv's thread pool; a blocking pipe, socket or the temporary file lighttpd
 * may pass) and switches to the Node stream on EAGAIN, as Output does. Bytes are passed
 * on as they come, never dechunked (RFC 3875 section 4.2: the server removed any transfer
 * coding; HTTP_TRANSFER_ENCODING is only the client's header). The core's Input stops
 * pulling at CONTENT_LENGTH, so bytes after it are never read.
 */
export class Stdin implements ByteSource {
  private fd: number | undefined;
  private readonly openStream: () => CgiReadable;
  private stream: CgiReadable | undefined;
  private it: AsyncIterator<Uint8Array | string> | undefined;
  /** Stdin.opened: whether stdin was read at all. */
  opened = false;

  constructor(target: CgiReadable | FdTarget<CgiReadable> | (() => CgiReadable)) {
    if (typeof target === 'function') {
      this.openStream = target;
    } else if (isFdTarget(target)) {
      this.fd = target.fd;
      this.openStream = target.stream;
    } else {
      this.openStream = () => target;
    }
  }

  async pull(): Promise<Uint8Array | null> {
    this.opened = true;
    try {
      if (this.fd !== undefined) {
        const r = await this.readFd(this.fd);
        if (r !== 'again') return r;
        this.fd = undefined;
      }
      if (this.it === undefined) {
        this.stream = this.openStream();
        this.it = this.stream[Symbol.asyncIterator]();
      }
      const r = await this.it.next();
      if (r.done) return null;
      const v = r.value;
      return typeof v === 'string' ? Buffer.from(v, 'latin1') : v;
    } catch (e) {
      throw new TsgiError(
        'ERR_CGI_STDIN',
        `cgi: reading the request body from stdin failed: ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
    }
  }

  private readFd(fd: number): Promise<Uint8Array | null | 'again'> {
    return new Promise((resolve, reject) => {
      const buf = Buffer.allocUnsafe(CHUNK);
      const attempt = () =>
        read(fd, buf, 0, CHUNK, null, (err, n) => {
          if (err) {
            const code = errCode(err);
            if (code === 'EINTR') return attempt();
            if (code === 'EAGAIN') return resolve('again');
            return reject(err);
          }
          resolve(n === 0 ? null : buf.subarray(0, n));
        });
      attempt();
    });
  }

  /**
   * Stdin.close: stops reading (after the response). A Node stream left open would keep
   * the event loop alive until the server closed it.
   */
  close(): void {
    this.stream?.destroy?.();
  }
}
