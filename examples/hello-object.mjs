// hello-object.mjs: the same answer in the response-object style (WSGI 2.0 idea): return
// { status, headers, body } and never call startResponse.
//   tsgi http examples/hello-object.mjs
export default function app(environ) {
  const name = new URLSearchParams(environ.QUERY_STRING).get('name') ?? 'World';
  const body = new TextEncoder().encode(`Hello, ${name}!\n`);
  return {
    status: 200,
    headers: [
      ['Content-Type', 'text/plain; charset=utf-8'],
      ['Content-Length', String(body.length)],
    ],
    body,
  };
}
