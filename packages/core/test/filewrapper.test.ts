// docs/SPEC.md rules 9.1 and 9.2: tsgi.file_wrapper, and Content-Length capping it.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Application, FileWrapper, type FileWrapperOptions, fileWrapper } from '@tsgi/core';
import { request } from '@tsgi/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let dir: string;
let file: string;
// 100 000 deterministic bytes: byte i is (i * 7 + i >> 8) & 0xff
const DATA = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7 + (i >> 8)) & 0xff));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsgi-fw-test-'));
  file = join(dir, 'data.bin');
  await writeFile(file, DATA);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect(fw: FileWrapper): Promise<{ bytes: Buffer; sizes: number[] }> {
  const parts: Uint8Array[] = [];
  for await (const c of fw) parts.push(c);
  return { bytes: Buffer.concat(parts), sizes: parts.map((p) => p.length) };
}

const handleOf = (fw: FileWrapper) =>
  (fw as unknown as { handle: import('node:fs/promises').FileHandle | undefined }).handle;

describe('the file wrapper [9.1]', () => {
  it('[9.1] reads the whole file in chunkSize pieces', async () => {
    const { bytes, sizes } = await collect(new FileWrapper(file, { chunkSize: 30_000 }));
    expect(bytes.equals(DATA)).toBe(true);
    expect(sizes).toEqual([30_000, 30_000, 30_000, 10_000]);
  });

  it('[9.1] offset and length select a byte range', async () => {
    const table: Array<[FileWrapperOptions, Buffer]> = [
      [{ offset: 1000, length: 5000 }, DATA.subarray(1000, 6000)],
      [{ offset: 99_990 }, DATA.subarray(99_990)],
      [{ offset: 99_990, length: 500 }, DATA.subarray(99_990)],
      [{ offset: 200_000 }, Buffer.alloc(0)],
      [{ length: 0 }, Buffer.alloc(0)],
      [{ offset: 7, length: 3, chunkSize: 1 }, DATA.subarray(7, 10)],
    ];
    for (const [options, want] of table) {
      const { bytes } = await collect(new FileWrapper(file, options));
      expect(bytes.equals(want)).toBe(true);
    }
  });

  it('[9.1] limit() lowers what is left to send, never raises it', async () => {
    const fw = new FileWrapper(file, { offset: 10, length: 100 });
    fw.limit(1000);
    fw.limit(40);
    fw.limit(60);
    expect((await collect(fw)).bytes.equals(DATA.subarray(10, 50))).toBe(true);
  });

  it('[9.1] a path is opened lazily and closed by close(), which is idempotent', async () => {
    const fw = fileWrapper(file, { length: 10 });
    expect(fw).toBeInstanceOf(FileWrapper);
    expect(fw.tsgiFileWrapper).toBe(true);
    expect(handleOf(fw)).toBeUndefined();
    await collect(fw);
    const h = handleOf(fw)!;
    expect(h.fd).toBeGreaterThan(0);
    await fw.close();
    expect(h.fd).toBe(-1);
    await fw.close();
  });

  it('[9.1] a FileHandle given by the app is read but not closed', async () => {
    const h = await open(file, 'r');
    try {
      const fw = fileWrapper(h, { offset: 5, length: 5 });
      expect((await collect(fw)).bytes.equals(DATA.subarray(5, 10))).toBe(true);
      await fw.close();
      expect(h.fd).toBeGreaterThan(0);
      expect((await h.stat()).size).toBe(DATA.length);
    } finally {
      await h.close();
    }
  });

  it('[9.1] after close() iteration yields nothing more', async () => {
    const fw = new FileWrapper(file, { chunkSize: 10 });
    const it = fw[Symbol.asyncIterator]();
    expect((await it.next()).value?.length).toBe(10);
    await fw.close();
    expect((await it.next()).done).toBe(true);
  });

  it('[9.1] environ tsgi.file_wrapper is this factory', async () => {
    let made: unknown;
    const res = await request((e, sr) => {
      sr('200 OK', [['Content-Length', '4']]);
      made = e['tsgi.file_wrapper'](file, { length: 4 });
      return made as FileWrapper;
    });
    expect(made).toBeInstanceOf(FileWrapper);
    expect(res.body.equals(DATA.subarray(0, 4))).toBe(true);
  });

  it('[9.1][7.1] a missing file is a 500 when nothing was sent yet', async () => {
    const res = await request((e, sr) => {
      sr('200 OK', []);
      return e['tsgi.file_wrapper'](join(dir, 'missing'));
    });
    expect(res.status).toBe(500);
    expect(res.log[0]!.text).toContain('ENOENT');
  });
});

describe('Content-Length caps the file wrapper [9.2]', () => {
  const serve =
    (cl: number | undefined, options: FileWrapperOptions): Application =>
    (e, sr) => {
      sr('200 OK', cl === undefined ? [] : [['Content-Length', String(cl)]]);
      return e['tsgi.file_wrapper'](file, { chunkSize: 4096, ...options });
    };

  it('[9.2] a byte range: offset 1000 and Content-Length 5000 send exactly bytes 1000-5999', async () => {
    const res = await request(serve(5000, { offset: 1000 }));
    expect(res.body.equals(DATA.subarray(1000, 6000))).toBe(true);
    expect(res.complete).toBe(true);
    expect(res.transport.calls[res.transport.calls.length - 1]).toBe('end');
    expect(res.log).toEqual([]);
  });

  it('[9.2] Content-Length below the wrapper length wins; no abort, nothing past it read', async () => {
    let fw: FileWrapper | undefined;
    const res = await request((e, sr) => {
      sr('206 Partial Content', [
        ['Content-Range', 'bytes 0-99/100000'],
        ['Content-Length', '100'],
      ]);
      fw = e['tsgi.file_wrapper'](file, { length: 50_000 }) as FileWrapper;
      return fw;
    });
    expect(res.body.equals(DATA.subarray(0, 100))).toBe(true);
    expect(res.complete).toBe(true);
    expect(res.transport.chunks.map((c) => c.length)).toEqual([100]);
  });

  it('[9.2] the whole rest of the file without Content-Length', async () => {
    const res = await request(serve(undefined, { offset: 50_000 }));
    expect(createHash('sha256').update(res.body).digest('hex')).toBe(
      createHash('sha256').update(DATA.subarray(50_000)).digest('hex'),
    );
  });

  it('[9.2][5.3] a file shorter than Content-Length is reported and aborted', async () => {
    const res = await request(serve(100, { offset: 99_950 }));
    expect(res.body.equals(DATA.subarray(99_950))).toBe(true);
    expect(res.complete).toBe(false);
    expect(res.aborted?.message).toBe(
      'core: the app sent 50 bytes but declared Content-Length 100',
    );
  });

  it('[9.2][3.2] the response-object style is capped the same way', async () => {
    const res = await request((e) => ({
      status: 200,
      headers: [['Content-Length', '10']],
      body: e['tsgi.file_wrapper'](file),
    }));
    expect(res.body.equals(DATA.subarray(0, 10))).toBe(true);
    expect(res.complete).toBe(true);
  });

  it('[9.2][6.1] the gateway closes the wrapper once, and with it the file it opened', async () => {
    let fw: FileWrapper | undefined;
    let closes = 0;
    await request((e, sr) => {
      sr('200 OK', [['Content-Length', '10']]);
      fw = e['tsgi.file_wrapper'](file) as FileWrapper;
      const orig = fw.close.bind(fw);
      fw.close = () => {
        closes++;
        return orig();
      };
      return fw;
    });
    expect(closes).toBe(1);
    expect(handleOf(fw!)?.fd).toBe(-1);
  });
});
