// streaming.mjs: a body produced by an async generator, one chunk at a time. No
// Content-Length, so the HTTP front sends it chunked; each chunk leaves as it is yielded.
// The generator's `finally` runs when the client goes away (tsgi calls the body's return()).
//   tsgi http examples/streaming.mjs    ->  curl -N 'http://127.0.0.1:8000/?count=5&delay=200'
export default function app(environ, startResponse) {
  const query = new URLSearchParams(environ.QUERY_STRING);
  const count = Math.min(Number(query.get('count') ?? 5) || 0, 10_000);
  const delay = Math.min(Number(query.get('delay') ?? 100) || 0, 10_000);
  startResponse('200 OK', [
    ['Content-Type', 'text/plain; charset=utf-8'],
    ['Cache-Control', 'no-store'],
  ]);
  return (async function* () {
    try {
      for (let i = 1; i <= count; i++) {
        yield `chunk ${i} of ${count}\n`;
        if (i < count) await new Promise((r) => setTimeout(r, delay));
      }
    } finally {
      if (environ['tsgi.signal'].aborted) {
        environ['tsgi.errors'].write('streaming: the client went away\n');
      }
    }
  })();
}
