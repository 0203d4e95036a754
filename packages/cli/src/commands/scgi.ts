// `tsgi scgi`: the app as an SCGI server (@tsgi/scgi), behind lighttpd mod_scgi, nginx
// scgi_pass or Apache mod_proxy_scgi: on TCP, a Unix socket, or an inherited fd 0.
import { TsgiError } from '@tsgi/core';
import type { Command, CommandOptions } from '../command.js';
import { planSocket, removeStaleSocket, serveOnSocket, socketOptions } from '../listen.js';
import { parseChoice, parseCount, parseSeconds, parseSize } from '../values.js';

const DEFAULT_LISTEN = '127.0.0.1:4000';
/** The adapter's bounds for maxHeaderBytes (@tsgi/scgi: 24 bytes, MAX_HEADER_BYTES_LIMIT). */
const MAX_HEADER_LIMIT = 16 * 1024 * 1024;

const ms = (name: string, o: CommandOptions) =>
  Math.round(parseSeconds(`--${name}`, o[name] as string) * 1000);

function adapterOptions(o: CommandOptions) {
  const maxHeaderBytes = parseSize('--max-header-size', o['max-header-size'] as string);
  if (maxHeaderBytes < 24 || maxHeaderBytes > MAX_HEADER_LIMIT) {
    throw new TsgiError(
      'ERR_CLI_BAD_OPTION',
      `cli: --max-header-size ${JSON.stringify(o['max-header-size'])} is out of range; give a size from 24 bytes to 16m`,
    );
  }
  const maxConnections = parseCount('--max-connections', o['max-connections'] as string);
  return {
    maxHeaderBytes,
    headerTimeoutMs: ms('header-timeout', o),
    idleTimeoutMs: ms('idle-timeout', o),
    maxConnections: maxConnections === 0 ? undefined : maxConnections,
    errorResponses:
      parseChoice('--error-responses', o['error-responses'] as string, ['on', 'off']) === 'on',
  };
}

/** scgiCommand: `tsgi scgi [--listen HOST:PORT|unix:/path|fd:N] [options] MODULE[:EXPORT]`. */
export const scgiCommand: Command = {
  name: 'scgi',
  summary: 'serve the app as an SCGI server (behind lighttpd, nginx, Apache)',
  usage: '[--listen HOST:PORT|unix:/path|fd:N] [options] MODULE[:EXPORT]',
  options: {
    ...socketOptions(DEFAULT_LISTEN),
    'max-header-size': {
      type: 'string',
      arg: 'SIZE',
      help: "largest netstring header block (the request's CGI variables and headers), checked before it is read",
      default: '64k',
    },
    'header-timeout': {
      type: 'string',
      arg: 'SECONDS',
      help: 'time from the connection to the end of its header block (slow senders); 0: none',
      default: '30',
    },
    'idle-timeout': {
      type: 'string',
      arg: 'SECONDS',
      help: "close a connection with no traffic either way for this long (the request's tsgi.signal fires); 0: never (the web server has its own)",
      default: '0',
    },
    'max-connections': {
      type: 'string',
      arg: 'N',
      help: 'connections open at once, per process; more are refused; 0: no limit',
      default: '0',
    },
    'error-responses': {
      type: 'string',
      arg: 'on|off',
      help: 'answer a malformed request with a short 400/408/413/431 before closing; off: just close (the web server says 502)',
      default: 'on',
    },
  },
  check(o, shared) {
    planSocket(o, shared, 'scgi', DEFAULT_LISTEN);
    adapterOptions(o);
  },
  beforeWorkers: (shared, o) => removeStaleSocket(planSocket(o, shared, 'scgi', DEFAULT_LISTEN)),
  async serve(app, shared, o) {
    const { serveScgi } = await import('@tsgi/scgi');
    return serveOnSocket('scgi', 'scgi', DEFAULT_LISTEN, shared, o, (listen, core) =>
      serveScgi(app, { ...adapterOptions(o), ...core, listen }),
    );
  },
};
