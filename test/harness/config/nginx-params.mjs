// Debian 12's nginx parameter tables, kept as plain JavaScript so that both the test harness
// (nginx.ts) and the benchmarks (bench/lib/fronts.mjs, run by plain `node`) use this one copy.

/**
 * Debian 12's /etc/nginx/fastcgi_params (nginx 1.22.1-9+deb12u*), comments dropped. Copied so the
 * harness does not depend on /etc at run time. Note the Debian security change at the end:
 * HTTP_HOST is `$host`, so the client's port is dropped from the Host the backend sees.
 */
export const DEBIAN_FASTCGI_PARAMS = `
fastcgi_param  QUERY_STRING       $query_string;
fastcgi_param  REQUEST_METHOD     $request_method;
fastcgi_param  CONTENT_TYPE       $content_type;
fastcgi_param  CONTENT_LENGTH     $content_length;

fastcgi_param  SCRIPT_NAME        $fastcgi_script_name;
fastcgi_param  REQUEST_URI        $request_uri;
fastcgi_param  DOCUMENT_URI       $document_uri;
fastcgi_param  DOCUMENT_ROOT      $document_root;
fastcgi_param  SERVER_PROTOCOL    $server_protocol;
fastcgi_param  REQUEST_SCHEME     $scheme;
fastcgi_param  HTTPS              $https if_not_empty;

fastcgi_param  GATEWAY_INTERFACE  CGI/1.1;
fastcgi_param  SERVER_SOFTWARE    nginx/$nginx_version;

fastcgi_param  REMOTE_ADDR        $remote_addr;
fastcgi_param  REMOTE_PORT        $remote_port;
fastcgi_param  REMOTE_USER        $remote_user;
fastcgi_param  SERVER_ADDR        $server_addr;
fastcgi_param  SERVER_PORT        $server_port;
fastcgi_param  SERVER_NAME        $server_name;

fastcgi_param  REDIRECT_STATUS    200;

fastcgi_param  HTTP_HOST        $host;
`;

/**
 * Debian 12's /etc/nginx/scgi_params, comments dropped. No CONTENT_LENGTH line: nginx's scgi
 * module always sends CONTENT_LENGTH itself, first, as the SCGI spec requires. No SCRIPT_NAME
 * and no PATH_INFO either.
 */
export const DEBIAN_SCGI_PARAMS = `
scgi_param  REQUEST_METHOD     $request_method;
scgi_param  REQUEST_URI        $request_uri;
scgi_param  QUERY_STRING       $query_string;
scgi_param  CONTENT_TYPE       $content_type;

scgi_param  DOCUMENT_URI       $document_uri;
scgi_param  DOCUMENT_ROOT      $document_root;
scgi_param  SCGI               1;
scgi_param  SERVER_PROTOCOL    $server_protocol;
scgi_param  REQUEST_SCHEME     $scheme;
scgi_param  HTTPS              $https if_not_empty;

scgi_param  REMOTE_ADDR        $remote_addr;
scgi_param  REMOTE_PORT        $remote_port;
scgi_param  SERVER_PORT        $server_port;
scgi_param  SERVER_NAME        $server_name;

scgi_param  HTTP_HOST        $host;
`;
