import { Buffer } from 'node:buffer';
import { getHeader } from './headers.js';
import { declareNeedsBody, isResponseObject } from './run.js';
import { statusLine } from './status.js';
import type { Application, Body, Chunk, HeaderList, ResponseObject } from './types.js';

// node:zlib is loaded on first use: importing @tsgi/core must not cost every app (a CGI
// script pays for each module it loads, on every request) for a middleware it may not use.
let zlib: typeof import('node:zlib') | undefined;
async function compressBytes(encoding: 'br' | 'gzip', raw: Buffer): Promise<Buffer> {
  zlib ??= await import('node:zlib');
  const z = zlib;
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, out: Buffer) => (err ? reject(err) : resolve(out));
    if (encoding === 'br') {
      z.brotliCompress(raw, { params: { [z.constants.BROTLI_PARAM_SIZE_HINT]: raw.length } }, done);
    } else {
      z.gzip(raw, done);
    }
  });
}

/** CompressOptions: which encodings, which types, and how much body may be buffered. */
export interface CompressOptions {
  /** Encodings in order of preference. Default `['br', 'gzip']`. */
  encodings?: Array<'br' | 'gzip'>;
  /** Bodies shorter than this are sent as they are. Default 256. */
  minBytes?: number;
  /** Bodies longer than this are streamed uncompressed. Default 8 MiB. */
  maxBufferBytes?: number;
  /** Content types worth compressing. Default: text/*, JSON, JavaScript, XML, SVG. */
  types?: RegExp;
}

const DEFAULT_TYPES =
  /^(text\/|application\/(json|javascript|xml|[a-z.+-]*\+(json|xml))|image\/svg\+xml)/i;

/**
 * compress: gzip/brotli middleware. It buffers the inner body (up to `maxBufferBytes`)
 * so that it can set a correct Content-Length together with Content-Encoding and
 * `Vary: Accept-Encoding`. Because its headers depend on the body, it declares that it
 * needs the body on HEAD (`declareNeedsBody`): with `mapHeadToGet: 'auto'` the gateway
 * presents HEAD as GET to it, and HEAD then gets exactly GET's headers (HEAD seed).
 */
export function compress(app: Application, options: CompressOptions = {}): Application {
  const encodings = options.encodings ?? ['br', 'gzip'];
  const minBytes = options.minBytes ?? 256;
  const maxBuffer = options.maxBufferBytes ?? 8 * 1024 * 1024;
  const types = options.types ?? DEFAULT_TYPES;

  const wrapped: Application = async (environ, _startResponse) => {
    let captured: { status: string; headers: HeaderList } | undefined;
    const written: Buffer[] = [];
    const inner = await app(environ, (status, headers, excInfo) => {
      if (captured && excInfo === undefined)
        throw new Error('compress: startResponse called twice');
      captured = { status, headers: [...headers] };
      return async (chunk: Chunk) => {
        written.push(toBuf(chunk));
      };
    });
    let body: Body | Chunk | null | undefined;
    if (isResponseObject(inner)) {
      captured = {
        status: typeof inner.status === 'number' ? statusLine(inner.status) : inner.status,
        headers: [...(inner.headers ?? [])],
      };
      body = inner.body;
    } else {
      body = inner as Body;
    }
    const chunks = iterate(body);
    // Collect up to maxBuffer bytes; startResponse may be called lazily by a generator.
    const parts: Buffer[] = [...written];
    let size = parts.reduce((n, p) => n + p.length, 0);
    let overflow = false;
    let first = await chunks.next();
    while (!first.done) {
      const b = toBuf(first.value);
      parts.push(b);
      size += b.length;
      if (size > maxBuffer) {
        overflow = true;
        break;
      }
      first = await chunks.next();
    }
    if (!captured) throw new Error('compress: the inner app never called startResponse');
    const headers = captured.headers.filter(([n]) => n.toLowerCase() !== 'vary');
    const vary = getHeader(captured.headers, 'vary');
    const code = Number(captured.status.slice(0, 3));
    const type = getHeader(headers, 'content-type') ?? '';
    const encoding = chooseEncoding(String(environ.HTTP_ACCEPT_ENCODING ?? ''), encodings);
    const eligible =
      code === 200 &&
      !overflow &&
      size >= minBytes &&
      types.test(type) &&
      getHeader(headers, 'content-encoding') === undefined &&
      !/(^|,)\s*no-transform\s*(,|$)/i.test(getHeader(headers, 'cache-control') ?? '');
    // The response varies with Accept-Encoding whenever it could have been compressed.
    if (code === 200 && types.test(type)) {
      headers.push([
        'Vary',
        vary
          ? /accept-encoding/i.test(vary)
            ? vary
            : `${vary}, Accept-Encoding`
          : 'Accept-Encoding',
      ]);
    } else if (vary) {
      headers.push(['Vary', vary]);
    }
    if (eligible && encoding !== undefined) {
      const raw = Buffer.concat(parts, size);
      const out = await compressBytes(encoding, raw);
      const kept = headers.filter(([n]) => {
        const l = n.toLowerCase();
        return l !== 'content-length' && l !== 'etag';
      });
      kept.push(['Content-Encoding', encoding], ['Content-Length', String(out.length)]);
      await chunks.return?.(undefined);
      return { status: captured.status, headers: kept, body: [out] } satisfies ResponseObject;
    }
    // Not compressed: pass the buffered part and whatever remains, untouched.
    async function* rest() {
      try {
        yield* parts;
        if (overflow) {
          for (let r = await chunks.next(); !r.done; r = await chunks.next()) yield r.value;
        }
      } finally {
        await chunks.return?.(undefined);
      }
    }
    return { status: captured.status, headers, body: rest() } satisfies ResponseObject;
  };
  return declareNeedsBody(wrapped);
}

function toBuf(c: Chunk): Buffer {
  return typeof c === 'string'
    ? Buffer.from(c, 'latin1')
    : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
}

async function* iterate(body: Body | Chunk | null | undefined): AsyncGenerator<Chunk> {
  if (body === null || body === undefined) return;
  if (typeof body === 'string' || body instanceof Uint8Array) {
    yield body;
    return;
  }
  const b = body as unknown as Record<string | symbol, any>;
  try {
    if (typeof b.getReader === 'function') {
      const reader = (body as ReadableStream<Chunk>).getReader();
      try {
        for (;;) {
          const r = await reader.read();
          if (r.done) return;
          yield r.value;
        }
      } finally {
        reader.releaseLock();
      }
    }
    yield* body as AsyncIterable<Chunk>;
  } finally {
    if (typeof b.close === 'function') await b.close();
  }
}

/** Picks the first of `supported` that Accept-Encoding allows with q > 0 (RFC 9110 section 12.5.3). */
function chooseEncoding(
  accept: string,
  supported: Array<'br' | 'gzip'>,
): 'br' | 'gzip' | undefined {
  const q = new Map<string, number>();
  for (const part of accept.split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    if (!name) continue;
    let weight = 1;
    for (const p of params) {
      const m = /^\s*q=([0-9.]+)\s*$/.exec(p);
      if (m) weight = Number(m[1]);
    }
    q.set(name, weight);
  }
  for (const enc of supported) {
    const w = q.get(enc) ?? q.get('*');
    if (w !== undefined && w > 0) return enc;
  }
  return undefined;
}
