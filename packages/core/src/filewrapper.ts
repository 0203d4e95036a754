import { Buffer } from 'node:buffer';
import type { FileHandle } from 'node:fs/promises';
import type { FileWrapperLike, FileWrapperOptions } from './types.js';

/**
 * FileWrapper: `tsgi.file_wrapper`'s product. Reads a file (a path it opens, or a
 * FileHandle it does not own) from `offset` for at most `length` bytes, in chunks. The
 * gateway additionally caps it at the response's Content-Length (seed amendment 14:
 * a file wrapper must never send more than Content-Length, so byte ranges work).
 */
export class FileWrapper implements FileWrapperLike {
  readonly tsgiFileWrapper = true as const;
  private handle: FileHandle | undefined;
  private readonly owns: boolean;
  private position: number;
  private remaining: number;
  private readonly chunkSize: number;
  private closed = false;

  constructor(
    private readonly file: string | FileHandle,
    options: FileWrapperOptions = {},
  ) {
    this.owns = typeof file === 'string';
    if (typeof file !== 'string') this.handle = file;
    this.position = options.offset ?? 0;
    this.remaining = options.length ?? Number.POSITIVE_INFINITY;
    this.chunkSize = options.chunkSize ?? 65536;
  }

  /** FileWrapper.limit: lower the number of bytes still to send (Content-Length cap). */
  limit(maxBytes: number): void {
    if (maxBytes < this.remaining) this.remaining = maxBytes;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    // node:fs/promises is loaded on first use (a CGI script pays for every import).
    if (this.handle === undefined) {
      const { open } = await import('node:fs/promises');
      this.handle = await open(this.file as string, 'r');
    }
    while (this.remaining > 0 && !this.closed) {
      const size = Math.min(this.chunkSize, this.remaining);
      const buf = Buffer.allocUnsafe(size);
      const { bytesRead } = await this.handle.read(buf, 0, size, this.position);
      if (bytesRead === 0) return;
      this.position += bytesRead;
      this.remaining -= bytesRead;
      yield buf.subarray(0, bytesRead);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.owns && this.handle !== undefined) await this.handle.close();
  }
}

/** fileWrapper: the function placed in `environ['tsgi.file_wrapper']`. */
export function fileWrapper(file: string | FileHandle, options?: FileWrapperOptions): FileWrapper {
  return new FileWrapper(file, options);
}
