// environ.mjs: answers with the environ as JSON: every CGI variable (strings) and the
// tsgi.* keys that have a plain value. Handy to see what a front server passes.
//   tsgi http --mount /app examples/environ.mjs  ->  curl 'http://127.0.0.1:8000/app/x?y=1'
export default function app(environ, startResponse) {
  const out = {};
  for (const key of Object.keys(environ).sort()) {
    const v = environ[key];
    if (typeof v === 'string' || typeof v === 'boolean' || Array.isArray(v)) out[key] = v;
  }
  const body = new TextEncoder().encode(`${JSON.stringify(out, null, 2)}\n`);
  startResponse('200 OK', [
    ['Content-Type', 'application/json'],
    ['Content-Length', String(body.length)],
  ]);
  return [body];
}
