// @tsgi/cgi/httpoxy: deleteProxyEnv on its own, without the side effect of importing
// '@tsgi/cgi', for a program (the `tsgi` command) that only learns from its command line
// that it is a CGI script, and must remove HTTP_PROXY before it loads the application.
export { deleteProxyEnv } from './proxyenv.js';
