// The README's hello application, run as a CGI script by bench/cgi/run.mjs.
export default function app(_environ, startResponse) {
  startResponse('200 OK', [
    ['Content-Type', 'text/plain'],
    ['Content-Length', '14'],
  ]);
  return ['Hello, World!\n'];
}
