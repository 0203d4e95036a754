// fromFetch with plain Fetch handlers: the Request rebuilt from the environ, the Response
// taken apart into startResponse and a streamed body.
import { Buffer } from 'node:buffer';
import { type FetchHandler, fromFetch } from '@tsgi/bridges';
import { request } from '@tsgi/core/testing';
import { describe, expect, it } from 'vitest';
import { sleep } from './helpers.js';

/** Runs `handler` with the request it received captured. */
async function capture(req: Parameters<typeof request>[1], opts: { stripMount?: boolean } = {}) {
  let seen: Request | undefined;
  let args: unknown[] = [];
  const res = await request(
    fromFetch((r: Request, ...rest: unknown[]) => {
      seen = r;
      args = rest;
      return new Response('ok');
    }, opts),
    req,
  );
  return { res, seen: seen!, args };
}

describe('fromFetch: the Request', () => {
  it('rebuilds the URL with the mount prefix by default', async () => {
    const { seen } = await capture({
      target: '/app/a%2Fb/%7Euser/p%20q?x=%41&y=1',
      mount: '/app',
      headers: { Host: 'example.org:8080' },
    });
    // REQUEST_URI decodes to SCRIPT_NAME + PATH_INFO, so the client's escaping is kept.
    expect(seen.url).toBe('http://example.org:8080/app/a%2Fb/%7Euser/p%20q?x=%41&y=1');
    expect(seen.method).toBe('GET');
    expect(seen.body).toBeNull();
  });

  it('leaves the mount prefix out with stripMount', async () => {
    const { seen } = await capture(
      { target: '/app/x?q=1', mount: '/app', headers: { Host: 'h' } },
      { stripMount: true },
    );
    expect(seen.url).toBe('http://h/x?q=1');
    const root = await capture(
      { target: '/app', mount: '/app', headers: { Host: 'h' } },
      { stripMount: true },
    );
    expect(root.seen.url).toBe('http://h/');
  });

  it('uses SERVER_NAME and SERVER_PORT without a Host header, https from the environ', async () => {
    const { seen } = await capture({
      target: '/p',
      vars: {
        HTTP_HOST: undefined as never,
        SERVER_NAME: 'srv.local',
        SERVER_PORT: '8443',
        HTTPS: 'on',
      },
    });
    expect(seen.url).toBe('https://srv.local:8443/p');
    const dflt = await capture({
      target: '/p',
      vars: {
        HTTP_HOST: undefined as never,
        SERVER_NAME: 'srv.local',
        SERVER_PORT: '443',
        HTTPS: 'on',
      },
    });
    expect(dflt.seen.url).toBe('https://srv.local/p');
  });

  it('falls back to SERVER_NAME when the Host header would move the URL authority', async () => {
    const { seen } = await capture({
      target: '/p',
      headers: { Host: 'evil.example/x' },
      vars: { SERVER_NAME: 'good.example', SERVER_PORT: '80' },
    });
    expect(seen.url).toBe('http://good.example/p');
  });

  it('re-encodes a rewritten path from SCRIPT_NAME and PATH_INFO', async () => {
    const { seen } = await capture({
      target: '/original?x=1',
      headers: { Host: 'h' },
      // A front-side rewrite: REQUEST_URI no longer matches SCRIPT_NAME + PATH_INFO.
      vars: {
        SCRIPT_NAME: '/app',
        PATH_INFO: Buffer.from('/new path/ü', 'utf8'),
        QUERY_STRING: 'y=2',
      },
    });
    expect(seen.url).toBe('http://h/app/new%20path/%C3%BC?y=2');
  });

  it('keeps bytes that are not UTF-8 (ISO-8859-1 fallback)', async () => {
    const { seen, res } = await capture({ target: '/caf%E9?q=%E9', headers: { Host: 'h' } });
    expect(res.environ['tsgi.uri_encoding']).toBe('iso-8859-1');
    expect(seen.url).toBe('http://h/caf%E9?q=%E9');
  });

  it('carries the headers, Content-Type and Content-Length', async () => {
    const { seen } = await capture({
      method: 'POST',
      headers: [
        ['Host', 'h'],
        ['X-Multi', 'a'],
        ['X-Multi', 'b'],
        ['Content-Type', 'text/plain'],
        ['Cookie', 'a=1'],
        ['Cookie', 'b=2'],
      ],
      body: 'hello',
    });
    expect(Object.fromEntries(seen.headers)).toEqual({
      host: 'h',
      'x-multi': 'a, b',
      'content-type': 'text/plain',
      'content-length': '5',
      cookie: 'a=1; b=2',
    });
  });

  it('passes the environ as the second argument and an execution context as the third', async () => {
    const { args, res } = await capture({ target: '/' });
    expect(args[0]).toBe(res.environ);
    expect(typeof (args[1] as { waitUntil: unknown }).waitUntil).toBe('function');
  });

  it('logs a rejected waitUntil promise instead of failing', async () => {
    const res = await request(
      fromFetch((_r: Request, _env: unknown, ctx: { waitUntil(p: Promise<unknown>): void }) => {
        ctx.waitUntil(Promise.reject(new Error('background')));
        return new Response('ok');
      }),
    );
    await sleep(1);
    expect(res.status).toBe(200);
    expect(res.log.some((l) => l.level === 'error' && l.text.includes('background'))).toBe(true);
  });

  it('streams the body from tsgi.input as the handler reads it', async () => {
    const parts = Array.from({ length: 10 }, () => Buffer.alloc(10_000, 0x61));
    let firstChunk = 0;
    let receivedAfterFirst = 0;
    const res = await request(
      fromFetch(async (r, env) => {
        const reader = r.body!.getReader();
        const first = await reader.read();
        firstChunk = first.value!.length;
        receivedAfterFirst = env['tsgi.input'].received;
        await reader.cancel();
        return new Response('stopped early');
      }),
      { method: 'POST', body: parts, chunked: true, headers: { 'Content-Length': '100000' } },
    );
    expect(res.status).toBe(200);
    expect(firstChunk).toBe(10_000);
    // Nothing was read ahead: the rest is left for the adapter to drain.
    expect(receivedAfterFirst).toBe(10_000);
  });

  it('gives no body to a POST with Content-Length 0', async () => {
    const { seen } = await capture({ method: 'POST', body: '' });
    expect(seen.body).toBeNull();
  });

  it('hands tsgi.signal to the Request', async () => {
    let aborted = false;
    const res = await request(
      fromFetch((r) => {
        r.signal.addEventListener('abort', () => {
          aborted = true;
        });
        let i = 0;
        const body = new ReadableStream({
          async pull(c) {
            await sleep(1);
            c.enqueue(new TextEncoder().encode(`tick ${i++}\n`));
          },
        });
        return new Response(body);
      }),
      { disconnectAfterBytes: 30 },
    );
    expect(res.complete).toBe(false);
    expect(aborted).toBe(true);
  });

  it('answers 501 for a method Fetch cannot express', async () => {
    const res = await request(
      fromFetch(() => new Response('never')),
      { method: 'CONNECT' },
    );
    expect(res.status).toBe(501);
  });
});

