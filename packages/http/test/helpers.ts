// Helpers for the HTTP front's tests: serve an app on a free port, raw socket exchanges.
import { Buffer } from 'node:buffer';
import { connect, type Socket } from 'node:net';
import type { Application, LogLevel } from '@tsgi/core';
import { type HttpServer, type ServeHttpOptions, serveHttp } from '../src/index.js';

export interface Served extends HttpServer {
  logs: Array<{ level: LogLevel; text: string }>;
}

/** serve: the app on 127.0.0.1 and a free port, logging into `logs`. */
export async function serve(app: Application, options: ServeHttpOptions = {}): Promise<Served> {
  const logs: Served['logs'] = [];
  const s = await serveHttp(app, {
    port: 0,
    log: (text, level) => logs.push({ level, text }),
    ...options,
  });
  return Object.assign(s, { logs });
}

/** hello: 14 bytes with a Content-Length. */
export const hello: Application = (_e, sr) => {
  sr('200 OK', [
    ['Content-Type', 'text/plain'],
    ['Content-Length', '14'],
  ]);
  return ['Hello, World!\n'];
};

export const HELLO_RESPONSE =
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nHello, World!\n';

/** A raw connection that collects everything it receives. */
export class Raw {
  readonly socket: Socket;
  private chunks: Buffer[] = [];
  private waiters: Array<() => void> = [];
  closed = false;
  readonly ready: Promise<void>;

  constructor(port: number) {
    this.socket = connect({ port, host: '127.0.0.1' });
    this.ready = new Promise((r) => this.socket.once('connect', () => r()));
    this.socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.notify();
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.notify();
    });
    this.socket.on('error', () => undefined);
  }

  private notify() {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  get text(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }

  get bytes(): number {
    return this.chunks.reduce((n, c) => n + c.length, 0);
  }

  write(s: string | Buffer): void {
    this.socket.write(typeof s === 'string' ? Buffer.from(s, 'latin1') : s);
  }

  /** Waits until `pred(text)` holds or the connection closes (then checks once more). */
  async until(pred: (text: string) => boolean, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.text)) {
      if (this.closed) break;
      const left = deadline - Date.now();
      if (left <= 0) {
        const t = this.text;
        throw new Error(
          `timed out; received so far (${t.length} bytes): ${JSON.stringify(t.slice(0, 400))}`,
        );
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.text;
  }

  /** Waits for the peer to close. */
  async closedByPeer(timeoutMs = 5000): Promise<string> {
    await this.until(() => this.closed, timeoutMs);
    if (!this.closed) throw new Error('connection still open');
    return this.text;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
