import type { Backend, ScriptBackend, SocketBackend, TcpBackend } from '../types.js';

export function isTcp(b: Backend): b is TcpBackend {
  return 'port' in b;
}
export function isSocket(b: Backend): b is SocketBackend {
  return 'socket' in b;
}
export function isScript(b: Backend): b is ScriptBackend {
  return 'script' in b;
}

/** Escape for a PCRE pattern (nginx and lighttpd regexes). */
export function regexEscape(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

/** A double-quoted string for nginx, lighttpd and Apache configs. */
export function quote(s: string): string {
  if (/[\r\n]/.test(s)) throw new Error(`config value contains a newline: ${JSON.stringify(s)}`);
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * Regex matching `prefix` and everything under `prefix/` (but not `/apple` for `/app`).
 * With prefix `/` everything matches.
 */
export function prefixRegex(prefix: string): string {
  if (prefix === '/') return '^/';
  return `^${regexEscape(prefix)}(?:/|$)`;
}

/**
 * Environment a CGI script gets on top of what the server sets: the runner's PATH (Apache's
 * mod_cgi, fcgiwrap and lighttpd do not pass theirs on) plus the test's own variables.
 */
export function cgiEnvironment(extra: Record<string, string> | undefined): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH || '/usr/local/bin:/usr/bin:/bin' };
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
      throw new Error(`bad cgiEnv name ${JSON.stringify(k)}`);
    env[k] = v;
  }
  return env;
}
