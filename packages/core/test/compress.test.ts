// docs/SPEC.md rules 12.1-12.4 (the compression middleware) and its use of 8.3.
import { Buffer } from 'node:buffer';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { type Application, compress, type HeaderList, needsBody } from '@tsgi/core';
import { request, type TestOptions } from '@tsgi/core/testing';
import { describe, expect, it } from 'vitest';

const PAGE = Buffer.from('<p>hello compressible world</p>\n'.repeat(64), 'latin1'); // 2048 bytes

function page(headers: HeaderList = [], body: Uint8Array = PAGE): Application {
  return (_e, sr) => {
    sr('200 OK', [
      ['Content-Type', 'text/html; charset=utf-8'],
      ['Content-Length', String(body.length)],
      ...headers,
    ]);
    return [body];
  };
}

async function get(app: Application, acceptEncoding?: string, options: TestOptions = {}) {
  return request(
    app,
    { headers: acceptEncoding === undefined ? {} : { 'Accept-Encoding': acceptEncoding } },
    options,
  );
}

describe('encoding negotiation [12.1]', () => {
  const table: Array<[string | undefined, 'br' | 'gzip' | undefined]> = [
    ['gzip', 'gzip'],
    ['br', 'br'],
    ['gzip, br', 'br'],
    ['br;q=0, gzip', 'gzip'],
    ['gzip;q=0, br', 'br'],
    ['gzip;q=0,br;q=0', undefined],
    ['BR;Q=0.5', 'br'],
    ['*', 'br'],
    ['*;q=0', undefined],
    ['gzip;q=0, *', 'br'],
    ['br;q=0, *;q=0.1', 'gzip'],
    ['identity', undefined],
    ['deflate', undefined],
    ['', undefined],
    [undefined, undefined],
  ];
  for (const [accept, want] of table) {
    it(`[12.1] Accept-Encoding ${JSON.stringify(accept)} -> ${want ?? 'identity'}`, async () => {
      const res = await get(compress(page()), accept);
      expect(res.header('content-encoding')).toBe(want);
      expect(res.complete).toBe(true);
      const plain =
        want === 'gzip'
          ? gunzipSync(res.body)
          : want === 'br'
            ? brotliDecompressSync(res.body)
            : res.body;
      expect(plain.equals(PAGE)).toBe(true);
    });
  }

  it('[12.1] the encodings option restricts and orders the choice', async () => {
    expect(
      (await get(compress(page(), { encodings: ['gzip'] }), 'br, gzip')).header('content-encoding'),
    ).toBe('gzip');
    expect(
      (await get(compress(page(), { encodings: ['gzip', 'br'] }), 'br, gzip')).header(
        'content-encoding',
      ),
    ).toBe('gzip');
    expect(
      (await get(compress(page(), { encodings: ['gzip'] }), 'br')).header('content-encoding'),
    ).toBeUndefined();
  });
});

describe('headers of a compressed response [12.2]', () => {
  it('[12.2][5.2] Content-Length is the compressed length; the transport gets exactly that', async () => {
    const res = await get(compress(page([['ETag', '"v1"']])), 'gzip');
    expect(res.header('content-length')).toBe(String(res.body.length));
    expect(res.body.length).toBeLessThan(PAGE.length);
    expect(gunzipSync(res.body).equals(PAGE)).toBe(true);
    expect(res.transport.calls).toEqual(['head', 'write', 'end']);
    // the strong ETag of the identity body no longer applies
    expect(res.header('etag')).toBeUndefined();
    expect(res.headers).toEqual([
      ['Content-Type', 'text/html; charset=utf-8'],
      ['Vary', 'Accept-Encoding'],
      ['Content-Encoding', 'gzip'],
      ['Content-Length', String(res.body.length)],
    ]);
  });

  it('[12.2] an existing Vary is extended, or kept when it already names Accept-Encoding', async () => {
    const a = await get(compress(page([['Vary', 'Cookie']])), 'gzip');
    expect(a.header('vary')).toBe('Cookie, Accept-Encoding');
    const b = await get(compress(page([['Vary', 'accept-encoding, Cookie']])), 'gzip');
    expect(b.header('vary')).toBe('accept-encoding, Cookie');
  });

  it('[12.2] Vary is added even when this client did not ask for compression', async () => {
    const res = await get(compress(page()));
    expect(res.header('content-encoding')).toBeUndefined();
    expect(res.header('vary')).toBe('Accept-Encoding');
    expect(res.header('content-length')).toBe(String(PAGE.length));
  });

  it('[12.2] brotli output decodes to the original', async () => {
    const res = await get(compress(page()), 'br');
    expect(res.header('content-length')).toBe(String(res.body.length));
    expect(brotliDecompressSync(res.body).equals(PAGE)).toBe(true);
  });
});

