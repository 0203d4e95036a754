// `tsgi cgi`: answer the one request of this process as a CGI script (@tsgi/cgi): the
// request from the environment and stdin, the response on stdout, then exit. A CGI server
// starts a process per request, so this command loads nothing it does not use: no
// node:net, node:http or node:cluster, and @tsgi/cgi only once the app is loaded.
import { TsgiError } from '@tsgi/core';
import type { Command } from '../command.js';

/** The response when no app could be loaded: what `runCgiModule` of @tsgi/cgi sends too. */
async function answer500(): Promise<void> {
  const { fixedResponse, serializeCgiHead } = await import('@tsgi/core');
  const { writeSync } = await import('node:fs');
  const { head, body } = fixedResponse(500);
  const bytes = Buffer.concat([serializeCgiHead(head), body]);
  try {
    for (let off = 0; off < bytes.length; ) off += writeSync(1, bytes, off);
  } catch {
    // stdout closed: the server gave up already.
  }
}

/** cgiCommand: `tsgi cgi [options] MODULE[:EXPORT]`. */
export const cgiCommand: Command = {
  name: 'cgi',
  summary:
    'answer one request as a CGI script (Apache mod_cgi(d), lighttpd mod_cgi, nginx + fcgiwrap)',
  usage: '[options] MODULE[:EXPORT]',
  options: {},
  workers: false,
  async beforeLoad() {
    // httpoxy: HTTP_PROXY (a request's Proxy: header) out of process.env before the app's
    // code runs; the environ still has it, read from the raw environment block.
    const { deleteProxyEnv } = await import('@tsgi/cgi/httpoxy');
    deleteProxyEnv();
  },
  failed: answer500,
  async serve(app, shared) {
    const { runCgi } = await import('@tsgi/cgi');
    const done = runCgi(app, {
      mount: shared.mount,
      uriEncoding: shared.uriEncoding,
      maxBodyBytes: shared.maxBodyBytes,
      mapHeadToGet: shared.mapHeadToGet,
      errors: shared.log,
    }).then((code) => {
      if (code !== 0) {
        throw new TsgiError(
          'ERR_CLI_CGI_ABORTED',
          `cli: the CGI response was cut short (exit code ${code}); the reason is logged above`,
        );
      }
    });
    return { address: 'CGI (stdin/stdout)', close: async () => undefined, done };
  },
};
