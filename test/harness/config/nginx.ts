/**
 * nginx.conf for one front: `nginx -p DIR -c nginx.conf -g 'daemon off;'`.
 */
import { join } from 'node:path';
import type { ConfigContext } from '../types.js';
import { cgiEnvironment, isScript, isSocket, prefixRegex, quote, regexEscape } from './common.js';
import { DEBIAN_FASTCGI_PARAMS, DEBIAN_SCGI_PARAMS } from './nginx-params.mjs';

// Debian's fastcgi_params and scgi_params: one copy, shared with the benchmarks.
export { DEBIAN_FASTCGI_PARAMS, DEBIAN_SCGI_PARAMS };

function indent(text: string, by: string): string {
  return text
    .trim()
    .split('\n')
    .map((l) => (l.trim() ? by + l.trim() : ''))
    .join('\n');
}

export function nginxConfig(ctx: ConfigContext): string {
  const { opts, prefix, port, dir } = ctx;
  const temp = join(dir, 'tmp');
  const upstream: string[] = [];
  const location: string[] = [];
  const backend = opts.backend;
  const server = (b: typeof backend) =>
    isSocket(b) ? `unix:${b.socket}` : isScript(b) ? '' : `${b.host}:${b.port}`;
  // A regex location, because a prefix location `/app` would also catch `/apple`.
  let locationMatch = quote(prefixRegex(prefix));

  // PATH_INFO split for FastCGI: the stock params send SCRIPT_NAME = $fastcgi_script_name, which
  // is the whole decoded path unless fastcgi_split_path_info is used.
  const fastcgiSplit =
    prefix === '/'
      ? ['fastcgi_split_path_info ^()(/.*)$;']
      : [`fastcgi_split_path_info ${quote(`^(${regexEscape(prefix)})(/.*)$`)};`];
  fastcgiSplit.push('fastcgi_param PATH_INFO $fastcgi_path_info if_not_empty;');

  switch (opts.protocol) {
    case 'cgi': {
      if (!isScript(backend)) throw new Error('cgi needs backend { script }');
      if (!ctx.fcgiwrapSocket) throw new Error('nginx cgi needs the fcgiwrap socket');
      // nginx cannot run CGI: fcgiwrap (started by the harness) execs SCRIPT_FILENAME. fcgiwrap
      // gives the script only the FastCGI params as environment, so PATH is passed here.
      location.push(DEBIAN_FASTCGI_PARAMS);
      location.push(...fastcgiSplit);
      location.push(`fastcgi_param SCRIPT_FILENAME ${quote(backend.script)};`);
      for (const [k, v] of Object.entries(cgiEnvironment(opts.cgiEnv))) {
        location.push(`fastcgi_param ${k} ${quote(v)};`);
      }
      if (opts.requestBuffering === false) location.push('fastcgi_request_buffering off;');
      location.push(`fastcgi_pass unix:${ctx.fcgiwrapSocket};`);
      break;
    }
    case 'fastcgi': {
      upstream.push(`server ${server(backend)};`);
      if (opts.keepConn) upstream.push('keepalive 16;');
      location.push(DEBIAN_FASTCGI_PARAMS);
      if (opts.splitPathInfo) location.push(...fastcgiSplit);
      if (opts.fcgiScriptFilename) {
        location.push(`fastcgi_param SCRIPT_FILENAME ${quote(opts.fcgiScriptFilename)};`);
      }
      // Without both keep_conn and upstream keepalive nginx closes the FastCGI connection after
      // every request (and does not set FCGI_KEEP_CONN).
      if (opts.keepConn) location.push('fastcgi_keep_conn on;');
      if (opts.requestBuffering === false) location.push('fastcgi_request_buffering off;');
      location.push('fastcgi_pass tsgi_backend;');
      break;
    }
    case 'scgi': {
      upstream.push(`server ${server(backend)};`);
      location.push(DEBIAN_SCGI_PARAMS);
      if (opts.splitPathInfo) {
        // There is no scgi_split_path_info; named captures of the location regex do the same
        // job on the same (decoded, normalised) URI.
        locationMatch =
          prefix === '/'
            ? quote('^(?<tsgi_script>)(?<tsgi_path>/.*)$')
            : quote(`^(?<tsgi_script>${regexEscape(prefix)})(?<tsgi_path>/.*)?$`);
        location.push('scgi_param SCRIPT_NAME $tsgi_script;');
        location.push('scgi_param PATH_INFO $tsgi_path if_not_empty;');
      }
      if (opts.requestBuffering === false) location.push('scgi_request_buffering off;');
      location.push('scgi_pass tsgi_backend;');
      break;
    }
    case 'http': {
      upstream.push(`server ${server(backend)};`);
      upstream.push('keepalive 16;');
      // HTTP/1.1 and an empty Connection header are what make upstream keepalive work.
      location.push('proxy_http_version 1.1;');
      location.push('proxy_set_header Connection "";');
      location.push('proxy_set_header Host $http_host;');
      location.push('proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;');
      location.push('proxy_set_header X-Forwarded-Proto $scheme;');
      if (opts.requestBuffering === false) location.push('proxy_request_buffering off;');
      // No URI part after the upstream name: the original request URI is passed unchanged.
      location.push('proxy_pass http://tsgi_backend;');
      break;
    }
  }

  const gzip = opts.gzip
    ? [
        'gzip on;',
        'gzip_types text/plain text/css text/xml application/json application/javascript;',
        'gzip_min_length 1;',
        // Apply to requests carrying Via too (otherwise proxied requests are not compressed).
        'gzip_proxied any;',
      ]
    : [];

  return `# generated by test/harness (tsgi)
${ctx.root ? '# Running as root: workers as root too, so they can use sockets in private dirs.\nuser root;' : ''}
worker_processes 1;
error_log ${quote(join(dir, 'error.log'))} info;
pid ${quote(join(dir, 'nginx.pid'))};

events {
  worker_connections 256;
}

http {
  access_log ${quote(join(dir, 'access.log'))};
  # Every temp path under the private dir (the compiled-in /var/lib/nginx may not be writable).
  client_body_temp_path ${quote(join(temp, 'body'))};
  proxy_temp_path ${quote(join(temp, 'proxy'))};
  fastcgi_temp_path ${quote(join(temp, 'fastcgi'))};
  scgi_temp_path ${quote(join(temp, 'scgi'))};
  uwsgi_temp_path ${quote(join(temp, 'uwsgi'))};
  # The default 1m would reject the adapters' large-body tests with 413.
  client_max_body_size 0;
  default_type application/octet-stream;
${gzip.map((l) => `  ${l}`).join('\n')}
${upstream.length ? `  upstream tsgi_backend {\n${indent(upstream.join('\n'), '    ')}\n  }\n` : ''}
  server {
    listen 127.0.0.1:${port};
    server_name 127.0.0.1;
    root ${quote(join(dir, 'htdocs'))};

    location ~ ${locationMatch} {
${indent(location.join('\n'), '      ')}
    }
${opts.extraConfig ? indent(opts.extraConfig, '    ') : ''}
  }
}
`;
}
