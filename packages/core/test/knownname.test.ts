import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import {
  buildEnviron,
  CgiVars,
  KNOWN_CGI_NAMES,
  knownCgiIndex,
  knownCgiName,
} from '../src/index.js';

describe('knownCgiName', () => {
  it('returns the literal for a well-known name at any position, undefined otherwise', () => {
    const block = 'xxREQUEST_METHODyyHTTP_HOSTzz';
    expect(knownCgiName(block, 2, 14)).toBe('REQUEST_METHOD');
    expect(knownCgiName(block, 18, 9)).toBe('HTTP_HOST');
    // Same length, one code unit different (byte-exact: no case folding).
    expect(knownCgiName('REQUEST_METHOd', 0, 14)).toBeUndefined();
    expect(knownCgiName('HTTP_X_CUSTOM', 0, 13)).toBeUndefined();
    expect(knownCgiName('', 0, 0)).toBeUndefined();
  });

  it('finds every name of a lookup key and nothing else that shares the key', () => {
    // Names of one length that differ in a few code units only.
    const names = [
      'SCGI',
      'HTTPS',
      'REMOTE_USER',
      'REMOTE_ADDR',
      'REMOTE_PORT',
      'SERVER_NAME',
      'SCRIPT_NAME',
      'SERVER_PORT',
      'SERVER_ADDR',
      'HTTP_ACCEPT_ENCODING',
      'HTTP_ACCEPT_LANGUAGE',
      'HTTP_X_FORWARDED_FOR',
      'HTTP_SEC_FETCH_DEST',
      'HTTP_SEC_FETCH_MODE',
      'HTTP_SEC_FETCH_SITE',
      'HTTP_UPGRADE_INSECURE_REQUESTS',
    ];
    const block = `..${names.join('\0')}\0`;
    let at = 2;
    for (const name of names) {
      expect(knownCgiName(block, at, name.length)).toBe(name);
      at += name.length + 1;
    }
    // Same length and the same code units 2 and 6 from the end as a known name: the
    // lookup key matches, the name does not.
    for (const other of ['XEMOTE_ADDR', 'XERVER_NAME', 'SCGX', 'HTTPX', 'REMOTEXUSER']) {
      expect(knownCgiName(other, 0, other.length)).toBeUndefined();
    }
    // Longer than any known name; code units above 0xFF.
    expect(knownCgiName('HTTP_ACCEPT_ENCODINGS', 0, 21)).toBeUndefined();
    expect(knownCgiName('SCG\u0149', 0, 4)).toBeUndefined();
  });
});

describe('knownCgiIndex', () => {
  it('finds every known name in bytes at any offset, byte-exact, and agrees with knownCgiName', () => {
    for (const [i, name] of KNOWN_CGI_NAMES.entries()) {
      const block = Buffer.from(`\0x${name}\0`, 'latin1');
      expect(knownCgiIndex(block, 2, name.length)).toBe(i);
      expect(knownCgiName(`x${name}`, 1, name.length)).toBe(name);
      // Every single-byte change of the name is a miss (the lookup slot may still match).
      for (let k = 0; k < name.length; k++) {
        const changed = Buffer.from(block);
        changed[2 + k] ^= 0x20;
        expect(knownCgiIndex(changed, 2, name.length)).toBe(-1);
      }
      // A prefix or a longer name is not the name.
      expect(knownCgiIndex(block, 2, name.length - 1)).toBe(-1);
      expect(knownCgiIndex(Buffer.from(`${name}S`, 'latin1'), 0, name.length + 1)).toBe(-1);
    }
    expect(knownCgiIndex(Buffer.from('HTTP_X_CUSTOM'), 0, 13)).toBe(-1);
    expect(knownCgiIndex(Buffer.from('ABC'), 0, 3)).toBe(-1);
  });

  it('a name added with its index counts as a repeat of the same name added without one, and the other way', () => {
    const host = KNOWN_CGI_NAMES.indexOf('HTTP_HOST');
    const method = KNOWN_CGI_NAMES.indexOf('REQUEST_METHOD');
    const warnings: string[] = [];
    const sink = (m: string) => warnings.push(m);
    const a = new CgiVars();
    a.add('HTTP_HOST', 'one', host);
    a.add('HTTP_HOST', 'two');
    a.add('REQUEST_METHOD', 'GET');
    a.add('REQUEST_METHOD', 'POST', method);
    // A wrong index is no index: the name is checked as any other.
    a.add('bad name', 'x', method);
    const e = buildEnviron(a, { errors: sink, duplicateHeaders: 'join' });
    expect(e.HTTP_HOST).toBe('one, two');
    expect(e.REQUEST_METHOD).toBe('GET');
    expect(Object.hasOwn(e, 'bad name')).toBe(false);
    expect(warnings.join('\n')).toMatch(/REQUEST_METHOD given twice/);
    // Both added with their index.
    const b = new CgiVars();
    b.add('HTTP_HOST', 'one', host);
    b.add('HTTP_HOST', 'two', host);
    expect(buildEnviron(b, { duplicateHeaders: 'drop', errors: () => {} }).HTTP_HOST).toBe(
      undefined,
    );
  });
});
