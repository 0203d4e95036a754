import { EventEmitter } from 'node:events';
import { type Application, TsgiError } from '@tsgi/core';
import { type FetchBridgeOptions, type FetchHandler, fromFetch } from './fetch.js';
import { fromNodeListener, type NodeBridgeOptions, type NodeListener } from './node.js';
import { describeValue } from './util.js';

/** InterfaceName: the kinds of app the `tsgi` command runs (`--interface`). */
export type InterfaceName = 'tsgi' | 'fetch' | 'node';

/** INTERFACES: the valid `--interface` values. */
export const INTERFACES: readonly InterfaceName[] = Object.freeze(['tsgi', 'fetch', 'node']);

/** BridgeOptions: options for whichever bridge `toApplication` picks. */
export interface BridgeOptions extends FetchBridgeOptions, NodeBridgeOptions {}

const EXPECTED =
  'expected a tsgi app (environ, startResponse), a Fetch handler or an object with fetch(), or a Node (req, res) listener';

/** A module namespace (import * as m) stands for its default export. */
function unwrap(v: unknown): unknown {
  if (
    v !== null &&
    typeof v === 'object' &&
    (v as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag] === 'Module' &&
    'default' in v
  ) {
    return (v as { default: unknown }).default;
  }
  return v;
}

function hasFetch(v: unknown): v is { fetch: FetchHandler } {
  return (
    v !== null &&
    (typeof v === 'object' || typeof v === 'function') &&
    typeof (v as { fetch?: unknown }).fetch === 'function'
  );
}

type NodeKind = 'express' | 'koa' | 'server';

/** Which recognisable Node app `v` is, without calling anything on it. */
function nodeKind(v: unknown): NodeKind | undefined {
  if (v === null || (typeof v !== 'object' && typeof v !== 'function')) return undefined;
  const o = v as Record<string, unknown>;
  // Express and Connect apps: a function with handle() and use().
  if (typeof v === 'function' && typeof o.handle === 'function' && typeof o.use === 'function') {
    return 'express';
  }
  // A Koa instance: callback() builds its listener.
  if (typeof v === 'object' && typeof o.callback === 'function' && typeof o.use === 'function') {
    return 'koa';
  }
  // An http.Server made with createServer(listener): use that listener.
  if (
    v instanceof EventEmitter &&
    typeof o.listen === 'function' &&
    v.listenerCount('request') === 1
  ) {
    return 'server';
  }
  return undefined;
}

function nodeListenerOf(v: unknown): NodeListener | undefined {
  switch (nodeKind(v)) {
    case 'express':
      return v as NodeListener;
    case 'koa':
      return (v as { callback(): NodeListener }).callback();
    case 'server':
      return (v as EventEmitter).listeners('request')[0] as NodeListener;
    default:
      return typeof v === 'function' ? (v as NodeListener) : undefined;
  }
}

/**
 * detectInterface: what kind of app a module exported, for the `tsgi` command. An
 * object or function with a `fetch` method (a Hono app, `export default { fetch }`) is
 * `fetch`; an Express or Connect app (a function with `handle` and `use`), a Koa
 * instance (`callback` and `use`) or an `http.Server` with one request listener is
 * `node`; any other function is `tsgi`. A module namespace stands for its default
 * export. Arity cannot tell the rest apart: a tsgi app and a Node listener both take two
 * arguments, and a bare `(request) => Response` looks like a tsgi app returning a
 * response object, so a plain Node listener or Fetch function needs `--interface`.
 * Returns undefined when nothing fits.
 */
export function detectInterface(exported: unknown): InterfaceName | undefined {
  const v = unwrap(exported);
  if (hasFetch(v)) return 'fetch';
  if (nodeKind(v) !== undefined) return 'node';
  if (typeof v === 'function') return 'tsgi';
  return undefined;
}

/**
 * toApplication: the tsgi Application for a module's export: as `iface` says, or as
 * `detectInterface` finds. Throws a TsgiError (`ERR_BRIDGES_UNKNOWN_INTERFACE` or
 * `ERR_BRIDGES_INTERFACE_MISMATCH`) that says what the export was, e.g. `bridges: the
 * export is an object with keys [a, b]; expected a tsgi app (environ, startResponse), ...`.
 */
export function toApplication(
  exported: unknown,
  iface?: InterfaceName,
  options: BridgeOptions = {},
): Application {
  const v = unwrap(exported);
  if (iface !== undefined && !INTERFACES.includes(iface)) {
    throw new TsgiError(
      'ERR_BRIDGES_BAD_INTERFACE',
      `bridges: unknown interface ${JSON.stringify(iface)}; use one of ${INTERFACES.join(', ')}`,
    );
  }
  const kind = iface ?? detectInterface(v);
  const found = `the export is ${describeValue(v)}`;
  switch (kind) {
    case 'tsgi':
      if (typeof v === 'function') return v as Application;
      throw mismatch(
        `--interface tsgi: ${found}; a tsgi app is a function (environ, startResponse)`,
      );
    case 'fetch':
      if (typeof v === 'function' || hasFetch(v)) {
        return fromFetch(v as FetchHandler, options);
      }
      throw mismatch(
        `--interface fetch: ${found}; expected a function (request) => Response or an object with a fetch(request) method`,
      );
    case 'node': {
      const listener = nodeListenerOf(v);
      if (listener !== undefined) return fromNodeListener(listener, options);
      throw mismatch(
        `--interface node: ${found}; expected a (req, res) listener, an Express or Connect app, a Koa app or an http.Server`,
      );
    }
    default:
      throw new TsgiError(
        'ERR_BRIDGES_UNKNOWN_INTERFACE',
        `bridges: ${found}; ${EXPECTED} — pass --interface`,
      );
  }
}

function mismatch(text: string): TsgiError {
  return new TsgiError('ERR_BRIDGES_INTERFACE_MISMATCH', `bridges: ${text}`);
}