describe('HEAD through compression [12.3][8.3]', () => {
  // The app skips the body on HEAD (as many frameworks do): the seed's problem.
  const skipsOnHead: Application = (e, sr) => {
    sr('200 OK', [
      ['Content-Type', 'text/plain'],
      ['Content-Length', String(PAGE.length)],
    ]);
    return e.REQUEST_METHOD === 'HEAD' ? [] : [PAGE];
  };

  it('[12.3] compress declares that it needs the body', () => {
    expect(needsBody(compress(skipsOnHead))).toBe(true);
  });

  it('[12.3][8.3] mapHeadToGet auto: HEAD has exactly GET’s headers (identity)', async () => {
    const app = compress(skipsOnHead);
    for (const accept of ['gzip', 'br', undefined]) {
      const headers: Record<string, string> =
        accept === undefined ? {} : { 'Accept-Encoding': accept };
      const g = await request(app, { headers }, { mapHeadToGet: 'auto' });
      const h = await request(
        app,
        { method: 'HEAD', headers },
        { mapHeadToGet: 'auto', headBody: 'drop' },
      );
      expect(h.headers).toEqual(g.headers);
      expect(h.statusLine).toBe(g.statusLine);
      expect(h.transport.calls).toEqual(['head', 'end']);
      expect(h.environ.REQUEST_METHOD).toBe('GET');
    }
  });

  it('[12.3][8.3] without the mapping HEAD and GET differ (what the mapping is for)', async () => {
    const app = compress(skipsOnHead);
    const headers = { 'Accept-Encoding': 'gzip' };
    const g = await request(app, { headers });
    const h = await request(app, { method: 'HEAD', headers });
    expect(g.header('content-encoding')).toBe('gzip');
    expect(h.header('content-encoding')).toBeUndefined();
    expect(h.header('content-length')).toBe(String(PAGE.length));
  });
});

