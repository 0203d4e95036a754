// detectInterface / toApplication: what the tsgi command does with a module's export.
import http from 'node:http';
import { detectInterface, type InterfaceName, toApplication } from '@tsgi/bridges';
import type { Application } from '@tsgi/core';
import { request } from '@tsgi/core/testing';
import { describe, expect, it } from 'vitest';
import { expressApp, honoApp, koaApp } from './apps.js';

const tsgiApp: Application = (_environ, startResponse) => {
  startResponse('200 OK', [['Content-Type', 'text/plain']]);
  return ['tsgi'];
};
const nodeListener = (_req: http.IncomingMessage, res: http.ServerResponse) => {
  res.end('node');
};
const fetchHandler = () => new Response('fetch');

/** A module namespace object, as `import * as m` gives. */
function namespace(def: unknown): object {
  return Object.freeze(
    Object.assign(Object.create(null), { default: def, [Symbol.toStringTag]: 'Module' }),
  );
}

describe('detectInterface', () => {
  it.each<[string, () => unknown, InterfaceName | undefined]>([
    ['a tsgi app', () => tsgiApp, 'tsgi'],
    ['a Hono app', () => honoApp(), 'fetch'],
    ['an object with fetch()', () => ({ fetch: fetchHandler }), 'fetch'],
    ['an Express app', () => expressApp(), 'node'],
    ['a Connect-style app', () => Object.assign(nodeListener, { handle() {}, use() {} }), 'node'],
    ['a Koa app', () => koaApp(), 'node'],
    ['an http.Server', () => http.createServer(nodeListener), 'node'],
    ['a module namespace with a Hono default', () => namespace(honoApp()), 'fetch'],
    // Arity cannot tell these from a tsgi app: they need --interface.
    ['a plain Node listener', () => (req: unknown, res: unknown) => [req, res], 'tsgi'],
    ['a plain Fetch function', () => fetchHandler, 'tsgi'],
    ['undefined', () => undefined, undefined],
    ['null', () => null, undefined],
    ['a plain object', () => ({ a: 1, b: 2 }), undefined],
    ['a string', () => 'app', undefined],
  ])('%s', (_label, make, expected) => {
    expect(detectInterface(make())).toBe(expected);
  });
});

describe('toApplication', () => {
  it.each<[string, () => unknown, InterfaceName | undefined, string]>([
    ['a tsgi app', () => tsgiApp, undefined, 'tsgi'],
    ['a Node listener with --interface node', () => nodeListener, 'node', 'node'],
    ['a Fetch function with --interface fetch', () => fetchHandler, 'fetch', 'fetch'],
    ['an object with fetch()', () => ({ fetch: fetchHandler }), undefined, 'fetch'],
    ['an http.Server', () => http.createServer(nodeListener), undefined, 'node'],
    ['a Hono app', () => honoApp(), undefined, 'hello from hono'],
    ['an Express app', () => expressApp(), undefined, 'hello from express'],
    ['a Koa app', () => koaApp(), undefined, 'hello from koa'],
    ['a Koa app with --interface node', () => koaApp(), 'node', 'hello from koa'],
  ])('runs %s', async (_label, make, iface, body) => {
    const app = toApplication(make(), iface);
    const res = await request(app, { target: body.startsWith('hello') ? '/hello' : '/' });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(body);
  });

  it('passes stripMount on', async () => {
    const app = toApplication(expressApp(), undefined, { stripMount: true });
    const res = await request(app, { target: '/app/hello', mount: '/app' });
    expect(res.body.toString()).toBe('hello from express');
  });

  it('says what it found when nothing matches', () => {
    expect(() => toApplication({ a: 1, b: 2 })).toThrow(
      'bridges: the export is an object with keys [a, b]; expected a tsgi app (environ, startResponse), a Fetch handler or an object with fetch(), or a Node (req, res) listener — pass --interface',
    );
    expect(() => toApplication(undefined)).toThrow(/the export is undefined/);
    expect(() => toApplication(new (class Thing {})())).toThrow(
      /an instance of Thing with keys \[\]/,
    );
  });

  it('says what it found when the stated interface does not fit', () => {
    let code = '';
    try {
      toApplication({ a: 1 }, 'fetch');
    } catch (e: any) {
      code = e.code;
      expect(e.message).toBe(
        'bridges: --interface fetch: the export is an object with keys [a]; expected a function (request) => Response or an object with a fetch(request) method',
      );
    }
    expect(code).toBe('ERR_BRIDGES_INTERFACE_MISMATCH');
    expect(() => toApplication(honoApp(), 'tsgi')).toThrow(
      /--interface tsgi: the export is an instance of Hono/,
    );
    expect(() => toApplication('x', 'node')).toThrow(/--interface node: the export is a string/);
    expect(() => toApplication(tsgiApp, 'cgi' as never)).toThrow(/unknown interface "cgi"/);
  });
});
