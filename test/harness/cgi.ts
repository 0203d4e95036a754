/**
 * A CGI request without a web server: the variables a server would set, libfcgi's `cgi-fcgi`
 * run as a CGI program (the FastCGI client), and the CGI response it prints, split.
 */
import type { Buffer } from 'node:buffer';
import { findBinary } from './availability.js';
import { type ProcessResult, runProcess } from './run.js';

/**
 * cgiEnv: the CGI variables of a GET `target` (`/app/x?y=1`) mounted at `/app`, as a server sets
 * them (PATH_INFO percent-decoded to bytes, one latin-1 character each), then `more` over them.
 */
export function cgiEnv<V extends string | Uint8Array = string>(
  target: string,
  more: Record<string, V> = {},
): Record<string, string | V> {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  return {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_SOFTWARE: 'tsgi-test',
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_NAME: '127.0.0.1',
    SERVER_PORT: '80',
    REMOTE_ADDR: '127.0.0.1',
    REQUEST_METHOD: 'GET',
    REQUEST_URI: target,
    SCRIPT_NAME: '/app',
    PATH_INFO: path
      .slice('/app'.length)
      .replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16))),
    QUERY_STRING: q < 0 ? '' : target.slice(q + 1),
    ...more,
  };
}

/**
 * cgiFcgi: `cgi-fcgi -bind -connect HOST:PORT|SOCKET` (libfcgi) run as a CGI program would
 * be: `env` plus PATH as its environment (byte-exact: a string value stands for its latin-1
 * bytes), `stdin` as the request body. Its stdout is the FastCGI application's CGI response,
 * byte for byte; FCGI_STDERR goes to its stderr. A number is a TCP port on 127.0.0.1, a string
 * a unix socket path.
 */
export function cgiFcgi(
  target: number | string,
  env: Record<string, string | Uint8Array>,
  stdin: Buffer | string = '',
): Promise<ProcessResult> {
  const bin = findBinary('cgi-fcgi');
  if (!bin) throw new Error('cgi-fcgi not installed (apt-get install libfcgi-bin)');
  const where = typeof target === 'number' ? `127.0.0.1:${target}` : target;
  return runProcess(bin, {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    args: ['-bind', '-connect', where],
    stdin,
    timeoutMs: 30_000,
  });
}

/** parseCgi: the header lines and body of a CGI response (`Status: ...\r\n...\r\n\r\nbody`). */
export function parseCgi(out: Buffer): { head: string[]; body: Buffer } {
  const end = out.indexOf('\r\n\r\n');
  if (end < 0) return { head: [], body: out };
  return {
    head: out.subarray(0, end).toString('latin1').split('\r\n'),
    body: out.subarray(end + 4),
  };
}