describe('when it does not compress [12.4]', () => {
  it('[12.4] bodies under minBytes are passed as they are', async () => {
    const small = Buffer.from('tiny', 'latin1');
    const res = await get(compress(page([], small)), 'gzip');
    expect(res.header('content-encoding')).toBeUndefined();
    expect(res.body.equals(small)).toBe(true);
    expect(res.header('content-length')).toBe('4');
    const lowered = await get(compress(page([], small), { minBytes: 1 }), 'gzip');
    expect(lowered.header('content-encoding')).toBe('gzip');
  });

  it('[12.4] bodies over maxBufferBytes stream through uncompressed, every byte', async () => {
    const chunks = Array.from({ length: 10 }, (_, i) => Buffer.alloc(1000, 0x61 + i));
    const app: Application = (_e, sr) =>
      (function* () {
        sr('200 OK', [['Content-Type', 'text/plain']]);
        yield* chunks;
      })();
    const res = await get(compress(app, { maxBufferBytes: 2500 }), 'gzip');
    expect(res.header('content-encoding')).toBeUndefined();
    expect(res.body.equals(Buffer.concat(chunks))).toBe(true);
    expect(res.complete).toBe(true);
  });

  it('[12.4] non-200, other types, already encoded, Cache-Control no-transform', async () => {
    const notFound: Application = (_e, sr) => {
      sr('404 Not Found', [['Content-Type', 'text/html']]);
      return [PAGE];
    };
    const nf = await get(compress(notFound), 'gzip');
    expect(nf.header('content-encoding')).toBeUndefined();
    expect(nf.header('vary')).toBeUndefined();
    expect(nf.body.equals(PAGE)).toBe(true);

    const png: Application = (_e, sr) => {
      sr('200 OK', [['Content-Type', 'image/png']]);
      return [PAGE];
    };
    const p = await get(compress(png), 'gzip');
    expect(p.header('content-encoding')).toBeUndefined();
    expect(p.header('vary')).toBeUndefined();

    const encoded = await get(compress(page([['Content-Encoding', 'x-custom']])), 'gzip');
    expect(encoded.header('content-encoding')).toBe('x-custom');
    expect(encoded.body.equals(PAGE)).toBe(true);

    const nt = await get(compress(page([['Cache-Control', 'public, no-transform']])), 'gzip');
    expect(nt.header('content-encoding')).toBeUndefined();
    expect(nt.body.equals(PAGE)).toBe(true);
  });

  it('[12.4] the types option decides what is compressible', async () => {
    const png: Application = (_e, sr) => {
      sr('200 OK', [['Content-Type', 'image/png']]);
      return [PAGE];
    };
    const res = await get(compress(png, { types: /^image\// }), 'gzip');
    expect(res.header('content-encoding')).toBe('gzip');
  });
});

describe('inner app styles [12.2][3.1][3.2][3.6]', () => {
  it('[12.2][3.4] a generator that calls startResponse lazily', async () => {
    const app: Application = (_e, sr) =>
      (function* () {
        sr('200 OK', [['Content-Type', 'text/plain']]);
        yield '';
        yield PAGE.subarray(0, 1000);
        yield PAGE.subarray(1000);
      })();
    const res = await get(compress(app), 'gzip');
    expect(gunzipSync(res.body).equals(PAGE)).toBe(true);
  });

  it('[12.2][3.6] write() then a returned body', async () => {
    const app: Application = async (_e, sr) => {
      const write = sr('200 OK', [['Content-Type', 'text/plain']]);
      await write(PAGE.subarray(0, 100));
      return [PAGE.subarray(100)];
    };
    const res = await get(compress(app), 'gzip');
    expect(gunzipSync(res.body).equals(PAGE)).toBe(true);
  });

  it('[12.2][3.2] a response object, with a ReadableStream body', async () => {
    const app: Application = () => ({
      status: 200,
      headers: [['Content-Type', 'application/json']],
      body: new ReadableStream({
        start(c) {
          c.enqueue(PAGE.subarray(0, 10));
          c.enqueue(PAGE.subarray(10));
          c.close();
        },
      }),
    });
    const res = await get(compress(app), 'br');
    expect(res.header('content-encoding')).toBe('br');
    expect(brotliDecompressSync(res.body).equals(PAGE)).toBe(true);
  });

  it('[12.2][6.1] the inner body is closed once, compressed or not', async () => {
    for (const accept of ['gzip', undefined]) {
      let closes = 0;
      const app: Application = (_e, sr) => {
        sr('200 OK', [['Content-Type', 'text/plain']]);
        return Object.assign([PAGE], { close: () => void closes++ });
      };
      const res = await get(compress(app), accept);
      expect(res.complete).toBe(true);
      expect(closes).toBe(1);
    }
  });

  it('[12.2][7.1] an inner app that never calls startResponse is a 500', async () => {
    const res = await get(
      compress(() => []),
      'gzip',
    );
    expect(res.status).toBe(500);
    expect(
      res.log[0]!.text.startsWith(
        'core: GET /: Error: compress: the inner app never called startResponse',
      ),
    ).toBe(true);
  });
});
