import { describe, expect, it } from 'vitest';
import { knownCgiName } from '../src/index.js';

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
