/**
 * Tiny backends for the harness self-test (and handy for adapter tests that need a known-good
 * backend): a shell CGI script, a Node SCGI responder, a Node HTTP server, and a TCP proxy that
 * counts connections. They all answer with a `NAME=value` dump, parsed by parseDump.
 */
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SocketBackend, TcpBackend } from './types.js';

export const md5 = (b: Buffer | string) => createHash('md5').update(b).digest('hex');

/** `NAME=value` lines → object (first occurrence wins; `<unset>` kept as written). */
export function parseDump(body: Buffer | string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of body.toString('utf8').split('\n')) {
    const i = line.indexOf('=');
    if (i <= 0) continue;
    const k = line.slice(0, i);
    if (!(k in out)) out[k] = line.slice(i + 1);
  }
  return out;
}

/** Marker the dumps use for a variable that is not set at all (as opposed to empty). */
export const UNSET = '<unset>';

/**
 * A POSIX shell CGI script. Default: dumps the CGI variables, where `node` resolves on PATH,
 * and the md5 of stdin (read to EOF). `?mode=cl`: a 6-byte body with its own Content-Length,
 * sent in two parts 0.2 s apart (Apache computes a Content-Length itself when the whole body
 * arrives at once, which would hide whether it kept the script's).
 * `?mode=redirect`: nothing but `Location: /redirect-target.txt` (a local redirect per RFC 3875
 * 6.2.2; outside the script's own URL space, because lighttpd refuses local redirects back under
 * SCRIPT_NAME and answers 302 instead). `?mode=sleep`: writes its pid to $TSGI_PIDFILE and sleeps 30 s.
 */
export const CGI_DUMP_SCRIPT = `#!/bin/sh
case "$QUERY_STRING" in
  mode=cl)
    printf 'Content-Type: text/plain\\r\\nContent-Length: 6\\r\\n\\r\\nhel'
    sleep 0.2
    printf 'lo\\n'
    exit 0 ;;
  mode=redirect)
    printf 'Location: /redirect-target.txt\\r\\n\\r\\n'
    exit 0 ;;
  mode=sleep)
    echo $$ > "$TSGI_PIDFILE"
    exec sleep 30 ;;
esac
printf 'Status: 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\n'
echo "REQUEST_METHOD=\${REQUEST_METHOD-<unset>}"
echo "SCRIPT_NAME=\${SCRIPT_NAME-<unset>}"
echo "PATH_INFO=\${PATH_INFO-<unset>}"
echo "QUERY_STRING=\${QUERY_STRING-<unset>}"
echo "REQUEST_URI=\${REQUEST_URI-<unset>}"
echo "CONTENT_LENGTH=\${CONTENT_LENGTH-<unset>}"
echo "HTTP_TRANSFER_ENCODING=\${HTTP_TRANSFER_ENCODING-<unset>}"
echo "SCRIPT_FILENAME=\${SCRIPT_FILENAME-<unset>}"
echo "GATEWAY_INTERFACE=\${GATEWAY_INTERFACE-<unset>}"
printf 'NODE=%s\\n' "$(command -v node || echo missing)"
printf 'MD5=%s\\n' "$(md5sum | cut -d' ' -f1)"
`;

export interface TempScript {
  dir: string;
  script: string;
  remove(): Promise<void>;
}

/** Write an executable script into a fresh temp dir (0755 dir, 0755 file). */
export async function writeTempScript(
  source = CGI_DUMP_SCRIPT,
  name = 'app.cgi',
): Promise<TempScript> {
  const dir = await mkdtemp(join(tmpdir(), 'tsgi-fixture-'));
  await chmod(dir, 0o755);
  const script = join(dir, name);
  await writeFile(script, source, { mode: 0o755 });
  await chmod(script, 0o755);
  return { dir, script, remove: () => rm(dir, { recursive: true, force: true }) };
}

