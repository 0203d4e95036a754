import type { ErrorSink, ErrorStream, LogLevel } from './types.js';

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * createLogSink: an ErrorSink that writes each message as a line, unchanged (messages
 * carry their own `core: ` / `fastcgi: ` prefix), to a stream (stderr by default) and
 * drops messages below `minLevel`. Client disconnects are logged at
 * `debug`, so the default `info` keeps them out of the log (mod_wsgi 3.0 change log).
 */
export function createLogSink(
  minLevel: LogLevel = 'info',
  out: { write(s: string): unknown } = process.stderr,
): ErrorSink {
  const min = LEVELS[minLevel];
  return (text, level) => {
    if (LEVELS[level] < min) return;
    out.write(text.endsWith('\n') ? text : `${text}\n`);
  };
}

/** defaultSink: the ErrorSink used when an adapter gives none (stderr, level `info`). */
export const defaultSink: ErrorSink = (text, level) => {
  if (level === 'debug') return;
  process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
};

/**
 * createErrorStream: `tsgi.errors` over an ErrorSink. Text is passed on line by line:
 * a partial line waits for its newline or for `flush()`, so one log entry is one line
 * even when the application writes it in pieces.
 */
export function createErrorStream(sink: ErrorSink): ErrorStream & { sink: ErrorSink } {
  return new LineErrorStream(sink);
}

/** LineErrorStream: what createErrorStream makes (one object per request, no closures). */
class LineErrorStream implements ErrorStream {
  private pending = '';

  constructor(readonly sink: ErrorSink) {}

  write(text: string): void {
    if (typeof text !== 'string') text = String(text);
    const all = this.pending + text;
    const nl = all.lastIndexOf('\n');
    if (nl < 0) {
      this.pending = all;
      return;
    }
    this.pending = all.slice(nl + 1);
    this.sink(all.slice(0, nl + 1), 'error');
  }

  flush(): void {
    const p = this.pending;
    if (p !== '') {
      this.pending = '';
      this.sink(p, 'error');
    }
  }
}

/** sinkOf: the ErrorSink behind an environ's `tsgi.errors` (for the core's own reports). */
export function sinkOf(errors: ErrorStream): ErrorSink {
  const s = (errors as { sink?: ErrorSink }).sink;
  if (s) return s;
  return (text) => {
    errors.write(text.endsWith('\n') ? text : `${text}\n`);
  };
}
