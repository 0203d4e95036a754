// Deadlines for SCGI connections (the header timeout, the lingering close) without a Node
// timer per connection. SCGI opens a connection per request, and two setTimeout/clearTimeout
// pairs per connection were ~0.9 KB of the garbage of a hello request (Timeout objects and
// their closures) plus the timer-list work. All deadlines of one duration expire in the
// order they were set, so a linked list per duration and one timer for its head do.

/** DeadlineEntry: what a list holds; the connection is its own entry (no allocation). */
export interface DeadlineEntry {
  /** @internal */ dlPrev: DeadlineEntry | undefined;
  /** @internal */ dlNext: DeadlineEntry | undefined;
  /** @internal */ dlList: DeadlineList | undefined;
  /** @internal */ dlAt: number;
  /** Called once when the deadline passes (the entry is already out of its list). */
  expire(): void;
}

/**
 * DeadlineList: entries that expire `ms` after they were added, in order. One Node timer
 * (unref'd: an open socket keeps the process alive by itself) for the head; it is armed
 * when the list goes from empty to one entry and re-armed from the head when it fires.
 */
export class DeadlineList {
  private head: DeadlineEntry | undefined = undefined;
  private tail: DeadlineEntry | undefined = undefined;
  private timer: NodeJS.Timeout | undefined = undefined;

  constructor(readonly ms: number) {}

  /** DeadlineList.add: `e` expires `ms` from now (it must not be in a list). */
  add(e: DeadlineEntry): void {
    e.dlAt = performance.now() + this.ms;
    e.dlList = this;
    e.dlNext = undefined;
    e.dlPrev = this.tail;
    if (this.tail === undefined) this.head = e;
    else this.tail.dlNext = e;
    this.tail = e;
    if (this.timer === undefined) this.arm(this.ms);
  }

  private arm(ms: number): void {
    this.timer = setTimeout(this.fire, Math.max(1, Math.ceil(ms)));
    this.timer.unref();
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    const now = performance.now();
    for (let e = this.head; e !== undefined && e.dlAt <= now; e = this.head) {
      remove(e);
      e.expire();
    }
    if (this.head !== undefined) this.arm(this.head.dlAt - now);
  };

  /** @internal Unlinks `e` (see `remove`). */
  unlink(e: DeadlineEntry): void {
    if (e.dlPrev === undefined) this.head = e.dlNext;
    else e.dlPrev.dlNext = e.dlNext;
    if (e.dlNext === undefined) this.tail = e.dlPrev;
    else e.dlNext.dlPrev = e.dlPrev;
    e.dlPrev = e.dlNext = e.dlList = undefined;
  }
}

/** remove: takes `e` out of its list, if it is in one; its deadline is cancelled. */
export function remove(e: DeadlineEntry): void {
  e.dlList?.unlink(e);
}

const lists = new Map<number, DeadlineList>();

/** deadlineList: the process-wide list for `ms` (one per duration in use). */
export function deadlineList(ms: number): DeadlineList {
  let l = lists.get(ms);
  if (l === undefined) lists.set(ms, (l = new DeadlineList(ms)));
  return l;
}
