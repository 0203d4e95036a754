// hello.mjs: the smallest tsgi application, in the startResponse style (PEP 3333).
//   tsgi http examples/hello.mjs    ->  curl http://127.0.0.1:8000/
export default function app(_environ, startResponse) {
  startResponse('200 OK', [
    ['Content-Type', 'text/plain'],
    ['Content-Length', '14'],
  ]);
  return ['Hello, World!\n'];
}
