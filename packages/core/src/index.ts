// @tsgi/core: the transport-independent core. Explicit named exports only; files not
// re-exported here are private.
export { type CompressOptions, compress } from './compress.js';
export {
  buildEnviron,
  type CgiParams,
  CgiVars,
  type EnvironOptions,
  type EnvironSettings,
  RequestEnvironOptions,
} from './environ.js';
export { isTsgiError, TsgiError } from './errors.js';
export { createErrorStream, createLogSink, sinkOf } from './errorstream.js';
export { FileWrapper, fileWrapper } from './filewrapper.js';
export { describeChar, getHeader, HOP_BY_HOP, validateResponseHead } from './headers.js';
export { createInput, drainInput, Input, sourceFromIterable } from './input.js';
export {
  isDigits,
  isLatin1,
  KNOWN_CGI_NAMES,
  knownCgiIndex,
  knownCgiName,
  latin1Decode,
  latin1Encode,
  percentDecodeBytes,
  percentEncodePath,
} from './latin1.js';
export {
  isStaleSocket,
  type ListenServerOptions,
  listenServer,
  type SocketListen,
} from './listen.js';
export {
  type HttpHeadersResult,
  httpHeadersToCgi,
  type RequestLine,
  requestToCgi,
} from './request.js';
export {
  declareNeedsBody,
  fixedResponse,
  isResponseObject,
  NEEDS_BODY_ON_HEAD,
  needsBody,
  type RunListener,
  type RunOptions,
  type RunResult,
  runApp,
  runAppThen,
} from './run.js';
export { isLocalRedirect, serializeCgiHead, serializeCgiResponse } from './serialize.js';
export { RequestSignal } from './signal.js';
export { STATUS_REASONS, statusLine } from './status.js';
export type {
  Application,
  AppResult,
  Body,
  ByteSource,
  Chunk,
  Environ,
  ErrorSink,
  ErrorStream,
  ExcInfo,
  FileWrapperFactory,
  FileWrapperLike,
  FileWrapperOptions,
  HeaderList,
  InputStream,
  LogLevel,
  ResponseHead,
  ResponseObject,
  StartResponse,
  Transport,
  WriteFn,
} from './types.js';
export { checkEnviron, ValidationError, validator } from './validator.js';