describe('fromFetch: the Response', () => {
  const respond = (r: Response | (() => Response), req: Parameters<typeof request>[1] = {}) =>
    request(fromFetch(typeof r === 'function' ? r : () => r), req);

  it('takes the reason from statusText, or from the status table', async () => {
    expect((await respond(new Response('x', { status: 200, statusText: 'Fine' }))).statusLine).toBe(
      '200 Fine',
    );
    expect((await respond(new Response('x', { status: 418 }))).statusLine).toBe("418 I'm a Teapot");
    expect((await respond(new Response('x', { status: 599 }))).statusLine).toBe('599 Unknown');
  });

  it('sends each Set-Cookie on its own line', async () => {
    const h = new Headers({ 'Content-Type': 'text/plain' });
    h.append('Set-Cookie', 'a=1; Path=/');
    h.append('Set-Cookie', 'b=2, with comma; Expires=Wed, 21 Oct 2099 07:28:00 GMT');
    const res = await respond(new Response('x', { headers: h }));
    expect(res.headers).toEqual([
      ['content-type', 'text/plain'],
      ['set-cookie', 'a=1; Path=/'],
      ['set-cookie', 'b=2, with comma; Expires=Wed, 21 Oct 2099 07:28:00 GMT'],
    ]);
  });

  it('passes a Content-Length through and never adds one', async () => {
    const withCl = await respond(new Response('hello', { headers: { 'Content-Length': '5' } }));
    expect(withCl.header('content-length')).toBe('5');
    const without = await respond(new Response('hello'));
    expect(without.header('content-length')).toBeUndefined();
    expect(without.body.toString()).toBe('hello');
  });

  it('drops hop-by-hop headers', async () => {
    const res = await respond(
      new Response('x', {
        headers: { Connection: 'close', 'Keep-Alive': 'timeout=1', 'X-Ok': '1' },
      }),
    );
    expect(res.status).toBe(200);
    expect(res.headers).toEqual([
      ['content-type', 'text/plain;charset=UTF-8'],
      ['x-ok', '1'],
    ]);
  });

  it('streams the body: chunks reach the transport as produced', async () => {
    const res = await respond(() => {
      let i = 0;
      return new Response(
        new ReadableStream({
          async pull(c) {
            if (i === 4) return c.close();
            await sleep(1);
            c.enqueue(new TextEncoder().encode(`part ${i++};`));
          },
        }),
      );
    });
    expect(res.body.toString()).toBe('part 0;part 1;part 2;part 3;');
    expect(res.transport.chunks.length).toBe(4);
  });

  it('sends a null body as an empty one', async () => {
    const res = await respond(new Response(null, { status: 204 }));
    expect(res.statusLine).toBe('204 No Content');
    expect(res.body.length).toBe(0);
    expect(res.complete).toBe(true);
  });

  it('turns a thrown error, a non-Response and Response.error() into the core 500', async () => {
    const thrown = await request(
      fromFetch(() => {
        throw new Error('handler boom');
      }),
    );
    expect(thrown.status).toBe(500);
    expect(thrown.log.some((l) => l.text.includes('handler boom'))).toBe(true);
    const notResponse = await request(fromFetch((() => ({ hello: 1 })) as unknown as FetchHandler));
    expect(notResponse.status).toBe(500);
    expect(
      notResponse.log.some((l) =>
        l.text.includes('bridges: the Fetch handler resolved to an object with keys [hello]'),
      ),
    ).toBe(true);
    const networkError = await respond(Response.error());
    expect(networkError.status).toBe(500);
  });

  it('aborts the response when its body stream fails midway', async () => {
    const res = await respond(() => {
      let i = 0;
      return new Response(
        new ReadableStream({
          pull(c) {
            if (i++ === 2) throw new Error('stream broke');
            c.enqueue(new TextEncoder().encode('data;'));
          },
        }),
      );
    });
    expect(res.status).toBe(200);
    expect(res.complete).toBe(false);
    expect(res.body.toString()).toBe('data;data;');
  });

  it('accepts an object with a fetch method and calls it as a method', async () => {
    const app = {
      greeting: 'hi from this',
      fetch(this: { greeting: string }) {
        return new Response(this.greeting);
      },
    };
    const res = await request(fromFetch(app));
    expect(res.body.toString()).toBe('hi from this');
  });

  it('refuses what is not a Fetch handler', () => {
    expect(() => fromFetch({} as never)).toThrow(/bridges: fromFetch needs a function/);
  });
});
