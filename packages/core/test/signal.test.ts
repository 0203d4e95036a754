import { describe, expect, it } from 'vitest';
import { buildEnviron, RequestSignal, runApp } from '../src/index.js';
import { MemoryTransport } from '../src/testing.js';

describe('RequestSignal', () => {
  it('makes no AbortSignal until read; one made later is already aborted with the reason', () => {
    const s = new RequestSignal();
    expect(s.aborted).toBe(false);
    const why = new Error('client gone');
    s.abort(why);
    s.abort(new Error('second call is ignored'));
    expect(s.aborted).toBe(true);
    expect(s.reason).toBe(why);
    expect(s.signal.aborted).toBe(true);
    expect(s.signal.reason).toBe(why);
  });

  it('an AbortSignal read before the abort fires with it; default reason is an AbortError', () => {
    const s = new RequestSignal();
    const seen: unknown[] = [];
    s.signal.addEventListener('abort', () => seen.push(s.signal.reason));
    s.abort();
    expect(seen).toHaveLength(1);
    expect((seen[0] as DOMException).name).toBe('AbortError');
  });

  it('addAbortListener: in the order added across the field and the array, removable, none after the abort', () => {
    const s = new RequestSignal();
    const calls: string[] = [];
    const a = () => calls.push('a');
    const b = () => calls.push('b');
    const c = () => calls.push('c');
    const d = () => calls.push('d');
    s.addAbortListener(a);
    s.addAbortListener(b);
    s.removeAbortListener(a);
    s.addAbortListener(c); // after b, though a's place is free
    s.addAbortListener(d);
    s.removeAbortListener(d);
    s.abort();
    s.addAbortListener(a);
    s.abort();
    expect(calls).toEqual(['b', 'c']);
  });

  it('onAbort: once, in order, removable, never after the abort; a throwing listener does not stop the rest', () => {
    const s = new RequestSignal();
    const calls: string[] = [];
    s.onAbort(() => calls.push('a'));
    const off = s.onAbort(() => calls.push('removed'));
    s.onAbort(() => {
      throw new Error('listener bug');
    });
    s.onAbort(() => calls.push('b'));
    off();
    const uncaught: unknown[] = [];
    const onErr = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onErr);
    s.abort();
    s.abort();
    expect(calls).toEqual(['a', 'b']);
    expect(s.onAbort(() => calls.push('late'))).toBeTypeOf('function');
    expect(calls).toEqual(['a', 'b']);
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        process.off('uncaughtException', onErr);
        expect((uncaught[0] as Error).message).toBe('listener bug');
        resolve();
      }),
    );
  });

  it('tsgi.signal is lazy: an app that never reads it gets none made; one that does sees the abort', async () => {
    const s = new RequestSignal();
    const env = buildEnviron([['REQUEST_METHOD', 'GET']], { signal: s });
    expect(Object.keys(env)).toContain('tsgi.signal');
    const sig = env['tsgi.signal'] as AbortSignal;
    expect(sig).toBe(s.signal);
    expect(sig.aborted).toBe(false);
    s.abort(new Error('gone'));
    expect(sig.aborted).toBe(true);
    // Assigning the key replaces it with a plain value that runApp then follows.
    const env2 = buildEnviron([['REQUEST_METHOD', 'GET']], { signal: new RequestSignal() });
    const own = new AbortController();
    env2['tsgi.signal'] = own.signal;
    expect(env2['tsgi.signal']).toBe(own.signal);
    own.abort(new Error('replaced signal fired'));
    const t = new MemoryTransport();
    const r = await runApp(
      (_e, sr) => {
        sr('200 OK', []);
        return ['x'];
      },
      env2,
      t,
    );
    expect(r.outcome).toBe('aborted');
  });
});
