/**
 * Real framework apps (Hono, Express 5, Koa 3) with the same routes, for the bridge tests
 * and for the integration suites behind real front servers. Each factory takes the path
 * prefix its routes live under (`base`): pass the mount prefix when the bridge hands the
 * full URL over (the default), '' with `stripMount: true`.
 *
 * Routes (under `base`):
 *   GET  /hello       text "hello from <name>"
 *   GET  /info        JSON: what the framework sees (method, url, path, query, host, ip, protocol, ...)
 *   POST /json        JSON body echoed as { received }
 *   POST /form        urlencoded body echoed as { fields }
 *   POST /multipart   multipart/form-data: { fields, files: [{ field, filename, size, sha256 }] }
 *   GET  /stream?n=N  N lines "chunk i\n" written one at a time, no Content-Length
 *   GET  /cookies     three Set-Cookie headers (a, b, c), body "cookies"
 *   GET  /redirect    302 to `${base}/hello`
 *   GET  /error       the handler throws; the framework answers 500
 *   POST /upload      body streamed and hashed: { bytes, sha256 } (plus { memory } with
 *                     `reportMemory`: this process's RSS when the handler started and its
 *                     peak RSS, process.resourceUsage().maxRSS, after the body was read)
 *   GET  /endless     "tick i\n" every 2 ms until the client goes away; the probe records
 *                     `<name>:start`, then what the framework saw (`<name>:abort`,
 *                     `<name>:close`, ...)
 */
import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import {
  type BridgeOptions,
  fromFetch,
  fromNodeListener,
  type InterfaceName,
  toApplication,
} from '@tsgi/bridges';
import type { Application, Environ } from '@tsgi/core';
import busboy from 'busboy';
import express from 'express';
import { Hono } from 'hono';
import { setCookie } from 'hono/cookie';
import { stream } from 'hono/streaming';
import Koa from 'koa';

/**
 * Probe: events an app records so a test can see what the framework noticed. With `file`,
 * each event is also appended to that file as a line: an app running in another process
 * (a CGI script, a FastCGI server) reports that way (see `waitForProbeFile` in helpers.ts).
 */
export class Probe {
  readonly events: string[] = [];
  private readonly waiters = new Map<string, Array<() => void>>();

  constructor(readonly file?: string) {}

  hit(event: string): void {
    this.events.push(event);
    if (this.file !== undefined) appendFileSync(this.file, `${event}\n`);
    const ws = this.waiters.get(event);
    if (ws) {
      this.waiters.delete(event);
      for (const w of ws) w();
    }
  }

  /** Resolves once `event` was recorded; rejects after `ms`. */
  wait(event: string, ms = 5000): Promise<void> {
    if (this.events.includes(event)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () =>
          reject(
            new Error(`probe: no "${event}" within ${ms} ms; saw [${this.events.join(', ')}]`),
          ),
        ms,
      );
      const list = this.waiters.get(event) ?? [];
      list.push(() => {
        clearTimeout(t);
        resolve();
      });
      this.waiters.set(event, list);
    });
  }
}

export interface AppOptions {
  /** Prefix of every route ('' for the root). */
  base?: string;
  probe?: Probe;
  /** POST /upload adds { memory: { rssAtStart, maxRSS } } (bytes) to its answer. */
  reportMemory?: boolean;
}

/** MemoryReport: what POST /upload reports with `reportMemory`, in bytes. */
export interface MemoryReport {
  /** process.memoryUsage().rss when the handler started. */
  rssAtStart: number;
  /** process.resourceUsage().maxRSS (the process's peak RSS so far) once the body was read. */
  maxRSS: number;
}

/** memoryProbe: call at the start of a handler, then call the result once the work is done. */
function memoryProbe(enabled: boolean | undefined): () => { memory?: MemoryReport } {
  if (!enabled) return () => ({});
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const rssAtStart = process.memoryUsage().rss;
  const timer = gc ? setInterval(gc, 20) : undefined;
  return () => {
    clearInterval(timer);
    return { memory: { rssAtStart, maxRSS: process.resourceUsage().maxRSS * 1024 } };
  };
}

