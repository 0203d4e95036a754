// `tsgi http`: the app as an HTTP/1.1 server (@tsgi/http), no other web server needed.
import { isTsgiError, TsgiError } from '@tsgi/core';
import type { Command, CommandOptions } from '../command.js';
import { parseListen, parseSeconds, parseSize } from '../values.js';

const ms = (name: string, o: CommandOptions) =>
  Math.round(parseSeconds(`--${name}`, o[name] as string) * 1000);

/** httpCommand: `tsgi http [--listen HOST:PORT] [options] MODULE[:EXPORT]`. */
export const httpCommand: Command = {
  name: 'http',
  summary: 'serve the app over HTTP/1.1 (keep-alive, pipelining, chunked bodies)',
  usage: '[--listen HOST:PORT] [options] MODULE[:EXPORT]',
  options: {
    listen: {
      type: 'string',
      short: 'l',
      arg: 'HOST:PORT',
      help: 'where to listen: HOST:PORT, :PORT, PORT, [::1]:PORT or unix:/path/to.sock',
      default: '127.0.0.1:8000',
    },
    'max-header-size': {
      type: 'string',
      arg: 'SIZE',
      help: 'largest request head (request line and headers); larger gets 431',
      default: '16k',
    },
    'request-timeout': {
      type: 'string',
      arg: 'SECONDS',
      help: 'time for the whole request, head and body (uploads too); later gets 408; 0: none',
      default: '300',
    },
    'headers-timeout': {
      type: 'string',
      arg: 'SECONDS',
      help: 'time for the request head; later gets 408 (slow-header clients); 0: none',
      default: '20',
    },
    'keep-alive-timeout': {
      type: 'string',
      arg: 'SECONDS',
      help: 'how long an idle keep-alive connection stays open',
      default: '5',
    },
    'idle-timeout': {
      type: 'string',
      arg: 'SECONDS',
      help: 'close a connection with no traffic either way for this long (a client that stops reading); 0: never',
      default: '60',
    },
  },
  check(o) {
    parseListen('--listen', o.listen as string);
    parseSize('--max-header-size', o['max-header-size'] as string);
    for (const n of ['request-timeout', 'headers-timeout', 'keep-alive-timeout', 'idle-timeout']) {
      ms(n, o);
    }
  },
  async serve(app, shared, o) {
    const { serveHttp } = await import('@tsgi/http');
    const listen = parseListen('--listen', o.listen as string);
    const s = await serveHttp(app, {
      ...listen,
      mount: shared.mount ?? '',
      uriEncoding: shared.uriEncoding,
      mapHeadToGet: shared.mapHeadToGet,
      maxBodyBytes: shared.maxBodyBytes,
      multiprocess: shared.multiprocess,
      log: shared.log,
      maxHeaderSize: parseSize('--max-header-size', o['max-header-size'] as string),
      requestTimeout: ms('request-timeout', o),
      headersTimeout: ms('headers-timeout', o),
      keepAliveTimeout: ms('keep-alive-timeout', o),
      idleTimeout: ms('idle-timeout', o),
    }).catch((e: unknown) => {
      if (!isTsgiError(e, 'ERR_HTTP_LISTEN')) throw e;
      throw new TsgiError(
        'ERR_CLI_LISTEN',
        `cli: ${e.message.replace(/^http: /, '')}; stop what uses it or choose another address with --listen HOST:PORT`,
        { cause: e },
      );
    });
    return { address: s.url, close: (graceful) => s.close(graceful) };
  },
};
