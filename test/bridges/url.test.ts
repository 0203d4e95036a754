// requestPath / requestUrl: URL reconstruction from an environ (PEP 3333), as both
// bridges present it to the app.
import { Buffer } from 'node:buffer';
import { requestPath, requestUrl } from '@tsgi/bridges';
import { buildEnviron, type CgiParams, requestToCgi } from '@tsgi/core';
import { describe, expect, it } from 'vitest';

function environ(target: string, mount?: string, host = 'example.org', extra: CgiParams = {}) {
  const { vars } = requestToCgi({ method: 'GET', target, mount }, [['Host', host]]);
  return buildEnviron({ ...vars, ...(extra as Record<string, string>) }, { errors: () => {} });
}

describe('requestPath', () => {
  it.each([
    ['/app/x', '/app', { script: '/app', info: '/x', query: '' }],
    ['/app', '/app', { script: '/app', info: '', query: '' }],
    ['/app/', '/app', { script: '/app', info: '/', query: '' }],
    ['/apple', '/app', { script: '', info: '/apple', query: '' }],
    ['/app/a%2Fb?q=%41', '/app', { script: '/app', info: '/a%2Fb', query: 'q=%41' }],
    // The raw prefix is split by decoded length: an escaped mount still splits right.
    ['/%61pp/x', '/app', { script: '/%61pp', info: '/x', query: '' }],
    ['/p%20q/%7E', undefined, { script: '', info: '/p%20q/%7E', query: '' }],
    ['/caf%C3%A9', undefined, { script: '', info: '/caf%C3%A9', query: '' }],
    // Characters a client should have escaped are escaped; a lone '%' becomes %25.
    ['/a b/100%', undefined, { script: '', info: '/a%20b/100%25', query: '' }],
    // A fragment in the raw target never reaches QUERY_STRING (SPEC 1.8, RFC 9112 3.2).
    ['/x?a=b c&d="e"#f', undefined, { script: '', info: '/x', query: 'a=b%20c&d=%22e%22' }],
  ])('%s mounted at %s', (target, mount, expected) => {
    expect(requestPath(environ(target, mount))).toEqual(expected);
  });

  it('re-encodes SCRIPT_NAME and PATH_INFO when REQUEST_URI does not match them', () => {
    const e = buildEnviron(
      {
        REQUEST_URI: '/rewritten-from',
        SCRIPT_NAME: '/app',
        PATH_INFO: Buffer.from('/to/ü?#', 'utf8'),
        QUERY_STRING: 'a=1',
        HTTP_HOST: 'h',
      },
      { errors: () => {} },
    );
    expect(requestPath(e)).toEqual({ script: '/app', info: '/to/%C3%BC%3F%23', query: 'a=1' });
  });

  it('re-encodes ISO-8859-1 decoded values as the original bytes', () => {
    const e = environ('/caf%E9?x=%E9');
    expect(e['tsgi.uri_encoding']).toBe('iso-8859-1');
    expect(requestPath(e)).toEqual({ script: '', info: '/caf%E9', query: 'x=%E9' });
  });

  it('escapes raw non-ASCII bytes in QUERY_STRING', () => {
    const e = buildEnviron(
      { REQUEST_URI: '/', PATH_INFO: '/', QUERY_STRING: Buffer.from('q=é', 'utf8') },
      { errors: () => {} },
    );
    expect(requestPath(e).query).toBe('q=%C3%A9');
  });
});

describe('requestUrl', () => {
  it('joins scheme, Host, path and query', () => {
    expect(requestUrl(environ('/app/x?y=1', '/app', 'example.org:8080'))).toBe(
      'http://example.org:8080/app/x?y=1',
    );
    expect(requestUrl(environ('/app/x?y=1', '/app'), { stripMount: true })).toBe(
      'http://example.org/x?y=1',
    );
  });

  it('brackets an IPv6 SERVER_NAME and leaves the default port out', () => {
    const e = buildEnviron(
      { REQUEST_URI: '/', PATH_INFO: '/', SERVER_NAME: '::1', SERVER_PORT: '8080' },
      { errors: () => {} },
    );
    expect(requestUrl(e)).toBe('http://[::1]:8080/');
    const f = buildEnviron(
      { REQUEST_URI: '/', PATH_INFO: '/', SERVER_NAME: 'h', SERVER_PORT: '443', HTTPS: 'on' },
      { errors: () => {} },
    );
    expect(requestUrl(f)).toBe('https://h/');
  });

  it('keeps a bracketed IPv6 Host header', () => {
    expect(requestUrl(environ('/x', undefined, '[::1]:3000'))).toBe('http://[::1]:3000/x');
  });
});