interface Upload {
  field: string;
  filename: string;
  size: number;
  sha256: string;
}

/** Parses multipart/form-data from a Node stream with busboy. */
function parseMultipart(
  headers: Record<string, string | string[] | undefined>,
  body: NodeJS.ReadableStream,
): Promise<{ fields: Record<string, string>; files: Upload[] }> {
  return new Promise((resolve, reject) => {
    const fields: Record<string, string> = {};
    const files: Upload[] = [];
    const bb = busboy({ headers: headers as Record<string, string> });
    bb.on('field', (name, value) => {
      fields[name] = value;
    });
    bb.on('file', (field, file, info) => {
      const hash = createHash('sha256');
      let size = 0;
      file.on('data', (d: Buffer) => {
        size += d.length;
        hash.update(d);
      });
      file.on('end', () => {
        files.push({ field, filename: info.filename ?? '', size, sha256: hash.digest('hex') });
      });
    });
    bb.on('close', () => resolve({ fields, files }));
    bb.on('error', reject);
    body.pipe(bb);
  });
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/** honoApp: a Hono app (a Fetch app: run it with `fromFetch`). */
export function honoApp(options: AppOptions = {}): Hono {
  const base = options.base ?? '';
  const probe = options.probe ?? new Probe();
  const app = base ? new Hono().basePath(base) : new Hono();
  app.onError((err, c) => {
    probe.hit(`hono:error:${err.message}`);
    return c.text('Internal Server Error', 500);
  });
  app.get('/hello', (c) => c.text('hello from hono'));
  app.get('/info', (c) => {
    const env = c.env as Environ | undefined;
    return c.json({
      method: c.req.method,
      url: c.req.url,
      path: c.req.path,
      query: c.req.query(),
      host: c.req.header('host'),
      ip: env?.REMOTE_ADDR,
      protocol: new URL(c.req.url).protocol.slice(0, -1),
      header: c.req.header('x-test') ?? null,
    });
  });
  app.post('/json', async (c) => c.json({ received: await c.req.json() }));
  app.post('/form', async (c) => c.json({ fields: await c.req.parseBody() }));
  app.post('/multipart', async (c) => {
    const body = await c.req.parseBody();
    const fields: Record<string, string> = {};
    const files: Upload[] = [];
    for (const [name, v] of Object.entries(body)) {
      if (typeof v === 'string') fields[name] = v;
      else if (v instanceof File) {
        const buf = Buffer.from(await v.arrayBuffer());
        files.push({
          field: name,
          filename: v.name,
          size: buf.length,
          sha256: createHash('sha256').update(buf).digest('hex'),
        });
      }
    }
    return c.json({ fields, files });
  });
  app.get('/stream', (c) => {
    const n = Number(c.req.query('n') ?? 5);
    c.header('Content-Type', 'text/plain; charset=utf-8');
    return stream(c, async (s) => {
      for (let i = 0; i < n; i++) {
        await s.write(`chunk ${i}\n`);
        await s.sleep(1);
      }
    });
  });
  app.get('/cookies', (c) => {
    setCookie(c, 'a', '1', { path: '/' });
    setCookie(c, 'b', '2', { httpOnly: true });
    setCookie(c, 'c', '3');
    return c.text('cookies');
  });
  app.get('/redirect', (c) => c.redirect(`${base}/hello`));
  app.get('/error', () => {
    throw new Error('boom');
  });
  app.post('/upload', async (c) => {
    const memory = memoryProbe(options.reportMemory);
    const hash = createHash('sha256');
    let bytes = 0;
    const body = c.req.raw.body;
    if (body) {
      const reader = body.getReader();
      for (;;) {
        const r = await reader.read();
        if (r.done) break;
        bytes += r.value.length;
        hash.update(r.value);
      }
    }
    return c.json({ bytes, sha256: hash.digest('hex'), ...memory() });
  });
  app.get('/endless', (c) => {
    probe.hit('hono:start');
    c.req.raw.signal.addEventListener('abort', () => probe.hit('hono:signal'));
    c.header('Content-Type', 'text/plain');
    return stream(c, async (s) => {
      s.onAbort(() => probe.hit('hono:abort'));
      let i = 0;
      while (!s.aborted) {
        await s.write(`tick ${i++}\n`);
        await s.sleep(2);
      }
    });
  });
  return app;
}

/** expressApp: an Express 5 app (a Node listener: run it with `fromNodeListener`). */
export function expressApp(options: AppOptions = {}): express.Express {
  const base = options.base ?? '';
  const probe = options.probe ?? new Probe();
  const app = express();
  // finalhandler prints errors to stderr unless env is 'test'.
  app.set('env', 'test');
  const r = express.Router();
  r.get('/hello', (_req, res) => {
    res.type('text/plain').send('hello from express');
  });
  r.get('/info', (req, res) => {
    res.json({
      method: req.method,
      url: req.url,
      originalUrl: req.originalUrl,
      baseUrl: req.baseUrl,
      path: req.path,
      query: req.query,
      host: req.get('host'),
      ip: req.ip,
      protocol: req.protocol,
      header: req.get('x-test') ?? null,
    });
  });
  r.post('/json', express.json(), (req, res) => {
    res.json({ received: req.body });
  });
  r.post('/form', express.urlencoded({ extended: false }), (req, res) => {
    res.json({ fields: { ...req.body } });
  });
  r.post('/multipart', async (req, res, next) => {
    try {
      res.json(await parseMultipart(req.headers, req));
    } catch (e) {
      next(e);
    }
  });
  r.get('/stream', (req, res) => {
    const n = Number(req.query.n ?? 5);
    res.type('text/plain');
    let i = 0;
    const tick = () => {
      if (i < n) {
        res.write(`chunk ${i++}\n`);
        setTimeout(tick, 1);
      } else {
        res.end();
      }
    };
    tick();
  });
  r.get('/cookies', (_req, res) => {
    res.cookie('a', '1', { path: '/' });
    res.cookie('b', '2', { httpOnly: true });
    res.cookie('c', '3');
    res.send('cookies');
  });
  r.get('/redirect', (_req, res) => {
    res.redirect(`${base}/hello`);
  });
  r.get('/error', () => {
    throw new Error('boom');
  });
  r.post('/upload', (req, res) => {
    const memory = memoryProbe(options.reportMemory);
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (d: Buffer) => {
      bytes += d.length;
      hash.update(d);
    });
    req.on('end', () => {
      res.json({ bytes, sha256: hash.digest('hex'), ...memory() });
    });
  });
  r.get('/endless', (req, res) => {
    probe.hit('express:start');
    req.on('aborted', () => probe.hit('express:aborted'));
    req.on('close', () => probe.hit('express:req-close'));
    res.on('close', () => {
      clearInterval(timer);
      probe.hit(res.writableFinished ? 'express:finished' : 'express:close');
    });
    res.type('text/plain');
    let i = 0;
    const timer = setInterval(() => res.write(`tick ${i++}\n`), 2);
  });
  app.use(base || '/', r);
  return app;
}

