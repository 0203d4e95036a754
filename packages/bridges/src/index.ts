// @tsgi/bridges: existing apps on tsgi. Fetch handlers (Hono) and Node (req, res)
// listeners (Express, Koa, Connect) become tsgi Applications; a tsgi Application becomes
// a Fetch handler. Explicit named exports only; files not re-exported here are private.
export {
  type BridgeOptions,
  detectInterface,
  INTERFACES,
  type InterfaceName,
  toApplication,
} from './detect.js';
export {
  type FetchApp,
  type FetchBridgeOptions,
  type FetchContext,
  type FetchHandler,
  type FetchResponder,
  fromFetch,
  type RemoteAddress,
  type ToFetchOptions,
  toFetch,
} from './fetch.js';
export { fromNodeListener, type NodeBridgeOptions, type NodeListener } from './node.js';
export { type RequestPath, type RequestUrlOptions, requestPath, requestUrl } from './util.js';
