// Every example in examples/ served by `tsgi http` and checked with a real client (curl).
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { curl } from '../harness/clients.js';
import { ensureBuilt, Tsgi } from './cli.js';

const running: Tsgi[] = [];
const dir = mkdtempSync(join(tmpdir(), 'tsgi-examples-'));
beforeAll(ensureBuilt, 180_000);
afterAll(async () => {
  for (const t of running) {
    t.kill('SIGKILL');
    await t.exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

async function serve(example: string, extra: string[] = [], env?: NodeJS.ProcessEnv) {
  const t = new Tsgi(['http', '--listen', '127.0.0.1:0', ...extra, `examples/${example}`], env);
  running.push(t);
  return t.listening();
}

/** curl -i: status line, headers and body (interim 1xx responses skipped). */
async function curlI(args: string[]) {
  const r = await curl(['-i', ...args]);
  expect(r.code, r.stderr).toBe(0);
  let raw = r.stdout;
  let i = raw.indexOf('\r\n\r\n');
  // curl sends Expect: 100-continue for larger uploads; the 100 comes first.
  while (/^HTTP\/1\.1 1[0-9][0-9] /.test(raw.subarray(0, i).toString('latin1'))) {
    raw = raw.subarray(i + 4);
    i = raw.indexOf('\r\n\r\n');
  }
  const head = raw.subarray(0, i).toString('latin1');
  const header = (name: string) =>
    new RegExp(`^${name}: (.*)$`, 'im').exec(head)?.[1]?.trim() ?? undefined;
  const bytes = raw.subarray(i + 4);
  return {
    status: Number(head.split(' ')[1]),
    head,
    header,
    bytes,
    body: bytes.toString('latin1'),
    json: () => JSON.parse(bytes.toString('utf8')),
  };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('examples through tsgi http', () => {
  test('hello.mjs: startResponse style', async () => {
    const url = await serve('hello.mjs');
    const r = await curlI([`${url}/`]);
    expect(r.status).toBe(200);
    expect(r.header('content-length')).toBe('14');
    expect(r.body).toBe('Hello, World!\n');
  });

  test('hello-object.mjs: { status, headers, body } style', async () => {
    const url = await serve('hello-object.mjs');
    const r = await curlI([`${url}/?name=tsgi`]);
    expect(r.status).toBe(200);
    expect(r.header('content-type')).toBe('text/plain; charset=utf-8');
    expect(r.body).toBe('Hello, tsgi!\n');
    // HEAD: the same headers, no body.
    const h = await curlI(['-I', `${url}/?name=tsgi`]);
    expect(h.header('content-length')).toBe('13');
    expect(h.body).toBe('');
  });

  test('streaming.mjs: an async generator, chunked, chunks leave as they are produced', async () => {
    const url = await serve('streaming.mjs');
    const t0 = Date.now();
    const r = await curlI(['-N', `${url}/?count=4&delay=100`]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    expect(r.header('transfer-encoding')).toBe('chunked');
    expect(r.header('content-length')).toBeUndefined();
    expect(r.body).toBe('chunk 1 of 4\nchunk 2 of 4\nchunk 3 of 4\nchunk 4 of 4\n');
  });

  test('upload.mjs: size and sha256, with Content-Length and chunked', async () => {
    const url = await serve('upload.mjs');
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const file = join(dir, 'upload.bin');
    writeFileSync(file, data);
    const want = { size: data.length, sha256: sha256(data) };
    const a = await curlI(['--data-binary', `@${file}`, `${url}/`]);
    expect(a.json()).toEqual(want);
    const b = await curlI([
      '-H',
      'Transfer-Encoding: chunked',
      '--data-binary',
      `@${file}`,
      `${url}/`,
    ]);
    expect(b.json()).toEqual(want);
    const empty = await curlI(['-X', 'POST', `${url}/`]);
    expect(empty.json()).toEqual({ size: 0, sha256: sha256(Buffer.alloc(0)) });
  });

  test('download.mjs: 200, 206 ranges, 416, HEAD, no escape from the root', async () => {
    const root = join(dir, 'files');
    const data = randomBytes(100_000);
    mkdirSync(root);
    writeFileSync(join(root, 'data.bin'), data);
    const url = await serve('download.mjs', [], { DOWNLOAD_ROOT: root });
    const f = `${url}/data.bin`;

    const whole = await curl(['-s', f]);
    expect(whole.stdout.equals(data)).toBe(true);

    const part = await curlI(['-r', '1000-1999', f]);
    expect(part.status).toBe(206);
    expect(part.header('content-range')).toBe(`bytes 1000-1999/${data.length}`);
    expect(part.header('content-length')).toBe('1000');
    expect(part.bytes.equals(data.subarray(1000, 2000))).toBe(true);

    const suffix = await curlI(['-r', '-500', f]);
    expect(suffix.status).toBe(206);
    expect(suffix.bytes.equals(data.subarray(data.length - 500))).toBe(true);

    const open = await curlI(['-r', '99990-', f]);
    expect(open.header('content-range')).toBe(`bytes 99990-99999/${data.length}`);
    expect(open.body.length).toBe(10);

    const bad = await curlI(['-r', '200000-', f]);
    expect(bad.status).toBe(416);
    expect(bad.header('content-range')).toBe(`bytes */${data.length}`);

    const head = await curlI(['-I', f]);
    expect(head.status).toBe(200);
    expect(head.header('content-length')).toBe(String(data.length));
    expect(head.header('accept-ranges')).toBe('bytes');
    expect(head.body).toBe('');

    // If-Range with a stale validator: the whole file, not the range.
    const stale = await curlI(['-r', '0-9', '-H', 'If-Range: "old"', f]);
    expect(stale.status).toBe(200);

    for (const p of ['/%2e%2e/package.json', '/..%2fpackage.json', '/missing.bin', '/']) {
      const r = await curlI(['--path-as-is', `${url}${p}`]);
      expect(r.status, p).toBe(404);
    }
  });

  test('environ.mjs: the environ as JSON, under a mount point', async () => {
    const url = await serve('environ.mjs', ['--mount', '/app']);
    const r = await curlI(['-H', 'X_Smuggled: 1', '-H', 'X-Real: 2', `${url}/app/caf%C3%A9?x=1`]);
    const e = r.json();
    expect(e.SCRIPT_NAME).toBe('/app');
    expect(e.PATH_INFO).toBe('/café');
    expect(e.QUERY_STRING).toBe('x=1');
    expect(e.REQUEST_URI).toBe('/app/caf%C3%A9?x=1');
    expect(e.HTTP_X_REAL).toBe('2');
    expect(e.HTTP_X_SMUGGLED).toBeUndefined();
    expect(e['tsgi.version']).toEqual([1, 1]);
    expect(e['tsgi.url_scheme']).toBe('http');
    expect(e['tsgi.input_terminated']).toBe(true);
  });
});