/** koaApp: a Koa 3 app (a Node listener via `app.callback()`). */
export function koaApp(options: AppOptions = {}): Koa {
  const base = options.base ?? '';
  const probe = options.probe ?? new Probe();
  const app = new Koa();
  // Koa logs unexpected errors unless silent; the 500 is the point of the /error route.
  app.silent = true;
  app.on('error', (err: Error) => probe.hit(`koa:error:${err.message}`));
  app.use(async (ctx, next) => {
    if (base) {
      if (ctx.path !== base && !ctx.path.startsWith(`${base}/`)) return;
      ctx.path = ctx.path.slice(base.length) || '/';
    }
    await next();
  });
  app.use(async (ctx) => {
    const route = `${ctx.method === 'HEAD' ? 'GET' : ctx.method} ${ctx.path}`;
    switch (route) {
      case 'GET /hello':
        ctx.body = 'hello from koa';
        return;
      case 'GET /info':
        ctx.body = {
          method: ctx.method,
          url: ctx.url,
          originalUrl: ctx.originalUrl,
          path: ctx.path,
          query: { ...ctx.query },
          host: ctx.host,
          ip: ctx.ip,
          protocol: ctx.protocol,
          header: ctx.get('x-test') || null,
        };
        return;
      case 'POST /json':
        ctx.body = { received: JSON.parse((await readAll(ctx.req)).toString('utf8')) };
        return;
      case 'POST /form':
        ctx.body = {
          fields: Object.fromEntries(
            new URLSearchParams((await readAll(ctx.req)).toString('utf8')),
          ),
        };
        return;
      case 'POST /multipart':
        ctx.body = await parseMultipart(ctx.req.headers, ctx.req);
        return;
      case 'GET /stream': {
        const n = Number(ctx.query.n ?? 5);
        ctx.type = 'text/plain';
        ctx.body = Readable.from(
          (async function* () {
            for (let i = 0; i < n; i++) {
              yield `chunk ${i}\n`;
              await new Promise((r) => setTimeout(r, 1));
            }
          })(),
        );
        return;
      }
      case 'GET /cookies':
        ctx.cookies.set('a', '1', { path: '/', httpOnly: false });
        ctx.cookies.set('b', '2', { httpOnly: true });
        ctx.cookies.set('c', '3', { httpOnly: false });
        ctx.body = 'cookies';
        return;
      case 'GET /redirect':
        ctx.redirect(`${base}/hello`);
        return;
      case 'GET /error':
        throw new Error('boom');
      case 'POST /upload': {
        const memory = memoryProbe(options.reportMemory);
        const hash = createHash('sha256');
        let bytes = 0;
        for await (const d of ctx.req) {
          bytes += (d as Buffer).length;
          hash.update(d as Buffer);
        }
        ctx.body = { bytes, sha256: hash.digest('hex'), ...memory() };
        return;
      }
      case 'GET /endless': {
        probe.hit('koa:start');
        ctx.req.on('aborted', () => probe.hit('koa:aborted'));
        ctx.res.on('close', () =>
          probe.hit(ctx.res.writableFinished ? 'koa:finished' : 'koa:close'),
        );
        let i = 0;
        ctx.type = 'text/plain';
        ctx.body = new Readable({
          read() {
            setTimeout(() => this.push(`tick ${i++}\n`), 2);
          },
          destroy(err, cb) {
            probe.hit('koa:stream-destroyed');
            cb(err);
          },
        });
        return;
      }
    }
  });
  return app;
}

/** Framework: one framework's app factory and how the bridge runs it. */
export interface Framework {
  name: 'hono' | 'express' | 'koa';
  /** The `--interface` the tsgi command needs for its export. */
  iface: InterfaceName;
  /** The framework's own app object, as a module would export it. */
  make(options?: AppOptions): unknown;
  /** The tsgi Application for it. */
  tsgi(options?: AppOptions & BridgeOptions): Application;
}

export const FRAMEWORKS: readonly Framework[] = [
  {
    name: 'hono',
    iface: 'fetch',
    make: honoApp,
    tsgi: (o = {}) => fromFetch(honoApp(o), o),
  },
  {
    name: 'express',
    iface: 'node',
    make: expressApp,
    tsgi: (o = {}) => fromNodeListener(expressApp(o), o),
  },
  {
    name: 'koa',
    iface: 'node',
    make: koaApp,
    // As the tsgi command would load `export default app`: detected as a Koa instance.
    tsgi: (o = {}) => toApplication(koaApp(o), undefined, o),
  },
];
