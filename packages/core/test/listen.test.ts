import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { staleSocket } from '../../../test/harness/run.js';
import { isStaleSocket, listenServer } from '../src/index.js';

const close = (s: net.Server) => new Promise<void>((r) => s.close(() => r()));

describe('listenServer and isStaleSocket', () => {
  let dir: string;
  const servers: net.Server[] = [];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tsgi-listen-'));
  });
  afterEach(async () => {
    for (const s of servers.splice(0)) if (s.listening) await close(s);
    await rm(dir, { recursive: true, force: true });
  });

  it('replaces a stale socket, applies the mode, and then answers', async () => {
    const path = join(dir, 'a.sock');
    staleSocket(path);
    expect(await isStaleSocket(path)).toBe(true);
    const server = net.createServer((c) => {
      c.on('error', () => {}); // isStaleSocket's probe leaves at once
      c.end('hi');
    });
    servers.push(server);
    await listenServer(server, { path, mode: 0o660 }, { name: 'scgi' });
    expect((await stat(path)).mode & 0o777).toBe(0o660);
    expect(await isStaleSocket(path)).toBe(false);
    const got = await new Promise<string>((resolve) => {
      const c = net.connect({ path });
      let s = '';
      c.on('data', (d) => (s += d));
      c.on('close', () => resolve(s));
    });
    expect(got).toBe('hi');
  });

  it('refuses a socket a live server answers on, naming the adapter', async () => {
    const path = join(dir, 'b.sock');
    const live = net.createServer();
    servers.push(live);
    await listenServer(live, { path }, { name: 'fastcgi' });
    const second = net.createServer();
    const e = await listenServer(second, { path }, { name: 'fastcgi' }).then(
      () => undefined,
      (x: unknown) => x as { code?: string; message?: string },
    );
    expect(e?.code).toBe('ERR_FASTCGI_ADDRESS_IN_USE');
    expect(e?.message).toBe(`fastcgi: ${path} is in use by a running server`);
  });

  it('never removes what is not a socket: a regular file stays, the bind error stands', async () => {
    const path = join(dir, 'data.txt');
    await writeFile(path, 'keep me');
    expect(await isStaleSocket(path)).toBe(false);
    expect(await isStaleSocket(join(dir, 'missing.sock'))).toBe(false);
    const e = await listenServer(net.createServer(), { path }, { name: 'scgi' }).then(
      () => undefined,
      (x: unknown) => x as NodeJS.ErrnoException,
    );
    expect(e?.code).toBe('EADDRINUSE');
    expect(await readFile(path, 'utf8')).toBe('keep me');
  });

  it('TCP: 127.0.0.1 when no host is given', async () => {
    const server = net.createServer();
    servers.push(server);
    await listenServer(server, { port: 0 }, { name: 'scgi' });
    expect((server.address() as net.AddressInfo).address).toBe('127.0.0.1');
  });
});
