// @tsgi/cgi: run a tsgi application as a CGI script (RFC 3875). Explicit named exports
// only; files not re-exported here are private.
import { deleteProxyEnv } from './proxyenv.js';

// httpoxy: importing the adapter removes HTTP_PROXY from process.env, so a script that
// imports '@tsgi/cgi' above its application module is protected before the app loads
// (ES modules are evaluated in import order). Listed in package.json "sideEffects".
deleteProxyEnv();

export { parseEnvironBlock, type RawEnvironment, readCgiEnvironment } from './environment.js';
export { type AppSpec, cgiMain, loadApp, parseAppSpec, runCgiModule } from './module.js';
export { deleteProxyEnv } from './proxyenv.js';
export {
  type CgiOptions,
  EXIT_ABORTED,
  EXIT_COMPLETE,
  EXIT_NO_APP,
  flushStderr,
  runCgi,
} from './run.js';
export type { CgiReadable, CgiWritable } from './stdio.js';