export interface ListeningFixture<B> {
  backend: B;
  /** Number of TCP connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

function listen(server: Server | http.Server): Promise<TcpBackend> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
    });
  });
}

function closeServer(server: Server | http.Server, sockets: Set<Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((r) => server.close(() => r()));
}

/**
 * Minimal SCGI responder: parses the netstring header block, reads CONTENT_LENGTH body bytes,
 * answers `Status: 200 OK` + text/plain + one `NAME=value` line per header (in order) + MD5.
 */
export async function startScgiDump(
  where: { socketDir?: string } = {},
): Promise<ListeningFixture<TcpBackend | SocketBackend>> {
  let count = 0;
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    count++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    let headers: [string, string][] | undefined;
    let need = 0;
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!headers) {
        const colon = buf.indexOf(0x3a);
        if (colon < 0) return;
        const len = Number(buf.subarray(0, colon).toString('latin1'));
        if (buf.length < colon + 1 + len + 1) return;
        const block = buf.subarray(colon + 1, colon + 1 + len).toString('latin1');
        if (buf[colon + 1 + len] !== 0x2c) {
          sock.end('Status: 500 Bad netstring\r\n\r\n');
          return;
        }
        const parts = block.split('\0');
        headers = [];
        for (let i = 0; i + 1 < parts.length; i += 2) headers.push([parts[i], parts[i + 1]]);
        need = Number(headers.find(([k]) => k === 'CONTENT_LENGTH')?.[1] ?? '0');
        buf = buf.subarray(colon + 1 + len + 1);
      }
      if (buf.length < need) return;
      sock.off('data', onData);
      const body = buf.subarray(0, need);
      const lines = headers.map(([k, v]) => `${k}=${v}`).join('\n');
      sock.end(
        `Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n${lines}\nMD5=${md5(body)}\n`,
        'latin1',
      );
    };
    sock.on('data', onData);
  });
  let backend: TcpBackend | SocketBackend;
  if (where.socketDir !== undefined) {
    const socket = join(where.socketDir, 'scgi.sock');
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socket, () => resolve());
    });
    await chmod(socket, 0o666);
    backend = { socket };
  } else {
    backend = await listen(server);
  }
  return { backend, connections: () => count, close: () => closeServer(server, sockets) };
}

/** node:http backend answering a dump of the request: METHOD, URL, a few headers, MD5. */
export async function startHttpDump(
  where: { socketDir?: string } = {},
): Promise<ListeningFixture<TcpBackend | SocketBackend>> {
  let count = 0;
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const h = (n: string) => {
        const v = req.headers[n];
        return v === undefined ? UNSET : Array.isArray(v) ? v.join(', ') : v;
      };
      const lines = [
        `METHOD=${req.method}`,
        `URL=${req.url}`,
        `HTTP_VERSION=${req.httpVersion}`,
        `HOST=${h('host')}`,
        `X_FORWARDED_FOR=${h('x-forwarded-for')}`,
        `CONTENT_LENGTH=${h('content-length')}`,
        `TRANSFER_ENCODING=${h('transfer-encoding')}`,
        `CONNECTION=${h('connection')}`,
        `MD5=${md5(Buffer.concat(chunks))}`,
      ];
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(`${lines.join('\n')}\n`);
    });
  });
  server.on('connection', (s) => {
    count++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  let backend: TcpBackend | SocketBackend;
  if (where.socketDir !== undefined) {
    const socket = join(where.socketDir, 'http.sock');
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socket, () => resolve());
    });
    await chmod(socket, 0o666);
    backend = { socket };
  } else {
    backend = await listen(server);
  }
  return { backend, connections: () => count, close: () => closeServer(server, sockets) };
}

/**
 * TCP pass-through to `target` that counts connections: shows whether a front reuses its
 * backend connections (nginx fastcgi_keep_conn + upstream keepalive).
 */
export async function startCountingProxy(
  target: TcpBackend | SocketBackend,
): Promise<ListeningFixture<TcpBackend>> {
  let count = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    count++;
    const upstream =
      'socket' in target ? connect(target.socket) : connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const backend = await listen(server);
  return { backend, connections: () => count, close: () => closeServer(server, sockets) };
}
