import { describe, expect, it } from 'vitest';
import { type DeadlineEntry, DeadlineList, deadlineList, remove } from '../src/deadlines.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function entry(name: string, log: string[]): DeadlineEntry {
  return {
    dlPrev: undefined,
    dlNext: undefined,
    dlList: undefined,
    dlAt: 0,
    expire: () => log.push(name),
  };
}

describe('DeadlineList', () => {
  it('expires entries in the order added, not before their time; a removed one never', async () => {
    const log: string[] = [];
    const l = new DeadlineList(200);
    const a = entry('a', log);
    const b = entry('b', log);
    const c = entry('c', log);
    l.add(a);
    l.add(b);
    await sleep(100);
    l.add(c); // due 100 ms after a and b
    remove(b);
    remove(b); // twice: nothing
    await sleep(50); // t=150
    expect(log).toEqual([]);
    await sleep(100); // t=250: a is due (200), c not yet (300)
    expect(log).toEqual(['a']);
    await sleep(150);
    expect(log).toEqual(['a', 'c']);
    expect(a.dlList).toBeUndefined();
    expect(c.dlList).toBeUndefined();
  });

  it('an entry may be added again after it expired or was removed; one list per duration', async () => {
    const log: string[] = [];
    const l = deadlineList(20);
    expect(deadlineList(20)).toBe(l);
    expect(deadlineList(21)).not.toBe(l);
    const a = entry('a', log);
    l.add(a);
    remove(a);
    l.add(a);
    await sleep(60);
    expect(log).toEqual(['a']);
    l.add(a);
    await sleep(60);
    expect(log).toEqual(['a', 'a']);
  });
});
