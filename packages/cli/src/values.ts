// Parsers for option values shared by the runner and the commands. Each throws a one-line
// TsgiError that names the option and says what a good value looks like.
import { TsgiError } from '@tsgi/core';

function bad(option: string, value: string, want: string): TsgiError {
  return new TsgiError(
    'ERR_CLI_BAD_OPTION',
    `cli: ${option} ${JSON.stringify(value)} is not ${want}`,
  );
}

/** parseCount: a non-negative integer (`--workers 4`). */
export function parseCount(option: string, value: string, min = 0): number {
  if (!/^[0-9]{1,9}$/.test(value) || Number(value) < min) {
    throw bad(option, value, min > 0 ? `a whole number >= ${min}` : 'a whole number');
  }
  return Number(value);
}

/** parseSeconds: a non-negative number of seconds, fractions allowed (`--graceful-timeout 2.5`). */
export function parseSeconds(option: string, value: string): number {
  if (!/^[0-9]{1,9}(\.[0-9]+)?$/.test(value)) throw bad(option, value, 'a number of seconds');
  return Number(value);
}

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** parseSize: bytes with an optional k/m/g/t suffix (binary: `10m` = 10485760). */
export function parseSize(option: string, value: string): number {
  const m = /^([0-9]{1,15})\s*([kmgt]?)i?b?$/i.exec(value.trim());
  if (m === null) throw bad(option, value, 'a size in bytes, like 1048576, 512k, 10m or 1g');
  const n = Number(m[1]) * (UNITS[(m[2] ?? '').toLowerCase()] ?? 1);
  if (!Number.isSafeInteger(n)) throw bad(option, value, 'a size below 8 PiB');
  return n;
}

/** parseChoice: one of a fixed set (`--map-head-to-get auto`). */
export function parseChoice<T extends string>(
  option: string,
  value: string,
  choices: readonly T[],
): T {
  if (!(choices as readonly string[]).includes(value)) {
    throw bad(option, value, `one of ${choices.join(', ')}`);
  }
  return value as T;
}

/** parseMount: a path prefix starting with "/", without its trailing slash; "/" is the root (''). */
export function parseMount(option: string, value: string): string {
  if (value === '') return '';
  if (!value.startsWith('/') || /[?#\s]/.test(value)) {
    throw bad(option, value, 'a path prefix starting with "/", like /app');
  }
  return value.replace(/\/+$/, '');
}

/** parseEncoding: a label TextDecoder knows (`utf-8`, `iso-8859-1`, `shift_jis`...). */
export function parseEncoding(option: string, value: string): string {
  try {
    new TextDecoder(value);
  } catch {
    throw bad(option, value, 'an encoding label Node knows, like utf-8 or iso-8859-1');
  }
  return value;
}

/** Listen: where a command listens. */
export type Listen = { host: string; port: number } | { path: string };

/**
 * parseListen: `HOST:PORT`, `PORT`, `:PORT` (on `defaultHost`), `[::1]:PORT`, or a Unix
 * socket: `unix:/path/to.sock`, or a path starting with `/` or `./`.
 */
export function parseListen(option: string, value: string, defaultHost = '127.0.0.1'): Listen {
  if (value.startsWith('unix:')) {
    const path = value.slice(5);
    if (path === '') throw bad(option, value, 'unix:/path/to/socket');
    return { path };
  }
  if (value.startsWith('/') || value.startsWith('./') || value.startsWith('../')) {
    return { path: value };
  }
  const m = /^(?:(\[[0-9A-Fa-f:.]+\]|[^:[\]\s]*):)?([0-9]{1,5})$/.exec(value);
  if (m === null || Number(m[2]) > 65535) {
    throw bad(option, value, 'HOST:PORT (like 127.0.0.1:8000, :8000, [::1]:8000) or unix:/path');
  }
  let host = m[1] || defaultHost;
  if (host.startsWith('[')) host = host.slice(1, -1);
  return { host, port: Number(m[2]) };
}
