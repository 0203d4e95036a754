// download.mjs: serves files with byte ranges (RFC 9110 section 14) through
// tsgi.file_wrapper, which reads only the range asked for. PATH_INFO names a file under
// DOWNLOAD_ROOT (default: this directory); `..` cannot leave it.
//   tsgi http examples/download.mjs   ->  curl -r 0-99 http://127.0.0.1:8000/hello.mjs
// Answers: 200 (whole file), 206 (one range: Content-Range), 416 (range outside the file:
// Content-Range: bytes */SIZE), 404. Several ranges in one request get the whole file
// (a server may ignore Range). HEAD gets the same headers and no file read.
import { stat } from 'node:fs/promises';
import { dirname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(process.env.DOWNLOAD_ROOT ?? dirname(fileURLToPath(import.meta.url)));

function text(startResponse, status, body, extra = []) {
  startResponse(status, [
    ['Content-Type', 'text/plain; charset=utf-8'],
    ['Content-Length', String(Buffer.byteLength(body))],
    ...extra,
  ]);
  return [body];
}

/** The one range of a `bytes=` Range header as [first, last], 'unsatisfiable', or null (ignore it). */
function parseRange(header, size) {
  const m = /^bytes=\s*(\d*)-(\d*)\s*$/.exec(header ?? '');
  if (m === null) return null;
  const [, a, b] = m;
  if (a === '' && b === '') return null;
  if (a === '') {
    // suffix: the last N bytes
    const n = Number(b);
    if (n === 0) return 'unsatisfiable';
    return [Math.max(0, size - n), size - 1];
  }
  const first = Number(a);
  const last = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (b !== '' && Number(b) < first) return null;
  if (first >= size) return 'unsatisfiable';
  return [first, last];
}

export default async function app(environ, startResponse) {
  const method = environ.REQUEST_METHOD;
  if (method !== 'GET' && method !== 'HEAD') {
    return text(startResponse, '405 Method Not Allowed', 'GET or HEAD only\n', [
      ['Allow', 'GET, HEAD'],
    ]);
  }
  const path = resolve(ROOT, `.${environ.PATH_INFO || '/'}`);
  if (!path.startsWith(ROOT + sep) || path.includes('\0')) {
    return text(startResponse, '404 Not Found', 'not found\n');
  }
  let st;
  try {
    st = await stat(path);
  } catch {
    return text(startResponse, '404 Not Found', 'not found\n');
  }
  if (!st.isFile()) return text(startResponse, '404 Not Found', 'not found\n');
  const size = st.size;
  const etag = `"${size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
  const common = [
    ['Accept-Ranges', 'bytes'],
    ['ETag', etag],
    ['Last-Modified', st.mtime.toUTCString()],
  ];
  // If-Range: the range applies only to the representation the client already has.
  const ifRange = environ.HTTP_IF_RANGE;
  const range =
    ifRange === undefined || ifRange === etag ? parseRange(environ.HTTP_RANGE, size) : null;
  if (range === 'unsatisfiable') {
    return text(
      startResponse,
      '416 Range Not Satisfiable',
      `range outside the ${size} bytes of the file\n`,
      [['Content-Range', `bytes */${size}`], ...common],
    );
  }
  let status = '200 OK';
  const headers = [['Content-Type', 'application/octet-stream'], ...common];
  let offset = 0;
  let length = size;
  if (range !== null) {
    [offset, length] = [range[0], range[1] - range[0] + 1];
    status = '206 Partial Content';
    headers.push(['Content-Range', `bytes ${range[0]}-${range[1]}/${size}`]);
  }
  headers.push(['Content-Length', String(length)]);
  startResponse(status, headers);
  // HEAD: same headers, and no reason to open the file.
  if (method === 'HEAD') return [];
  return environ['tsgi.file_wrapper'](path, { offset, length });
}
