// @tsgi/scgi: an SCGI server for tsgi applications (Neil Schemenauer's SCGI protocol,
// behind lighttpd mod_scgi, nginx scgi_pass or Apache mod_proxy_scgi). Explicit named
// exports only; files not re-exported here are private.
export {
  DEFAULT_MAX_HEADER_BYTES,
  decodeHeaders,
  decodeHeadersInto,
  MAX_CONTENT_LENGTH_DIGITS,
  MAX_HEADER_BYTES_LIMIT,
  type NetstringFrame,
  NetstringFramer,
  type NetstringFramerOptions,
  type ScgiHeaders,
  type ScgiHeaderTarget,
} from './codec.js';
export {
  handleScgiConnection,
  ScgiConnection,
  type ScgiConnectionOptions,
  type ScgiConnectionPhase,
} from './connection.js';
export {
  type ScgiCloseOptions,
  type ScgiListen,
  type ScgiServer,
  type ScgiServerOptions,
  serveScgi,
} from './server.js';
