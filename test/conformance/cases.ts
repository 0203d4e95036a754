// The named conformance cases. Each names the docs/SPEC.md rules it covers.
// Expectations that legitimately differ by target (a front server that adds headers or
// strips a HEAD body) branch on `t.kind` / `t.server` and say why.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { Application, Environ } from '@tsgi/core';
import { expect } from 'vitest';
import type { Case, ConformanceResponse } from './suite.js';

const text = (s: string) => Buffer.from(s, 'latin1');
const hdr = (res: ConformanceResponse, name: string) => {
  const l = name.toLowerCase();
  const vs = res.headers.filter(([k]) => k.toLowerCase() === l).map(([, v]) => v);
  return vs.length === 0 ? undefined : vs.join(', ');
};

/** environDump: answers with the CGI variables (JSON), for the environ cases. */
const environDump: Application = (environ: Environ, startResponse) => {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(environ)) if (typeof v === 'string') out[k] = v;
  out['tsgi.version'] = environ['tsgi.version'];
  out['tsgi.url_scheme'] = environ['tsgi.url_scheme'];
  out['tsgi.uri_encoding'] = environ['tsgi.uri_encoding'];
  out['tsgi.input_terminated'] = environ['tsgi.input_terminated'];
  const body = Buffer.from(JSON.stringify(out), 'utf8');
  startResponse('200 OK', [
    ['Content-Type', 'application/json'],
    ['Content-Length', String(body.length)],
  ]);
  return [body];
};

export const cases: Case[] = [
  {
    name: 'hello',
    rules: ['3.1'],
    app: (_e, sr) => {
      sr('200 OK', [
        ['Content-Type', 'text/plain'],
        ['Content-Length', '14'],
      ]);
      return ['Hello, World!\n'];
    },
    request: { target: '/hello' },
    check(res) {
      expect(res.status).toBe(200);
      expect(hdr(res, 'content-type')).toBe('text/plain');
      expect(hdr(res, 'content-length')).toBe('14');
      expect(res.body).toEqual(text('Hello, World!\n'));
    },
  },
  {
    name: 'response-object-style',
    rules: ['3.2'],
    app: async () => ({
      status: '201 Created',
      headers: [
        ['Content-Type', 'text/plain'],
        ['Content-Length', '3'],
      ],
      body: 'abc',
    }),
    request: { target: '/x' },
    check(res) {
      expect(res.status).toBe(201);
      expect(res.body).toEqual(text('abc'));
    },
  },
  {
    name: 'environ-basics',
    rules: ['1.1', '1.3'],
    app: environDump,
    request: { target: '/extra/p%20q?x=1&y=%41' },
    check(res, t) {
      const e = JSON.parse(res.body.toString('utf8'));
      expect(e['tsgi.version']).toEqual([1, 1]);
      expect(e.REQUEST_METHOD).toBe('GET');
      expect(e.SCRIPT_NAME).toBe(t.mount);
      expect(e.PATH_INFO).toBe('/extra/p q');
      expect(e.QUERY_STRING).toBe('x=1&y=%41');
      expect(e.REQUEST_URI).toBe(`${t.mount}/extra/p%20q?x=1&y=%41`);
      expect(e.RAW_URI).toBe(e.REQUEST_URI);
      expect(e['tsgi.uri_encoding']).toBe('utf-8');
      expect(e['tsgi.input_terminated']).toBe(true);
    },
  },
  {
    name: 'post-read-small',
    rules: ['2.1', '2.2'],
    app: async (environ, sr) => {
      const input = environ['tsgi.input'];
      const hash = createHash('sha256');
      let n = 0;
      for (;;) {
        const c = await input.read(1000);
        if (c.length === 0) break;
        hash.update(c);
        n += c.length;
      }
      const again = await input.read(1000);
      const body = `${n} ${hash.digest('hex')} ${again.length}`;
      sr('200 OK', [['Content-Type', 'text/plain']]);
      return [body];
    },
    request: { method: 'POST', target: '/upload', body: Buffer.alloc(96 * 1024, 'abcdefgh') },
    check(res) {
      const expected = createHash('sha256')
        .update(Buffer.alloc(96 * 1024, 'abcdefgh'))
        .digest('hex');
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe(`${96 * 1024} ${expected} 0`);
    },
  },
];
