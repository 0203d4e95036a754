// docs/SPEC.md names, for every rule, the tests that cover it ("_Tests:_ R › \"[5.2] ...\"",
// "K `case-name`"). This file holds the document to that: every rule has a _Tests:_ line,
// every cited title exists in the cited file and carries the rule's number, and every cited
// conformance case exists and lists the rule. A renamed test or a new rule without a test
// fails here instead of leaving the document stale.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cases } from '../conformance/cases.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SPEC = readFileSync(join(ROOT, 'docs/SPEC.md'), 'utf8');

/** The file letters of SPEC section 0 ("Tests."). */
const FILES: Record<string, string> = {
  E: 'packages/core/test/environ.test.ts',
  I: 'packages/core/test/input.test.ts',
  R: 'packages/core/test/run.test.ts',
  H: 'packages/core/test/headers.test.ts',
  S: 'packages/core/test/serialize.test.ts',
  V: 'packages/core/test/validator.test.ts',
  C: 'packages/core/test/compress.test.ts',
  F: 'packages/core/test/filewrapper.test.ts',
};

const squash = (s: string) => s.replace(/\s+/g, ' ').trim();

interface Rule {
  id: string;
  text: string;
}

/** The numbered rules: from a line starting `**N.M ` to the next such line or heading. */
function rules(): Rule[] {
  const out: Rule[] = [];
  const lines = SPEC.split('\n');
  let cur: Rule | undefined;
  for (const line of lines) {
    const m = /^\*\*(\d+\.\d+) /.exec(line);
    if (m) {
      cur = { id: m[1] as string, text: '' };
      out.push(cur);
    } else if (/^#{1,6} /.test(line) || line === '---') {
      cur = undefined;
    }
    if (cur) cur.text += `${line}\n`;
  }
  return out;
}

/**
 * Test titles in a file: the first string argument of it()/test(), quotes of any kind. A
 * template title (`[4.1] refuses ${JSON.stringify(status)}`) counts by its literal start.
 */
function titles(file: string): string[] {
  const src = readFileSync(join(ROOT, file), 'utf8');
  const out: string[] = [];
  const re = /\b(?:it|test)(?:\.\w+)?\(\s*(['"`])((?:\\.|(?!\1)[^\\])*)\1/g;
  for (const m of src.matchAll(re)) {
    const t = squash((m[2] as string).replace(/\\(['"`\\])/g, '$1'));
    out.push(m[1] === '`' ? (t.split('${')[0] as string) : t);
  }
  return out;
}

/**
 * A citation matches a title it begins (a cited title that holds quotes itself, like
 * `"[1.6] CONTENT_LENGTH "" ..."`, is cut at its first inner quote by the parse below), or a
 * template title whose literal start it begins with.
 */
function cites(title: string, cited: string): boolean {
  return title.startsWith(cited) || cited.startsWith(title);
}

const all = rules();
const titleCache = new Map<string, string[]>();
const titlesOf = (f: string) => {
  let t = titleCache.get(f);
  if (!t) titleCache.set(f, (t = titles(f)));
  return t;
};

describe('docs/SPEC.md cites tests that exist', () => {
  it('has the numbered rules, each once', () => {
    expect(all.length).toBeGreaterThan(50);
    const ids = all.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  for (const rule of all) {
    it(`rule ${rule.id}: every cited test exists and names the rule`, () => {
      const at = rule.text.search(/[_*]Tests:[_*]/);
      expect(at, `rule ${rule.id} has no _Tests:_ line`).toBeGreaterThanOrEqual(0);
      const tests = squash(rule.text.slice(at));
      let cited = 0;
      // Each citation is taken up to its first inner quote (see cites()).
      for (const m of tests.matchAll(/\b([A-Z]) › "([^"]*)"/g)) {
        const [, letter, title] = m as unknown as [string, string, string];
        const file = FILES[letter];
        expect(file, `rule ${rule.id}: unknown test file letter ${letter}`).toBeDefined();
        expect(
          titlesOf(file as string).some((t) => cites(t, title)),
          `rule ${rule.id}: ${file} has no test titled "${title}"`,
        ).toBe(true);
        expect(title, `rule ${rule.id}: cited title does not carry [${rule.id}]`).toContain(
          `[${rule.id}]`,
        );
        cited++;
      }
      const kpart = tests.match(/K ((?:`[^`]+`(?:, )?)+)/g) ?? [];
      for (const k of kpart) {
        for (const [, name] of k.matchAll(/`([^`]+)`/g)) {
          const c = cases.find((x) => x.name === name);
          expect(c, `rule ${rule.id}: no conformance case ${name}`).toBeDefined();
          expect(c?.rules, `rule ${rule.id}: case ${name} does not list it`).toContain(rule.id);
          cited++;
        }
      }
      expect(cited, `rule ${rule.id} cites no test`).toBeGreaterThan(0);
    });
  }
});
