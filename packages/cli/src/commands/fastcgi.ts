// `tsgi fastcgi`: the app as a FastCGI responder (@tsgi/fastcgi) behind nginx, Apache or
// lighttpd: on TCP, a Unix socket, or the listening socket a supervisor leaves on fd 0.
import { TsgiError } from '@tsgi/core';
import type { Command, CommandOptions } from '../command.js';
import { listenSocket, planSocket, socketOptions } from '../listen.js';
import { parseChoice, parseCount, parseSeconds, parseSize } from '../values.js';

const DEFAULT_LISTEN = '127.0.0.1:9000';

const ms = (name: string, o: CommandOptions) =>
  Math.round(parseSeconds(`--${name}`, o[name] as string) * 1000);

/** The adapter's options from the command's (the listening ones apart). */
function adapterOptions(o: CommandOptions) {
  const addrs = o['web-server-addrs'] as string | undefined;
  return {
    multiplex: parseChoice('--multiplex', o.multiplex as string, ['on', 'off']) === 'on',
    maxConnections: parseCount('--max-connections', o['max-connections'] as string, 1),
    maxRequests: parseCount('--max-concurrent', o['max-concurrent'] as string, 1),
    inputBufferBytes: parseSize('--input-buffer', o['input-buffer'] as string),
    maxParamsBytes: parseSize('--max-params-size', o['max-params-size'] as string),
    maxParams: parseCount('--max-params', o['max-params'] as string, 1),
    paramsTimeoutMs: ms('params-timeout', o),
    requestTimeoutMs: ms('request-timeout', o),
    idleTimeoutMs: ms('idle-timeout', o),
    // undefined: the adapter reads FCGI_WEB_SERVER_ADDRS; `any`: no check at all.
    webServerAddrs: addrs === undefined ? undefined : addrs === 'any' ? null : addrs,
    errorsToStderr:
      parseChoice('--errors-to', o['errors-to'] as string, ['web-server', 'stderr']) ===
      'web-server',
  };
}

/** IPv4 or IPv6 text (what FCGI_WEB_SERVER_ADDRS lists), checked without node:net. */
const IP = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$/;

/** fastcgiCommand: `tsgi fastcgi [--listen HOST:PORT|unix:/path|fd:N] [options] MODULE[:EXPORT]`. */
export const fastcgiCommand: Command = {
  name: 'fastcgi',
  summary: 'serve the app as a FastCGI responder (behind nginx, Apache, lighttpd)',
  usage: '[--listen HOST:PORT|unix:/path|fd:N] [options] MODULE[:EXPORT]',
  options: {
    ...socketOptions(DEFAULT_LISTEN),
    multiplex: {
      type: 'string',
      arg: 'on|off',
      help: 'take concurrent requests on one connection (FCGI_MPXS_CONNS); off: a second one gets FCGI_CANT_MPX_CONN',
      default: 'on',
    },
    'max-connections': {
      type: 'string',
      arg: 'N',
      help: 'connections open at once, per process (FCGI_MAX_CONNS); more are refused',
      default: '1024',
    },
    'max-concurrent': {
      type: 'string',
      arg: 'N',
      help: 'requests running at once, per process (FCGI_MAX_REQS); more get FCGI_OVERLOADED',
      default: '1024',
    },
    'input-buffer': {
      type: 'string',
      arg: 'SIZE',
      help: 'unread request body a multiplexed request may hold before its connection stops reading',
      default: '256k',
    },
    'max-params-size': {
      type: 'string',
      arg: 'SIZE',
      help: "largest FCGI_PARAMS stream (the request's CGI variables and headers)",
      default: '64k',
    },
    'max-params': {
      type: 'string',
      arg: 'N',
      help: 'most name-value pairs in FCGI_PARAMS',
      default: '1000',
    },
    'params-timeout': {
      type: 'string',
      arg: 'SECONDS',
      help: 'time for FCGI_PARAMS after FCGI_BEGIN_REQUEST; later gets 408; 0: none',
      default: '30',
    },
    'request-timeout': {
      type: 'string',
      arg: 'SECONDS',
      help: "time from FCGI_BEGIN_REQUEST to FCGI_END_REQUEST; later the request's tsgi.signal fires and its connection closes; 0: none (the web server has its own)",
      default: '0',
    },
    'idle-timeout': {
      type: 'string',
      arg: 'SECONDS',
      help: 'close a connection with no request and no traffic for this long; 0: never (nginx closes its idle keepalive connections itself)',
      default: '0',
    },
    'web-server-addrs': {
      type: 'string',
      arg: 'ADDRS',
      help: 'comma-separated IP addresses allowed to connect over TCP (default: FCGI_WEB_SERVER_ADDRS from the environment; unset or any: every peer)',
    },
    'errors-to': {
      type: 'string',
      arg: 'web-server|stderr',
      help: "where tsgi.errors goes: FCGI_STDERR records (nginx's error log) or this process's stderr",
      default: 'web-server',
    },
  },
  check(o, shared) {
    planSocket(o, shared, 'fastcgi', DEFAULT_LISTEN);
    const addrs = o['web-server-addrs'] as string | undefined;
    if (addrs !== undefined && addrs !== 'any') {
      for (const a of addrs.split(',').map((x) => x.trim())) {
        if (a !== '' && !IP.test(a)) {
          throw new TsgiError(
            'ERR_CLI_BAD_OPTION',
            `cli: --web-server-addrs ${JSON.stringify(addrs)}: ${JSON.stringify(a)} is not an IP address; give a comma-separated list of IP addresses, or any`,
          );
        }
      }
    }
    adapterOptions(o);
  },
  async serve(app, shared, o) {
    const { createFastcgiServer } = await import('@tsgi/fastcgi');
    const plan = planSocket(o, shared, 'fastcgi', DEFAULT_LISTEN);
    const settings = {
      ...adapterOptions(o),
      mount: shared.mount,
      uriEncoding: shared.uriEncoding,
      maxBodyBytes: shared.maxBodyBytes,
      mapHeadToGet: shared.mapHeadToGet,
      multiprocess: shared.multiprocess,
      errors: shared.log,
      backlog: plan.backlog,
    };
    const { server, address } = await listenSocket(
      plan,
      'fcgi',
      async (listen) => {
        // A new server per attempt: a failed listen leaves nothing behind to reuse.
        const s = createFastcgiServer(app, settings);
        await s.listen(listen);
        return s;
      },
      shared.log,
    );
    const timeoutMs = shared.gracefulTimeout * 1000;
    return {
      address,
      close: (graceful) => server.close({ timeoutMs: graceful ? timeoutMs : 0 }),
    };
  },
};
