import type { Readable } from 'node:stream';

/** HeaderList: response or request headers as `[name, value]` pairs, in order, repeats allowed. */
export type HeaderList = Array<[string, string]>;

/** Chunk: one piece of a response body. Strings are ISO-8859-1 encoded (SPEC rule 4.4). */
export type Chunk = Uint8Array | string;

/** FileWrapperLike: what `tsgi.file_wrapper` returns; see `FileWrapper`. */
export interface FileWrapperLike extends AsyncIterable<Uint8Array> {
  readonly tsgiFileWrapper: true;
  /** Closes the file if the wrapper opened it. Idempotent. */
  close(): Promise<void>;
}

/**
 * Body: what an application returns. Sync or async iterables of chunks (arrays and
 * generators included), a WHATWG ReadableStream, a Node Readable, or a file wrapper.
 * A body may carry a `close()` method (WSGI style); it is called exactly once.
 */
export type Body =
  | Iterable<Chunk>
  | AsyncIterable<Chunk>
  | ReadableStream<Chunk>
  | Readable
  | FileWrapperLike;

/** ExcInfo: the error an application passes to a second `startResponse` call. */
export type ExcInfo = unknown;

/** WriteFn: the legacy imperative `write(chunk)` returned by `startResponse`. */
export type WriteFn = (chunk: Chunk) => Promise<void>;

/** StartResponse: `startResponse(status, headers, excInfo?)` as in PEP 3333. */
export type StartResponse = (status: string, headers: HeaderList, excInfo?: ExcInfo) => WriteFn;

/**
 * ResponseObject: the WSGI 2.0 return style (roadmap seed): a plain object with a
 * `status`, returned without calling `startResponse`. SPEC rule 3.2 says how it is
 * told apart from a body.
 */
export interface ResponseObject {
  status: string | number;
  headers?: HeaderList;
  body?: Body | Chunk | null;
}

/** AppResult: anything an application may return or resolve to. */
export type AppResult = Body | ResponseObject;

/** Environ: the per-request dictionary: CGI variables as strings plus `tsgi.*` keys. */
export interface Environ {
  [key: string]: unknown;
  REQUEST_METHOD: string;
  SCRIPT_NAME: string;
  PATH_INFO: string;
  QUERY_STRING: string;
  REQUEST_URI: string;
  RAW_URI: string;
  SERVER_NAME: string;
  SERVER_PORT: string;
  SERVER_PROTOCOL: string;
  'tsgi.version': readonly [1, 1];
  'tsgi.url_scheme': 'http' | 'https';
  'tsgi.input': InputStream;
  'tsgi.errors': ErrorStream;
  'tsgi.multithread': boolean;
  'tsgi.multiprocess': boolean;
  'tsgi.run_once': boolean;
  'tsgi.input_terminated': true;
  /** The encoding SCRIPT_NAME, PATH_INFO and QUERY_STRING were decoded with (`utf-8`, `iso-8859-1`, ...). */
  'tsgi.uri_encoding': string;
  'tsgi.file_wrapper': FileWrapperFactory;
  'tsgi.signal': AbortSignal;
}

/** Application: `(environ, startResponse) => body | response object`, or a Promise of one. */
export type Application = (
  environ: Environ,
  startResponse: StartResponse,
) => AppResult | Promise<AppResult>;

/** InputStream: `tsgi.input`. Every read resolves to a Uint8Array; an empty one means end of input. */
export interface InputStream extends AsyncIterable<Uint8Array> {
  /** read(size?): exactly `size` bytes, fewer only at the end; no size: all that remains. */
  read(size?: number): Promise<Uint8Array>;
  /** readline(size?): up to and including the next LF, at most `size` bytes. */
  readline(size?: number): Promise<Uint8Array>;
  /** readlines(hint?): lines until their total length reaches `hint`, or all lines. */
  readlines(hint?: number): Promise<Uint8Array[]>;
}

/** ErrorStream: `tsgi.errors`; text goes to the front server's error log. */
export interface ErrorStream {
  write(text: string): void;
  flush(): void;
}

/** FileWrapperOptions: byte range of a file wrapper; `length` caps what is read. */
export interface FileWrapperOptions {
  offset?: number;
  length?: number;
  chunkSize?: number;
}

/** FileWrapperFactory: `tsgi.file_wrapper(pathOrHandle, options?)`. */
export type FileWrapperFactory = (
  file: string | import('node:fs/promises').FileHandle,
  options?: FileWrapperOptions,
) => FileWrapperLike;

/**
 * ByteSource: how an adapter hands request body bytes to the core. `pull()` resolves
 * to the next chunk, or `null` at the end of the transport's stream. The core never
 * pulls past CONTENT_LENGTH, so an adapter that pauses its socket until `pull()` is
 * called gets backpressure for free.
 */
export interface ByteSource {
  pull(): Promise<Uint8Array | null>;
}

/** LogLevel: severity for `ErrorSink`. Client disconnects are logged at `debug` (change log seed). */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** ErrorSink: where an adapter routes `tsgi.errors` and the core's own reports. */
export type ErrorSink = (text: string, level: LogLevel) => void;

/** ResponseHead: the committed status and headers handed to a transport. */
export interface ResponseHead {
  /** Status line without the protocol, e.g. `200 OK`. */
  status: string;
  /** Numeric status code parsed from `status`. */
  code: number;
  headers: HeaderList;
  /** Content-Length from the headers, or undefined when the app gave none. */
  contentLength: number | undefined;
}

/**
 * Transport: the small interface every adapter implements (wsgiref's BaseHandler
 * hooks, as a plain object). `runApp` calls them in this order: `sendHead` once,
 * `write` zero or more times, then exactly one of `end` or `abort`.
 */
export interface Transport {
  /** sendHead: commit status and headers. */
  sendHead(head: ResponseHead): void | Promise<void>;
  /** write: one non-empty body chunk; a returned Promise is awaited (backpressure). */
  write(chunk: Uint8Array): void | Promise<void>;
  /** end: the response is complete and well formed. */
  end(): void | Promise<void>;
  /**
   * abort: the response is broken (app error after headers, Content-Length not met or
   * exceeded, client gone). The transport must not pass it off as complete and must
   * not reuse the connection.
   */
  abort(reason: Error): void | Promise<void>;
}
