// @tsgi/http: a tsgi app served over HTTP/1.1 on node:http. Explicit named exports only.
export { createHttpHandler, type HttpHandler, type HttpHandlerOptions } from './handler.js';
export { type HttpServer, type ServeHttpOptions, serveHttp } from './serve.js';
