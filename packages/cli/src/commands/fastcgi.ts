// `tsgi fastcgi`: the app as a FastCGI responder (@tsgi/fastcgi) behind nginx, Apache or
// lighttpd: on TCP, a Unix socket, or the listening socket a supervisor leaves on fd 0.
import { TsgiError } from '@tsgi/core';
import type { Command, CommandOptions } from '../command.js';
import { planSocket, removeStaleSocket, serveOnSocket, socketOptions } from '../listen.js';
import { parseChoice, parseCount, parseSeconds, parseSize } from '../values.js';

const DEFAULT_LISTEN = '127.0.0.1:9000';

const ms = (name: string, o: CommandOptions) =>
  Math.round(parseSeconds(`--${name}`, o[name] as string) * 1000);

/**
 * The peers allowed to connect (FastCGI S3.2): `--web-server-addrs`, else the
 * FCGI_WEB_SERVER_ADDRS environment variable; null for every peer (`any`, unset, or an
 * empty variable, as libfcgi reads it). Throws a one-line error for an entry that is not
 * an IP address, naming where it came from.
 */
function webServerAddrs(o: CommandOptions): string | null {
  const given = o['web-server-addrs'] as string | undefined;
  const value = given ?? process.env.FCGI_WEB_SERVER_ADDRS;
  if (value === undefined || value === 'any') return null;
  const where =
    given === undefined
      ? `FCGI_WEB_SERVER_ADDRS ${JSON.stringify(value)} (from the environment)`
      : `--web-server-addrs ${JSON.stringify(value)}`;
  const fix =
    given === undefined
      ? 'fix or unset the variable, or pass --web-server-addrs any'
      : 'give a comma-separated list of IP addresses, or any';
  const entries = value
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '');
  if (entries.length === 0) {
    // libfcgi takes an empty FCGI_WEB_SERVER_ADDRS as no check; an empty --web-server-addrs
    // is a mistake (it would otherwise refuse every peer).
    if (given === undefined) return null;
    throw new TsgiError('ERR_CLI_BAD_OPTION', `cli: ${where} lists no address; ${fix}`);
  }
  const { isIP } = process.getBuiltinModule('node:net');
  for (const a of entries) {
    if (isIP(a) === 0) {
      throw new TsgiError(
        'ERR_CLI_BAD_OPTION',
        `cli: ${where}: ${JSON.stringify(a)} is not an IP address; ${fix}`,
      );
    }
  }
  return entries.join(',');
}

/** The adapter's options from the command's (the listening ones apart). */
function adapterOptions(o: CommandOptions) {
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
    // Resolved here, environment included, so that the adapter never reads it itself.
    webServerAddrs: webServerAddrs(o),
    errorsToStderr:
      parseChoice('--errors-to', o['errors-to'] as string, ['web-server', 'stderr']) ===
      'web-server',
  };
}

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
      help: 'comma-separated IP addresses allowed to connect over TCP; other peers are disconnected, and so is every unix-socket peer (default: FCGI_WEB_SERVER_ADDRS from the environment; unset, empty or any: every peer)',
    },
    'errors-to': {
      type: 'string',
      arg: 'web-server|stderr',
      help: "where tsgi.errors goes: FCGI_STDERR records (nginx's error log) or this process's stderr",
      default: 'web-server',
    },
  },
  check(o, shared) {
    const plan = planSocket(o, shared, 'fastcgi', DEFAULT_LISTEN);
    const addrs = o['web-server-addrs'] as string | undefined;
    if (addrs !== undefined && addrs !== 'any' && plan.listen && 'path' in plan.listen) {
      // S3.2: a peer that did not come over TCP fails the check; every connection would.
      throw new TsgiError(
        'ERR_CLI_USAGE',
        `cli: --web-server-addrs checks TCP peers, and refuses every connection to a unix socket (FastCGI 3.2); drop it for --listen unix:${plan.listen.path} and limit who may connect with --socket-mode and --socket-owner`,
      );
    }
    adapterOptions(o);
  },
  beforeWorkers: (shared, o) => removeStaleSocket(planSocket(o, shared, 'fastcgi', DEFAULT_LISTEN)),
  async serve(app, shared, o) {
    const { createFastcgiServer } = await import('@tsgi/fastcgi');
    return serveOnSocket('fastcgi', 'fcgi', DEFAULT_LISTEN, shared, o, async (listen, core) => {
      const s = createFastcgiServer(app, { ...adapterOptions(o), ...core });
      await s.listen(listen);
      return s;
    });
  },
};
