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
});
